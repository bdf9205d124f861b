// A wait that shutdown cuts short: every retry and poll loop sleeps through it.
import { setTimeout as delay } from "node:timers/promises";

/** Resolves after `ms`, or as soon as `signal` aborts; never rejects. */
export async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return;
  try {
    await delay(ms, undefined, { signal });
  } catch {
    // Aborted: the caller checks `signal.aborted`.
  }
}
