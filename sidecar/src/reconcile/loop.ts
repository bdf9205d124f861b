// Runs the reconcile pass on a timer (on the pollers' beat, sleep.ts) and on demand. At most one pass
// runs at a time; wake-ups that arrive during a pass coalesce into exactly one more pass right after it,
// and every caller of `wake()` is answered when a pass that started after its call has finished. A
// failing pass is counted (`observe`), never fatal: the next tick tries again. Failures in a row are
// logged thinned (the first, the 2nd, 4th, 8th… and one every 10 minutes, each with the run's count,
// logRepeats.ts), and the pass that succeeds after them says how many there were. Aborting the signal
// stops the timer; `stopped` resolves once the pass in flight, if any, has finished.
import type { Logger } from "../log.ts";
import { createRepeatLog, REPEAT_LOG_NOTE, repeatFields } from "../logRepeats.ts";
import { untilBeat } from "../sleep.ts";

export type PassOutcome = "ok" | "error";

export interface ReconcileLoop {
  /** Starts the timer with an immediate first pass. */
  start(): void;
  /** Asks for a pass now; resolves when a pass that started after this call has finished. */
  wake(reason?: string): Promise<void>;
  /** Resolves when the loop was stopped and no pass is running. */
  readonly stopped: Promise<void>;
}

export function createReconcileLoop(options: {
  readonly pass: () => Promise<void>;
  /** The interval between timer passes, asked before each (the pollers' cadence may stretch it). */
  readonly intervalMs: number | (() => number);
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** Called after every pass with its outcome and duration. */
  readonly observe?: (outcome: PassOutcome, seconds: number) => void;
}): ReconcileLoop {
  const { pass, intervalMs, signal, logger } = options;
  const interval = typeof intervalMs === "function" ? intervalMs : () => intervalMs;
  let started = false;
  let busy = false;
  let timer: NodeJS.Timeout | undefined;
  /** Callers waiting for the next pass to start and finish; undefined when nobody asked. */
  let waiters: Array<() => void> | undefined;
  const failures = createRepeatLog();
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => {
    resolveStopped = resolve;
  });

  function schedule(): void {
    clearTimeout(timer);
    if (!signal.aborted && started) timer = setTimeout(() => void trigger("timer"), untilBeat(interval()));
  }

  function trigger(reason: string): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    const done = new Promise<void>((resolve) => {
      waiters ??= [];
      waiters.push(resolve);
    });
    if (!busy) void drain();
    else logger.trace({ reason }, "reconcile already running; coalesced");
    return done;
  }

  async function drain(): Promise<void> {
    busy = true;
    clearTimeout(timer);
    while (waiters !== undefined && !signal.aborted) {
      const batch = waiters;
      waiters = undefined;
      const begin = performance.now();
      logger.trace({ waiters: batch.length }, "reconcile pass started");
      let outcome: PassOutcome = "ok";
      try {
        await pass();
        const run = failures.recovered();
        if (run > 0) logger.info({ failures: run }, "reconcile pass succeeded again after failing");
      } catch (err) {
        outcome = "error";
        const repeat = failures.failed(Date.now());
        if (repeat.log) {
          logger.warn(
            { err, ...repeatFields(repeat) },
            repeat.failures === 1
              ? "reconcile pass failed; retrying on the next tick"
              : `reconcile pass failed again; retrying on the next tick (failures in a row are ${REPEAT_LOG_NOTE})`,
          );
        }
      }
      logger.trace({ ms: Math.round(performance.now() - begin), outcome }, "reconcile pass finished");
      options.observe?.(outcome, (performance.now() - begin) / 1000);
      for (const resolve of batch) resolve();
    }
    busy = false;
    if (signal.aborted) finish();
    else schedule();
  }

  function finish(): void {
    clearTimeout(timer);
    for (const resolve of waiters ?? []) resolve();
    waiters = undefined;
    if (!busy) resolveStopped();
  }

  signal.addEventListener("abort", finish, { once: true });
  if (signal.aborted) finish();

  return {
    start() {
      if (started || signal.aborted) return;
      started = true;
      void trigger("start");
    },
    wake(reason = "wake") {
      return trigger(reason);
    },
    stopped,
  };
}
