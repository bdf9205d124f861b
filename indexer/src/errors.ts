// The indexer's one error type: the shared AttestmeshError, built through two factories so every throw
// site says whether waiting can help.
import { AttestmeshError, type AttestmeshErrorOptions } from "@attestmesh/shared/errors.ts";

export { AttestmeshError } from "@attestmesh/shared/errors.ts";

type Extra = Omit<AttestmeshErrorOptions, "code" | "retryable">;

/** A failure that may pass by itself (RPC down, guest agent not up yet). */
export function retryableError(code: string, message: string, extra: Extra = {}): AttestmeshError {
  return new AttestmeshError(message, { ...extra, code, retryable: true });
}

/** A failure that retrying cannot fix; the message says what to change. */
export function fatalError(code: string, message: string, extra: Extra = {}): AttestmeshError {
  return new AttestmeshError(message, { ...extra, code, retryable: false });
}
