// The indexer's error codes, in one list, and the service kit's factories over them.
import { errorFactories, SERVICE_ERROR_CODES } from "@attestmesh/shared/service/errors.ts";

export { AttestmeshError } from "@attestmesh/shared/errors.ts";

export const INDEXER_ERROR_CODES = [...SERVICE_ERROR_CODES] as const;

export type IndexerErrorCode = (typeof INDEXER_ERROR_CODES)[number];

export const { retryableError, fatalError } = errorFactories(INDEXER_ERROR_CODES);
