// The sponsorship policy: which UserOperations the operator pays for. An operation is sponsored only
// when it is for this chain and EntryPoint, comes from a member account of this cluster's factory,
// calls the cluster (nothing else) with zero value, is one of the member actions nodes send, comes
// from the member (or, for `register`, the app's own member key), carries the member key's signature
// over the request (so a stranger replaying a member's public calldata gets nothing charged to it),
// stays within the per-operation gas and cost bounds, changes something (a registration the chain
// already holds is a no-op: nothing to sponsor) and would succeed on chain now. Every refusal names
// its reason. Caps are applied on top by the service (see caps.ts).
import { clusterAbi, memberAccountAbi, memberAccountFactoryAbi } from "@attestmesh/shared/contracts/abi.ts";
import { sponsorRequestDigest } from "@attestmesh/shared/contracts/sponsorRequest.ts";
import { secp256k1 } from "@noble/curves/secp256k1";
import {
  type Address,
  BaseError,
  bytesToHex,
  type Chain,
  ContractFunctionRevertedError,
  decodeFunctionData,
  type Hex,
  hexToBytes,
  isAddressEqual,
  isHex,
  type PublicClient,
  recoverMessageAddress,
  size,
  type Transport,
} from "viem";
import { publicKeyToAddress } from "viem/accounts";
import type { ApprovedOperation } from "./approval.ts";

/**
 * The member actions a node sends; everything else (owner calls, views) is never sponsored. A node
 * that pulled a CSK confirms the epoch (confirmCsk, normally one per epoch) and may re-open one nobody
 * serves (reopenCsk); refused, they were retried by every puller and never landed.
 */
export const SPONSORED_FUNCTIONS = [
  "register",
  "leaveCluster",
  "commitCsk",
  "confirmCsk",
  "reopenCsk",
  "send",
] as const;
export type SponsoredFunction = (typeof SPONSORED_FUNCTIONS)[number];

