// One shutdown registry for the whole daemon: a single AbortSignal every loop and wait listens to,
// and a list of closers (servers, the WireGuard interface) run in reverse order of registration,
// all within one deadline. Shutting down never touches the chain.
import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "./log.ts";

export interface Shutdown {
  /** Aborted when shutdown starts; pass it to every loop, sleep and request. */
  readonly signal: AbortSignal;
  /** Registers a closer, run once on shutdown (last added, first run). Returns a function that unregisters it. */
  add(name: string, close: () => Promise<void> | void): () => void;
  /** Starts shutdown (idempotent); resolves true when every closer finished within the deadline. */
  shutdown(reason: string): Promise<boolean>;
  /** Resolves once shutdown has run, with the same result. */
  readonly finished: Promise<boolean>;
}

export function createShutdown(options: { logger: Logger; deadlineMs?: number }): Shutdown {
  const { logger } = options;
  const deadlineMs = options.deadlineMs ?? 5000;
  const controller = new AbortController();
  const closers: Array<{ name: string; close: () => Promise<void> | void }> = [];
  let running: Promise<boolean> | undefined;
  let resolveFinished!: (clean: boolean) => void;
  const finished = new Promise<boolean>((resolve) => {
    resolveFinished = resolve;
  });

  async function runClosers(reason: string): Promise<boolean> {
    logger.info({ reason, closers: closers.length }, "shutting down");
    controller.abort(new Error(`shutdown: ${reason}`));
    const deadline = Date.now() + deadlineMs;
    let clean = true;
    for (const { name, close } of closers.splice(0).reverse()) {
      const left = Math.max(0, deadline - Date.now());
      const timer = new AbortController();
      try {
        const outcome = await Promise.race([
          Promise.resolve()
            .then(close)
            .then(() => "closed" as const),
          delay(left, "timeout" as const, { signal: timer.signal }),
        ]);
        if (outcome === "timeout") {
          clean = false;
          logger.error({ closer: name, deadlineMs }, "closer did not finish before the shutdown deadline");
        } else {
          logger.debug({ closer: name }, "closed");
        }
      } catch (err) {
        clean = false;
        logger.error({ closer: name, err }, "closer failed during shutdown");
      } finally {
        timer.abort();
      }
    }
    logger.info({ clean }, "shutdown complete");
    return clean;
  }

  return {
    signal: controller.signal,
    add(name, close) {
      const entry = { name, close };
      if (controller.signal.aborted) {
        // Registered after shutdown began: close it right away rather than leak it.
        void Promise.resolve()
          .then(close)
          .catch((err: unknown) => logger.error({ closer: name, err }, "late closer failed"));
        return () => {};
      }
      closers.push(entry);
      return () => {
        const index = closers.indexOf(entry);
        if (index >= 0) closers.splice(index, 1);
      };
    },
    shutdown(reason) {
      running ??= runClosers(reason).then((clean) => {
        resolveFinished(clean);
        return clean;
      });
      return running;
    },
    finished,
  };
}

/**
 * SIGTERM/SIGINT start shutdown and then exit: 0 when everything closed in time, 1 otherwise.
 * A second signal exits at once. Returns a function that removes the handlers.
 */
export function exitOnSignals(
  shutdown: Shutdown,
  options: { logger: Logger; exit?: (code: number) => void; signals?: readonly NodeJS.Signals[] },
): () => void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const signals = options.signals ?? ["SIGTERM", "SIGINT"];
  let received = false;
  const handler = (signal: NodeJS.Signals) => {
    if (received) {
      options.logger.warn({ signal }, "second signal: exiting now");
      exit(1);
      return;
    }
    received = true;
    void shutdown.shutdown(signal).then((clean) => exit(clean ? 0 : 1));
  };
  for (const signal of signals) process.on(signal, handler);
  return () => {
    for (const signal of signals) process.off(signal, handler);
  };
}
