// When to bring back a WireGuard interface that went away by itself. A single loss (a crash, an OOM
// kill) is answered at once; a loss that repeats before the interface stayed up for `stableMs` (a
// wireguard-go that dies every time it starts: a bad binary, the host killing it, a TUN device refused)
// waits a delay that doubles from `firstDelayMs` to `maxDelayMs`, so that a crash loop costs a bounded
// number of starts and log lines, not a 2-core CVM's CPU. Plain arithmetic over the times it is given.

export interface RestartPolicy {
  /** The delay before the second attempt of a run of failures (the first runs at once), in ms. */
  readonly firstDelayMs: number;
  /** No delay exceeds this, in ms. */
  readonly maxDelayMs: number;
  /** An interface up this long before it went away ends the run: its loss is answered at once again. */
  readonly stableMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  firstDelayMs: 1_000,
  maxDelayMs: 30_000,
  stableMs: 60_000,
};

/** Where a run of failures stands after one more. */
export interface RestartSchedule {
  /** Failures in this run: losses, and attempts that did not bring the interface up. */
  readonly failures: number;
  /** How long the next attempt waits (0 for the first of a run). */
  readonly delayMs: number;
  /** No attempt before this time (ms since the epoch). */
  readonly notBefore: number;
}

export interface RestartPacer {
  /** The interface went away at `now`. Ends the run first if it had been up for `stableMs`. */
  lost(now: number): RestartSchedule;
  /** An attempt to bring it back failed at `now`. */
  failed(now: number): RestartSchedule;
  /** How long until an attempt may run (0: now). */
  waitMs(now: number): number;
  /** An attempt begins (it counts toward the next delay). */
  attempt(): void;
  /** An attempt brought the interface up at `now`. */
  up(now: number): void;
  /** A run of failures is under way and the interface has not stayed up for `stableMs` since. */
  active(now: number): boolean;
  /** The interface was taken down on purpose: forget the run. */
  reset(): void;
}

export function createRestartPacer(policy: RestartPolicy = DEFAULT_RESTART_POLICY): RestartPacer {
  /** Attempts made in this run. */
  let attempts = 0;
  let failures = 0;
  let notBefore = 0;
  let upSince: number | undefined;

  const delay = () =>
    attempts === 0 ? 0 : Math.min(policy.maxDelayMs, policy.firstDelayMs * 2 ** Math.min(attempts - 1, 30));

  function schedule(now: number): RestartSchedule {
    failures += 1;
    const delayMs = delay();
    notBefore = now + delayMs;
    return { failures, delayMs, notBefore };
  }

  return {
    lost(now) {
      if (upSince !== undefined && now - upSince >= policy.stableMs) {
        attempts = 0;
        failures = 0;
      }
      upSince = undefined;
      return schedule(now);
    },
    failed: (now) => schedule(now),
    waitMs: (now) => Math.max(0, notBefore - now),
    attempt() {
      attempts += 1;
    },
    up(now) {
      upSince = now;
    },
    active: (now) => failures > 0 && (upSince === undefined || now - upSince < policy.stableMs),
    reset() {
      attempts = 0;
      failures = 0;
      notBefore = 0;
      upSince = undefined;
    },
  };
}
