// Capped exponential backoff with jitter (plain arithmetic, so tests can pin it), and the retry loop
// built on it.
import { isRetryable } from "./errors.ts";
import type { Logger } from "./log.ts";
import { sleep } from "./sleep.ts";

export interface BackoffOptions {
  /** Delay before the first retry, in ms. */
  readonly initialMs: number;
  /** No delay exceeds this, in ms. */
  readonly maxMs: number;
  /** Growth per attempt (2 doubles). */
  readonly factor?: number;
  /** Fraction of the delay that is randomised, 0..1 (0.2: the delay lies in [0.8 d, d]). */
  readonly jitter?: number;
}

/**
 * The delay before retry number `attempt` (0 for the first retry): `min(maxMs, initialMs * factor^attempt)`,
 * less a random share of up to `jitter` of it, so sidecars that failed together do not retry together.
 * `random` returns a number in [0, 1).
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const factor = options.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0.2));
  const exponent = Math.max(0, Math.floor(attempt));
  // Cap before multiplying further so large attempt numbers cannot overflow to Infinity.
  let base = options.initialMs;
  for (let i = 0; i < exponent && base < options.maxMs; i++) base *= factor;
  const capped = Math.min(options.maxMs, base);
  return Math.round(capped * (1 - jitter * random()));
}

/**
 * Runs `fn` until it succeeds, waiting `backoffDelay` between attempts while its error is retryable.
 * A fatal error is rethrown; resolves undefined if `signal` aborts first.
 */
export async function retryWithBackoff<T>(options: {
  readonly what: string;
  readonly fn: () => Promise<T>;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  readonly backoff: BackoffOptions;
  readonly random?: () => number;
}): Promise<T | undefined> {
  const { what, fn, signal, logger } = options;
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      return await raceAbort(fn(), signal);
    } catch (err) {
      if (signal.aborted) return undefined;
      if (!isRetryable(err)) throw err;
      const retryInMs = backoffDelay(attempt, options.backoff, options.random);
      logger.warn({ err, attempt: attempt + 1, retryInMs }, `${what} failed; retrying`);
      await sleep(retryInMs, signal);
    }
  }
  return undefined;
}

/** `promise`, or undefined as soon as `signal` aborts (the work itself is not cancelled). */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.resolve(undefined);
  }
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(() => {});
      resolve(undefined);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
