// The sidecar's error codes, in one list, and the service kit's factories over them: every throw site
// names a code from this list and says up front whether waiting can help. The API's status mapping is
// keyed by the same type, so the compiler checks it.
import { CLUSTER_ERROR_NAMES, type ClusterErrorName } from "@attestmesh/shared/contracts/errors.ts";
import {
  type ErrorFactories,
  errorFactories,
  SERVICE_ERROR_CODES,
} from "@attestmesh/shared/service/errors.ts";

export { AttestmeshError, isAttestmeshError } from "@attestmesh/shared/errors.ts";
export { isRetryable } from "@attestmesh/shared/service/errors.ts";

export const SIDECAR_ERROR_CODES = [
  ...SERVICE_ERROR_CODES,
  "ApiSocketFailed",
  "ApiSocketInUse",
  "ApiSocketPathTaken",
  "ApiSocketPathTooLong",
  "AppIdHasMember",
  "ChainUnknown",
  "ClusterNotFound",
  "CskTransactionReverted",
  "CursorCorrupt",
  "CursorUnreadable",
  "CursorUnwritable",
  "EnvelopeMismatch",
  "GasKeyMissing",
  "InfoUnavailable",
  "GasKeyUnfunded",
  "HealthServerFailed",
  "InboxCorrupt",
  "InboxForeign",
  "InboxFull",
  "InboxInUse",
  "InboxUnusable",
  "InboxUnwritable",
  "InconsistentKeyChains",
  "InvalidEndpointsFile",
  "InvalidIdentityKey",
  "MalformedEnvelope",
  "MemberAccountSignsOnlyOperations",
  "MeshSocketUnavailable",
  "NotRegistered",
  "OneCallPerOperation",
  "PayloadTooLarge",
  "RecipientNotFound",
  "RecipientNotVerified",
  "SenderSignatureInvalid",
  "SenderNotVerified",
  "RegistrationNotVisible",
  "RegistrationReverted",
  "RpcError",
  "SendReverted",
  "SponsorRefused",
  "TransportConnectFailed",
  "Undecryptable",
  "UnknownGroup",
] as const;

export type SidecarErrorCode = (typeof SIDECAR_ERROR_CODES)[number];

/** A sidecar code, or the cluster's custom error that refused a write (passed through by name). */
export type SidecarCode = SidecarErrorCode | ClusterErrorName;

const factories: ErrorFactories<SidecarCode> = errorFactories([
  ...SIDECAR_ERROR_CODES,
  ...CLUSTER_ERROR_NAMES,
]);
export const { retryableError, fatalError } = factories;
