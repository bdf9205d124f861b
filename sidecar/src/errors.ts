// The sidecar's one error type: the shared AttestmeshError (stable `code`, `retryable`, `details`),
// built through two factories so every throw site says up front whether waiting can help.
import { AttestmeshError, type AttestmeshErrorOptions } from "@attestmesh/shared/errors.ts";

export { AttestmeshError, isAttestmeshError } from "@attestmesh/shared/errors.ts";

type Extra = Omit<AttestmeshErrorOptions, "code" | "retryable">;

/** A failure that may pass by itself or by someone else's action (RPC down, allowlist not landed yet). */
export function retryableError(code: string, message: string, extra: Extra = {}): AttestmeshError {
  return new AttestmeshError(message, { ...extra, code, retryable: true });
}

/** A failure that retrying cannot fix; the sidecar stops and says what to change. */
export function fatalError(code: string, message: string, extra: Extra = {}): AttestmeshError {
  return new AttestmeshError(message, { ...extra, code, retryable: false });
}

/** Whether `error` may go away by retrying: our own errors say so; anything unknown is treated as I/O. */
export function isRetryable(error: unknown): boolean {
  return error instanceof AttestmeshError ? error.retryable : true;
}
