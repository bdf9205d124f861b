// Error factories over the shared AttestmeshError. Each package passes its one list of codes, so every
// throw site, refusal table and status mapping is checked by the compiler, and every throw says up
// front whether waiting can help (retryable) or a person must change something (fatal).
import { AttestmeshError, type AttestmeshErrorOptions } from "../errors.ts";

export type ErrorExtra = Omit<AttestmeshErrorOptions, "code" | "retryable">;

export interface ErrorFactories<Code extends string> {
  /** A failure that may pass by itself or by someone else's action (RPC down, allowlist not landed yet). */
  retryableError(code: Code, message: string, extra?: ErrorExtra): AttestmeshError;
  /** A failure that retrying cannot fix; the message says what to change. */
  fatalError(code: Code, message: string, extra?: ErrorExtra): AttestmeshError;
}

/** The two factories for a package whose codes are `codes`. */
export function errorFactories<const Code extends string>(_codes: readonly Code[]): ErrorFactories<Code> {
  return {
    retryableError: (code, message, extra = {}) =>
      new AttestmeshError(message, { ...extra, code, retryable: true }),
    fatalError: (code, message, extra = {}) =>
      new AttestmeshError(message, { ...extra, code, retryable: false }),
  };
}

/** Whether `error` may go away by retrying: our own errors say so; anything unknown is treated as I/O. */
export function isRetryable(error: unknown): boolean {
  return error instanceof AttestmeshError ? error.retryable : true;
}

/** The codes every daemon's kit modules throw (configuration, dstack, chain id, listening). */
export const SERVICE_ERROR_CODES = [
  "InvalidConfig",
  "DstackUnavailable",
  "InvalidAppId",
  "InvalidInfo",
  "InvalidDerivedKey",
  "InvalidSignatureChain",
  "InvalidSignatureLength",
  "InvalidSignatureV",
  "SignatureRecoveryFailed",
  "DstackGuestApiV1Unavailable",
  "DstackRequestRefused",
  "InvalidAttestation",
  "Ed25519ChainUnsupported",
  "InvalidPinnedCompose",
  "PinnedSettingInEnvironment",
  "RpcProvidersNotPinned",
  "RpcProviderNotPinned",
  "PinnedSettingMismatch",
  "RpcUnavailable",
  "ChainIdMismatch",
  "SocketPathTaken",
  "SocketInUse",
  "SocketPathTooLong",
] as const;

export type ServiceErrorCode = (typeof SERVICE_ERROR_CODES)[number];

export const { retryableError, fatalError } = errorFactories(SERVICE_ERROR_CODES);
