// A wait that shutdown cuts short: every retry and poll loop sleeps through it (the service kit's).
//
// Pollers sleep to a beat instead of for an interval: the beats are the multiples of the interval since
// this process started, so the reconcile loop, the CSK tick and the message watcher wake together and
// their head reads share one request (chain/reads.ts gathers calls made within a few milliseconds).
// Each process starts at its own moment, so the sidecars of a cluster do not all ask at once.
import { sleep } from "@attestmesh/shared/service/shutdown.ts";

export { sleep };

/**
 * Milliseconds from `now` (ms since the process started) to the next beat of `intervalMs` at least half
 * an interval away: a poll that ran late or was woken early skips to the following beat rather than
 * polling twice in quick succession.
 */
export function untilBeat(intervalMs: number, now: number = performance.now()): number {
  const next = intervalMs - (now % intervalMs);
  return next < intervalMs / 2 ? next + intervalMs : next;
}

/** Sleeps to the next beat of `intervalMs` (untilBeat); shutdown cuts it short. */
export function sleepToBeat(intervalMs: number, signal: AbortSignal): Promise<void> {
  return sleep(untilBeat(intervalMs), signal);
}
