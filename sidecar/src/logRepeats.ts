// Thins a log line that would come once per attempt while something keeps failing (a reconcile pass, a
// wireguard-go that dies at every start): the first failure of a run is logged, then the 2nd, 4th,
// 8th… and at least one every `everyMs`, each saying how many failures the run has had and how many
// went unlogged since the line before. The caller logs (and counts every failure in its metrics); this
// is plain arithmetic over the times it is given.

/** One failure more: whether to log it, with the run's count and the ones not logged since the last line. */
export interface RepeatVerdict {
  readonly log: boolean;
  /** Failures in this run, this one included. */
  readonly failures: number;
  /** Failures since the last line that were not logged (0 on the first). */
  readonly unlogged: number;
}

export interface RepeatLog {
  failed(now: number): RepeatVerdict;
  /**
   * A process it watches ended after running since `startedAt`: one that ran RUN_ENDS_AFTER_MS or
   * longer ends the run first, so its end is logged as a first; then `failed(now)`.
   */
  ended(startedAt: number, now: number): RepeatVerdict;
  /** The run is over: how many failures it had (0: there was no run). */
  recovered(): number;
  /**
   * The run's last failure was not logged: what follows from it (the next attempt's info lines) is no
   * news either, and goes to the debug level. False when there is no run.
   */
  quiet(): boolean;
}

/** A run that goes on is logged at least this often. */
export const REPEAT_LOG_EVERY_MS = 10 * 60_000;

/** A process that ran this long before it ended begins a new run of ends (`ended`). */
export const RUN_ENDS_AFTER_MS = 60_000;

/** What a line after the first of a run tells its reader about the ones it does not see. */
export const REPEAT_LOG_NOTE = `logged at the 2nd, 4th, 8th… and once every ${REPEAT_LOG_EVERY_MS / 60_000} minutes`;

export function createRepeatLog(everyMs: number = REPEAT_LOG_EVERY_MS): RepeatLog {
  let failures = 0;
  let unlogged = 0;
  let loggedAt = 0;
  let quiet = false;
  return {
    failed(now) {
      failures += 1;
      const powerOfTwo = (failures & (failures - 1)) === 0;
      quiet = !powerOfTwo && now - loggedAt < everyMs;
      if (quiet) {
        unlogged += 1;
        return { log: false, failures, unlogged };
      }
      const verdict = { log: true, failures, unlogged };
      unlogged = 0;
      loggedAt = now;
      return verdict;
    },
    ended(startedAt, now) {
      if (now - startedAt >= RUN_ENDS_AFTER_MS) this.recovered();
      return this.failed(now);
    },
    recovered() {
      const run = failures;
      failures = 0;
      unlogged = 0;
      loggedAt = 0;
      quiet = false;
      return run;
    },
    quiet: () => quiet,
  };
}

/** The fields a thinned line carries: the run's count, and how many went unlogged when any did. */
export function repeatFields(verdict: RepeatVerdict): { failures: number; unlogged?: number } {
  return { failures: verdict.failures, ...(verdict.unlogged > 0 ? { unlogged: verdict.unlogged } : {}) };
}
