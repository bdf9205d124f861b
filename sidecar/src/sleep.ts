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

/** Poll intervals stretch this many times while the sidecar is at rest (a whole number: beats align). */
export const REST_FACTOR = 4;

/** At rest only once this long passed without a wake-up. */
export const REST_AFTER_MS = 30_000;

/**
 * How often the pollers poll. At full cadence, every configured interval. At rest — a source of
 * wake-ups is healthy (a verified, not lagging indexer subscription) and nothing woke the sidecar for
 * REST_AFTER_MS — REST_FACTOR times as long: every verified push wakes at once the pollers its log
 * concerns (intake/concerns.ts) and restores every poller's full cadence (so does every liveness event,
 * every reconcile wake-up), so a push costs no latency. Polling never stops, so an indexer that falls silent or withholds a log delays what the
 * sidecar sees by at most (REST_FACTOR − 1) intervals, until its lag check flags it and the full cadence
 * resumes; it never decides anything (docs/sidecar.md, "Polling at rest").
 */
export interface PollCadence {
  /** The interval a poller of `intervalMs` keeps now. */
  interval(intervalMs: number): number;
  /** Something happened: the full cadence for the next REST_AFTER_MS. */
  stir(): void;
  /** Whether the pollers are at rest now. */
  atRest(): boolean;
}

export function createPollCadence(options: {
  /** Whether a source of wake-ups is healthy now. */
  readonly wakeUpsHealthy: () => boolean;
  /** Monotonic milliseconds; default performance.now. */
  readonly now?: () => number;
}): PollCadence {
  const now = options.now ?? (() => performance.now());
  let stirredAt = now();
  const atRest = () => now() - stirredAt >= REST_AFTER_MS && options.wakeUpsHealthy();
  return {
    interval: (intervalMs) => (atRest() ? intervalMs * REST_FACTOR : intervalMs),
    stir() {
      stirredAt = now();
    },
    atRest,
  };
}

/** Every interval as configured, always (no wake-up source, or tests). */
export const FULL_CADENCE: PollCadence = {
  interval: (intervalMs) => intervalMs,
  stir() {},
  atRest: () => false,
};
