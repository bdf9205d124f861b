// Turns what viem throws into one line an operator can act on: a revert becomes the cluster's custom
// error with its arguments by name (decoded from the ABI in shared/src/contracts/abi.ts), an RPC failure
// says it may be retried.

import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { type ClusterErrorName, isClusterErrorName } from "@attestmesh/shared/contracts/errors.ts";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import {
  BaseError,
  ContractFunctionRevertedError,
  decodeErrorResult,
  type Hex,
  HttpRequestError,
  InsufficientFundsError,
  RawContractError,
  TimeoutError,
} from "viem";

interface AbiItem {
  readonly type: string;
  readonly name?: string;
  readonly inputs?: readonly { readonly name?: string }[];
}

/** What the operator can do about some of the cluster's refusals. */
const HINTS: Readonly<Partial<Record<ClusterErrorName, string>>> = {
  NotOwner: "this key is not the cluster owner; use the owner's key, or --calldata for a multisig owner",
  AppIdRevoked: "a revoked app id can never be allowed again; create a new member app",
  DeviceIdRevoked: "a revoked device can never be allowed again",
  AppIdNotAllowed: "allow the app id first (`attestmesh allow app <appId>`)",
  KmsRootNotAllowed: "allow the KMS root first (`attestmesh allow kms-root <address>`)",
  NotPendingOwner: "only the pending owner can accept; use its key, or --calldata for a Safe",
  MemberNotActive: "the member already left or was evicted",
  MemberAlreadyEvicted: "the member was already evicted; nothing to do",
  MemberUnknown: "no member has this id; `attestmesh members` lists them",
  WireguardKeyInUse: "another app id registered this WireGuard key first; evict its member to free it",
  IdentityKeyInUse: "another app id registered this identity key first; evict its member to free it",
  ZeroIdentifier: "a zero id or hash is never a valid entry",
};

function formatValue(value: unknown): string {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return `[${value.map(formatValue).join(", ")}]`;
  return String(value);
}

/** `Name(arg: value, …)` with the argument names the ABI gives. */
export function formatCustomError(name: string, args: readonly unknown[]): string {
  const item = (clusterAbi as readonly AbiItem[]).find((i) => i.type === "error" && i.name === name);
  const parts = args.map((arg, i) => {
    const label = item?.inputs?.[i]?.name;
    return label ? `${label}: ${formatValue(arg)}` : formatValue(arg);
  });
  return `${name}(${parts.join(", ")})`;
}

function revertData(error: BaseError): Hex | undefined {
  const raw = error.walk((e) => e instanceof RawContractError) as RawContractError | null;
  const data = raw?.data;
  if (typeof data === "string") return data;
  if (data && typeof data === "object" && "data" in data) return data.data;
  const withData = error.walk((e) => typeof (e as { data?: unknown }).data === "string") as {
    data?: Hex;
  } | null;
  return withData?.data;
}

/** Explains a failed chain call (`what` says which, e.g. "addComposeHash") as an AttestmeshError. */
export function decodeChainError(error: unknown, what: string): AttestmeshError {
  if (error instanceof AttestmeshError) return error;
  if (!(error instanceof BaseError)) {
    return new AttestmeshError(`${what} failed: ${String((error as Error)?.message ?? error)}`, {
      code: "ChainCallFailed",
      cause: error,
    });
  }
  const reverted = error.walk(
    (e) => e instanceof ContractFunctionRevertedError,
  ) as ContractFunctionRevertedError | null;
  let name = reverted?.data?.errorName;
  let args: readonly unknown[] = reverted?.data?.args ?? [];
  if (name === undefined) {
    const data = reverted?.raw ?? revertData(error);
    if (data && data.length >= 10) {
      try {
        const decoded = decodeErrorResult({ abi: clusterAbi, data });
        name = decoded.errorName;
        args = decoded.args ?? [];
      } catch {
        // Not one of the cluster's errors: fall through to the generic message.
      }
    }
  }
  if (name !== undefined && name !== "Error" && name !== "Panic") {
    const hint = isClusterErrorName(name) ? HINTS[name] : undefined;
    return new AttestmeshError(
      `the cluster refused ${what}: ${formatCustomError(name, args)}${hint ? ` — ${hint}` : ""}`,
      { code: name, details: { errorName: name, args }, cause: error },
    );
  }
  if (reverted) {
    return new AttestmeshError(`${what} reverted: ${reverted.reason ?? reverted.shortMessage}`, {
      code: "Reverted",
      cause: error,
    });
  }
  if (error.walk((e) => e instanceof InsufficientFundsError)) {
    return new AttestmeshError(`${what}: the sending account has not enough ETH for gas; fund it`, {
      code: "InsufficientFunds",
      cause: error,
    });
  }
  const transient = error.walk((e) => e instanceof HttpRequestError || e instanceof TimeoutError);
  return new AttestmeshError(`${what} failed: ${error.shortMessage}`, {
    code: transient ? "RpcUnreachable" : "ChainCallFailed",
    retryable: Boolean(transient),
    cause: error,
  });
}
