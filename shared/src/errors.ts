/**
 * The one error class of the shared package. Every failure carries a stable
 * `code` (named like the Solidity custom error that mirrors it, where there is
 * one) and says whether retrying the same operation can help, so callers can
 * branch on data instead of parsing messages.
 */

export type AttestmeshErrorOptions = {
  /** Stable machine-readable name of the failure, e.g. `SignatureMalleable`. */
  readonly code: string;
  /** True when the same call may succeed later (I/O, timeouts); false for bad input. */
  readonly retryable?: boolean;
  /** The values that caused the failure; never secrets. */
  readonly details?: Readonly<Record<string, unknown>>;
  readonly cause?: unknown;
};

export class AttestmeshError extends Error {
  override readonly name: string = "AttestmeshError";
  readonly code: string;
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, unknown>>;

  /** `message` should say what went wrong and what to do next. */
  constructor(message: string, options: AttestmeshErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code;
    this.retryable = options.retryable ?? false;
    this.details = options.details ?? {};
  }
}

/** Narrows `error` to an `AttestmeshError`, optionally with a given `code`. */
export function isAttestmeshError(error: unknown, code?: string): error is AttestmeshError {
  return error instanceof AttestmeshError && (code === undefined || error.code === code);
}