export const REFUSAL_REASONS = [
  "wrong-chain",
  "wrong-entry-point",
  "unknown-factory",
  "not-member-account",
  "disallowed-call",
  "disallowed-target",
  "non-zero-value",
  "disallowed-function",
  "over-limit",
  "no-member-proof",
  "not-own-registration",
  "not-member",
  "already-member",
  "not-registrable",
  "would-revert",
  "cap-exceeded",
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export type PolicyDecision =
  | {
      readonly approved: true;
      readonly owner: Address;
      readonly functionName: SponsoredFunction;
      /** The most the operation can cost the paymaster, in wei. */
      readonly maxCost: bigint;
    }
  | {
      readonly approved: false;
      readonly reason: RefusalReason;
      readonly detail: string;
      readonly owner?: Address;
      readonly functionName?: string;
    };

/** The chain reads the policy needs, behind an interface so the decision logic stays plain. */
export interface PolicyChain {
  accountOf(owner: Address): Promise<Address>;
  /** The account's `owner()`, or undefined when `account` is no contract that answers it. */
  accountOwner(account: Address): Promise<Address | undefined>;
  member(memberId: bigint): Promise<MemberRecord>;
  /** The member an app id holds, and whether it is active. */
  memberOfApp(appId: Address): Promise<{ readonly memberId: bigint; readonly active: boolean }>;
  /** Runs the cluster call from `from` against the latest state; the custom error name on a revert. */
  simulate(
    from: Address,
    data: Hex,
  ): Promise<{ readonly ok: true } | { readonly ok: false; readonly error: string }>;
}

export interface MemberRecord {
  readonly active: boolean;
  readonly memberKey: Address;
  readonly wireguardKey: Hex;
  readonly identityKey: Hex;
}

/** Per-operation bounds: no single approval may reserve more than these. */
export interface OperationLimits {
  readonly maxCostWei: bigint;
  readonly maxCallGas: bigint;
  readonly maxVerificationGas: bigint;
  readonly maxPreVerificationGas: bigint;
}

export const DEFAULT_OPERATION_LIMITS: OperationLimits = {
  maxCostWei: 10_000_000_000_000_000n,
  maxCallGas: 2_000_000n,
  maxVerificationGas: 1_000_000n,
  maxPreVerificationGas: 5_000_000n,
};

export interface PolicyConfig {
  readonly chainId: number;
  readonly entryPoint: Address;
  readonly cluster: Address;
  readonly accountFactory: Address;
  readonly limits?: OperationLimits;
}

export interface PolicyRequest {
  readonly userOp: ApprovedOperation;
  readonly entryPoint: Address;
  readonly chainId: number;
  /** The ERC-7677 context: `{ memberSignature }`, the member key's signature over the request. */
  readonly context?: unknown;
}

export function maxCostOf(op: ApprovedOperation): bigint {
  const gas =
    op.callGasLimit +
    op.verificationGasLimit +
    op.preVerificationGas +
    (op.paymasterVerificationGasLimit ?? 0n) +
    (op.paymasterPostOpGasLimit ?? 0n);
  return gas * op.maxFeePerGas;
}

function refuse(
  reason: RefusalReason,
  detail: string,
  extra: { owner?: Address; functionName?: string } = {},
) {
  return { approved: false as const, reason, detail, ...extra };
}

function memberKeyOf(memberPubkey: Hex): Address | undefined {
  try {
    const point = secp256k1.ProjectivePoint.fromHex(hexToBytes(memberPubkey));
    return publicKeyToAddress(bytesToHex(point.toRawBytes(false)));
  } catch {
    return undefined;
  }
}

/** Who signed the request's `context.memberSignature`, or undefined when it carries none that recovers. */
async function memberProofSigner(
  request: PolicyRequest,
  op: ApprovedOperation,
): Promise<Address | undefined> {
  const context = request.context;
  if (typeof context !== "object" || context === null) return undefined;
  const signature = (context as { memberSignature?: unknown }).memberSignature;
  if (typeof signature !== "string" || !isHex(signature) || size(signature) !== 65) return undefined;
  const digest = sponsorRequestDigest({
    chainId: request.chainId,
    entryPoint: request.entryPoint,
    sender: op.sender,
    nonce: op.nonce,
    factory: op.factory,
    factoryData: op.factoryData,
    callData: op.callData,
  });
  try {
    return await recoverMessageAddress({ message: { raw: digest }, signature });
  } catch {
    return undefined;
  }
}

async function ownerOf(op: ApprovedOperation, config: PolicyConfig, chain: PolicyChain) {
  if (op.factory !== undefined) {
    if (!isAddressEqual(op.factory, config.accountFactory)) {
      return refuse(
        "unknown-factory",
        `initCode uses factory ${op.factory}, not this cluster's ${config.accountFactory}`,
      );
    }
    let owner: Address;
    try {
      const decoded = decodeFunctionData({ abi: memberAccountFactoryAbi, data: op.factoryData ?? "0x" });
      if (decoded.functionName !== "createAccount") throw new Error(decoded.functionName);
      owner = decoded.args[0];
    } catch {
      return refuse("unknown-factory", "initCode is not createAccount(owner) on the member-account factory");
    }
    return senderIsAccountOf(owner, op, chain);
  }
  const owner = await chain.accountOwner(op.sender);
  if (owner === undefined) {
    return refuse("not-member-account", `sender ${op.sender} is no member account and carries no initCode`);
  }
  return senderIsAccountOf(owner, op, chain);
}

/** `owner` when the operation's sender is the member account the factory gives `owner`. */
async function senderIsAccountOf(owner: Address, op: ApprovedOperation, chain: PolicyChain) {
  const expected = await chain.accountOf(owner);
  if (!isAddressEqual(expected, op.sender)) {
    return refuse(
      "not-member-account",
      `sender ${op.sender} is not the member account ${expected} of ${owner}`,
    );
  }
  return { owner };
}

/** Applies the policy to one operation (caps aside). Chain reads that fail throw; the caller answers "retry". */
export async function evaluatePolicy(
  request: PolicyRequest,
  config: PolicyConfig,
  chain: PolicyChain,
): Promise<PolicyDecision> {
  const op = request.userOp;
  if (request.chainId !== config.chainId) {
    return refuse(
      "wrong-chain",
      `chain ${request.chainId} asked, this sponsor serves chain ${config.chainId}`,
    );
  }
  if (!isAddressEqual(request.entryPoint, config.entryPoint)) {
    return refuse(
      "wrong-entry-point",
      `EntryPoint ${request.entryPoint} asked, this sponsor serves ${config.entryPoint}`,
    );
  }
  const limits = config.limits ?? DEFAULT_OPERATION_LIMITS;
  const bounds: Array<[string, bigint, bigint]> = [
    ["callGasLimit", op.callGasLimit, limits.maxCallGas],
    ["verificationGasLimit", op.verificationGasLimit, limits.maxVerificationGas],
    ["preVerificationGas", op.preVerificationGas, limits.maxPreVerificationGas],
    ["maximum cost (wei)", maxCostOf(op), limits.maxCostWei],
  ];
  for (const [what, value, bound] of bounds) {
    if (value > bound) return refuse("over-limit", `${what} ${value} is over this sponsor's bound ${bound}`);
  }
  const who = await ownerOf(op, config, chain);
  if ("approved" in who) return who;
  const { owner } = who;

  const proof = await memberProofSigner(request, op);
  if (proof === undefined || !isAddressEqual(proof, owner)) {
    return refuse(
      "no-member-proof",
      proof === undefined
        ? "the request carries no context.memberSignature by the member key"
        : `context.memberSignature is by ${proof}, not the account's member key ${owner}`,
      { owner },
    );
  }

  let target: Address;
  let value: bigint;
  let clusterCall: Hex;
  try {
    const decoded = decodeFunctionData({ abi: memberAccountAbi, data: op.callData });
    if (decoded.functionName !== "execute") throw new Error(decoded.functionName);
    [target, value, clusterCall] = decoded.args;
  } catch {
    return refuse("disallowed-call", "callData is not execute(target, value, data)", { owner });
  }
  if (!isAddressEqual(target, config.cluster)) {
    return refuse("disallowed-target", `the call targets ${target}, not the cluster ${config.cluster}`, {
      owner,
    });
  }
  if (value !== 0n) return refuse("non-zero-value", `the call sends ${value} wei`, { owner });

  let functionName: string;
  let args: readonly unknown[];
  try {
    const decoded = decodeFunctionData({ abi: clusterAbi, data: clusterCall });
    functionName = decoded.functionName;
    args = decoded.args ?? [];
  } catch {
    return refuse("disallowed-function", "the cluster call matches no cluster function", { owner });
  }
  if (!(SPONSORED_FUNCTIONS as readonly string[]).includes(functionName)) {
    return refuse("disallowed-function", `${functionName} is not a sponsored member action`, {
      owner,
      functionName,
    });
  }
  const fn = functionName as SponsoredFunction;

  if (fn === "register") {
    const proof = args[0] as { appId: Address; memberPubkey: Hex };
    const memberKey = memberKeyOf(proof.memberPubkey);
    if (memberKey === undefined || !isAddressEqual(memberKey, owner)) {
      return refuse(
        "not-own-registration",
        `the registration is for member key ${memberKey ?? "(invalid)"} of app ${proof.appId}, not the account owner ${owner}`,
        { owner, functionName },
      );
    }
    // The cluster answers a registration it already holds with the existing id and changes nothing
    // (without checking the signature): paying for it would only burn the member's caps.
    const held = await chain.memberOfApp(proof.appId);
    if (held.active) {
      const record = await chain.member(held.memberId);
      const [, wireguardKey, identityKey] = args as readonly [unknown, Hex, Hex];
      if (
        isAddressEqual(record.memberKey, owner) &&
        record.wireguardKey.toLowerCase() === wireguardKey.toLowerCase() &&
        record.identityKey.toLowerCase() === identityKey.toLowerCase()
      ) {
        return refuse(
          "already-member",
          `app ${proof.appId} is already active member ${held.memberId} with this record; nothing to sponsor`,
          { owner, functionName },
        );
      }
    }
  } else {
    const memberId = args[0] as bigint;
    const record = await chain.member(memberId);
    if (!record.active || !isAddressEqual(record.memberKey, owner)) {
      return refuse("not-member", `member ${memberId} is not an active member with key ${owner}`, {
        owner,
        functionName,
      });
    }
  }
  // The cluster's own checks (app id allowed and registrable, signatures, epochs, duplicates): the
  // operator pays only for calls that succeed now.
  const simulated = await chain.simulate(op.sender, clusterCall);
  if (!simulated.ok) {
    return refuse(
      fn === "register" ? "not-registrable" : "would-revert",
      `the cluster would refuse ${fn}: ${simulated.error}`,
      { owner, functionName },
    );
  }
  return { approved: true, owner, functionName: fn, maxCost: maxCostOf(op) };
}

export function createPolicyChain(
  client: PublicClient<Transport, Chain | undefined>,
  config: Pick<PolicyConfig, "cluster" | "accountFactory">,
): PolicyChain {
  return {
    accountOf: (owner) =>
      client.readContract({
        address: config.accountFactory,
        abi: memberAccountFactoryAbi,
        functionName: "accountOf",
        args: [owner],
      }),
    async accountOwner(account) {
      const code = await client.getCode({ address: account });
      if (code === undefined || code === "0x") return undefined;
      try {
        return await client.readContract({ address: account, abi: memberAccountAbi, functionName: "owner" });
      } catch {
        return undefined;
      }
    },
    async member(memberId) {
      const record = await client.readContract({
        address: config.cluster,
        abi: clusterAbi,
        functionName: "member",
        args: [memberId],
      });
      return {
        active: record.status === 1,
        memberKey: record.memberKey,
        wireguardKey: record.wireguardKey,
        identityKey: record.identityKey,
      };
    },
    async memberOfApp(appId) {
      const [memberId, active] = await client.readContract({
        address: config.cluster,
        abi: clusterAbi,
        functionName: "memberOfApp",
        args: [appId],
      });
      return { memberId, active };
    },
    async simulate(from, data) {
      // Decoded here so the revert decodes against the cluster ABI (the reason a refusal gives).
      const { functionName, args } = decodeFunctionData({ abi: clusterAbi, data });
      try {
        await client.simulateContract({
          address: config.cluster,
          abi: clusterAbi,
          functionName,
          args,
          account: from,
        } as never);
        return { ok: true };
      } catch (error) {
        const reverted =
          error instanceof BaseError
            ? error.walk((e) => e instanceof ContractFunctionRevertedError)
            : undefined;
        if (!(reverted instanceof ContractFunctionRevertedError)) throw error;
        return { ok: false, error: reverted.data?.errorName ?? reverted.reason ?? "revert without data" };
      }
    },
  };
}
