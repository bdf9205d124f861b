// The sponsorship service's error codes, in one list, and the service kit's factories over them.
import { errorFactories, SERVICE_ERROR_CODES } from "@attestmesh/shared/service/errors.ts";

export const SPONSOR_ERROR_CODES = [...SERVICE_ERROR_CODES, "SignerMismatch"] as const;

export type SponsorErrorCode = (typeof SPONSOR_ERROR_CODES)[number];

export const { retryableError, fatalError } = errorFactories(SPONSOR_ERROR_CODES);
