// Makes this node a member. A restarted node finds its active record and does nothing; otherwise it
// signs EIP-712 `Register` with its member key and hands the call to the cluster writer, which
// simulates it (so a refusal is decoded without spending gas), submits it (a sponsored UserOperation,
// or a transaction paid by the gas key) and waits for its inclusion. A refusal the owner can fix
// (the allowlist change has not landed yet) is retried with capped exponential backoff and jitter, and
// logged with the exact check that refused it and what the owner must do; any other refusal is fatal.
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { type ClusterErrorName, isClusterErrorName } from "@attestmesh/shared/contracts/errors.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { CONTRACT_KEY_CHAIN_ERRORS } from "@attestmesh/shared/dstack/verify.ts";
import {
  type Address,
  BaseError,
  ContractFunctionRevertedError,
  decodeEventLog,
  type Hex,
  InsufficientFundsError,
} from "viem";
import { signTypedData } from "viem/accounts";
import { type BackoffOptions, backoffDelay, raceAbort } from "./backoff.ts";
import type { ChainContext } from "./chain/client.ts";
import type { ClusterReader } from "./chain/cluster.ts";
import type { ClusterWriter, ReceiptLog } from "./chain/writer.ts";
import { AttestmeshError, fatalError, retryableError } from "./errors.ts";
import type { KeySource, NodeKeys } from "./keys.ts";
import type { Logger } from "./log.ts";
import { isSameNode, type Member, type MemberKeys } from "./model/member.ts";
import { sleep } from "./sleep.ts";

/** The compose hash and device id a member states at registration (its guest agent's Info). */
export interface RuntimeClaims {
  readonly composeHash: Hex;
  readonly deviceId: Hex;
}

export interface Registration {
  readonly memberId: bigint;
  /** False when the node was already an active member with these keys (nothing was sent). */
  readonly submitted: boolean;
  readonly txHash?: Hex;
  /** The address the registration came from (gas key or member account), when one was sent. */
  readonly from?: Address;
  readonly sponsored?: boolean;
  readonly gasUsed?: bigint;
}

/** Why a registration attempt did not succeed, in terms an operator can act on. */
export interface Refusal {
  /** The contract's custom error name, or a sidecar code for non-revert failures. */
  readonly code: string;
  readonly retryable: boolean;
  /** What has to happen for the registration to succeed. */
  readonly fix: string;
  readonly details: Readonly<Record<string, unknown>>;
}

interface RefusalContext {
  readonly keys: NodeKeys;
  readonly chain: ChainContext;
}

type RefusalRule = (args: readonly unknown[], ctx: RefusalContext) => { retryable: boolean; fix: string };

/** Every refusal `register` can revert with, whether the owner can fix it, and how. */
export const REFUSALS: Readonly<Partial<Record<ClusterErrorName, RefusalRule>>> = {
  AppIdNotAllowed: (_args, { keys, chain }) => ({
    retryable: true,
    fix: `the cluster owner must allow app id ${keys.appId} on cluster ${chain.cluster} (chain ${chain.chainId}); this node retries until the allowlist change lands`,
  }),
  KmsRootNotAllowed: (args, { chain }) => ({
    retryable: true,
    fix: `the cluster owner must allow KMS root ${String(args[0])} on cluster ${chain.cluster}, and only if that dstack KMS is trusted (a simulator root belongs on a devnet cluster only); this node retries until then`,
  }),
  MeshFull: (_args, { chain }) => ({
    retryable: true,
    fix: `every address of the mesh CIDR is in use; the owner of cluster ${chain.cluster} must evict members or deploy a cluster with a larger mesh`,
  }),
  RegistrationSignatureMismatch: () => ({
    retryable: true,
    fix: "the registration nonce changed between reading and submitting (a concurrent registration of this app id?); retrying with the new nonce",
  }),
  AppIdRevoked: (args, { keys }) => ({
    retryable: false,
    fix: `app id ${keys.appId} was revoked${revokedAtText(args[1])}; a revocation is permanent, so run this node under a new app id`,
  }),
  AppIdHasMember: (args, { keys }) => ({
    retryable: false,
    fix: `app id ${keys.appId} already has active member ${String(args[1])} with other keys: another instance of this app is running, or its key paths changed. One app id serves one member; the owner must evict member ${String(args[1])} first`,
  }),
  ComposeHashNotAllowed: (args, { chain }) => ({
    retryable: true,
    fix: `this node runs compose hash ${String(args[0])}, which cluster ${chain.cluster} does not allow (never added, or withdrawn); the owner must allow it, or the operator must deploy an allowed compose. This node retries until then`,
  }),
  DeviceNotAllowed: (args, { chain }) => ({
    retryable: true,
    fix: `this node runs on device ${String(args[0])}, which cluster ${chain.cluster} does not allow; the owner must allow the device (or any device), or the operator must move the node. This node retries until then`,
  }),
  DeviceIdRevoked: (args) => ({
    retryable: false,
    fix: `this node runs on device ${String(args[0])}, revoked${revokedAtText(args[1])}; a revocation is permanent, so run the node on another machine`,
  }),
  MemberNotStanding: (args, { chain }) => ({
    retryable: false,
    fix: `member ${String(args[0])} is no longer admitted by the policy of cluster ${chain.cluster} (standing ${String(args[1])}: its device was revoked, or its compose hash or KMS root removed); the owner evicts it with \`attestmesh evict --stale\``,
  }),
  ZeroKey: () => ({
    retryable: false,
    fix: "a WireGuard or identity key derived as zero; this cannot happen with dstack keys, report it",
  }),
  ...Object.fromEntries(
    CONTRACT_KEY_CHAIN_ERRORS.map((name) => [
      name,
      () => ({
        retryable: false,
        fix: "the contract refused the dstack key chain although it verified locally; the sidecar and the contract disagree, report it",
      }),
    ]),
  ),
};

function revokedAtText(value: unknown): string {
  if (typeof value !== "bigint" && typeof value !== "number") return "";
  return ` at ${new Date(Number(value) * 1000).toISOString()}`;
}

/** Turns any failure of an attempt into a `Refusal`. */
export function classifyRegistrationError(error: unknown, ctx: RefusalContext): Refusal {
  if (error instanceof AttestmeshError) {
    return { code: error.code, retryable: error.retryable, fix: error.message, details: error.details };
  }
  if (error instanceof BaseError) {
    const reverted = error.walk((e) => e instanceof ContractFunctionRevertedError);
    if (reverted instanceof ContractFunctionRevertedError) {
      const name = reverted.data?.errorName;
      const args = reverted.data?.args ?? [];
      const rule = name !== undefined && isClusterErrorName(name) ? REFUSALS[name] : undefined;
      if (name !== undefined && rule !== undefined) {
        return { code: name, ...rule(args, ctx), details: { args: args.map(String) } };
      }
      return {
        code: name ?? "UnknownRevert",
        retryable: false,
        fix: `the cluster refused the registration with ${name ?? `undecoded data ${reverted.raw ?? "(none)"}`}, which this sidecar does not know; check ATTESTMESH_CLUSTER points at an attestmesh cluster of a matching version`,
        details: { args: args.map(String) },
      };
    }
    if (error.walk((e) => e instanceof InsufficientFundsError) instanceof InsufficientFundsError) {
      return {
        code: "GasKeyUnfunded",
        retryable: true,
        fix: `the gas account ${ctx.chain.wallet?.account.address ?? "(none)"} cannot pay for the registration; fund it`,
        details: {},
      };
    }
  }
  return {
    code: "RpcError",
    retryable: true,
    fix: `the chain could not be reached or refused the request (${error instanceof Error ? error.message.split("\n")[0] : String(error)}); retrying`,
    details: {},
  };
}

export interface RegisterOptions {
  readonly chain: ChainContext;
  readonly reader: ClusterReader;
  /** Undefined when the node has neither a bundler nor a gas key: it can run but cannot register. */
  readonly writer: ClusterWriter | undefined;
  readonly keys: NodeKeys;
  /** What this node states at registration: the compose hash and device id its guest agent reports. */
  readonly claims: RuntimeClaims;
  readonly confirmations: number;
  readonly logger: Logger;
  readonly signal: AbortSignal;
  readonly backoff: BackoffOptions;
  readonly random?: () => number;
  /** Receipt wait before the attempt counts as failed (and the next attempt re-checks the chain). */
  readonly receiptTimeoutMs?: number;
  /** Called after every attempt with its outcome code ("registered", "already-member", or a refusal code). */
  readonly onAttempt?: (outcome: string) => void;
  /**
   * Called once a registration transaction succeeded, before its member id is read back: the chain
   * already holds the record, so the membership view can start catching up while that read runs.
   * `claimed` is this node's record as the receipt's MemberRegistered log states it (`claimedRecord`),
   * and `block` the block the receipt names: what the RPC or bundler that answered says, never state;
   * `claimed` is undefined when the receipt has no such log.
   */
  readonly onIncluded?: (claimed: Member | undefined, block: bigint) => void;
  /** Called when a registration is signed and about to be submitted (not for a node already a member). */
  readonly onSubmitting?: () => void;
}

/**
 * The compose hash and device id this node states at registration, from its own guest agent's Info:
 * a TEE running owner-approved code reports its measurements honestly, and the cluster records them
 * so that revoking the device or withdrawing the compose reaches this member.
 */
export async function readRuntimeClaims(source: KeySource): Promise<RuntimeClaims> {
  if (source.info === undefined) {
    throw fatalError(
      "InfoUnavailable",
      "the dstack key source cannot read Info (compose hash, device id); a member states both at registration.",
    );
  }
  const { composeHash, deviceId } = await source.info();
  return { composeHash, deviceId };
}

/** The four keys a record of this node carries (model/member.ts `isSameNode`). */
function ownKeys(keys: Pick<NodeKeys, "appId" | "member" | "wireguard" | "identity">): MemberKeys {
  return {
    appId: keys.appId,
    memberKey: keys.member.address,
    wireguardKey: keys.wireguard.publicKey,
    identityKey: keys.identity.publicKey,
  };
}

/** One attempt: check, sign, simulate, submit, wait. Throws on any refusal. */
export async function registerOnce(options: RegisterOptions): Promise<Registration> {
  const { chain, reader, keys, logger } = options;
  const appId = keys.appId;
  const existing = await reader.memberOfApp(appId);
  if (existing.active) {
    const record = await reader.member(existing.memberId);
    if (record !== undefined && isSameNode(record, ownKeys(keys))) {
      return { memberId: existing.memberId, submitted: false };
    }
    throw fatalError(
      "AppIdHasMember",
      `app id ${appId} already has active member ${existing.memberId} with other keys: another instance of this app is running, or its key paths changed. One app id serves one member; the owner must evict member ${existing.memberId} first.`,
      { details: { appId, memberId: existing.memberId.toString() } },
    );
  }
  const writer = options.writer;
  if (writer === undefined) {
    throw fatalError(
      "GasKeyMissing",
      `app id ${appId} is not a member yet and registering needs gas; set ATTESTMESH_BUNDLER_URL (sponsored) or ATTESTMESH_GAS_KEY to a funded account's key.`,
      { details: { appId } },
    );
  }
  const nonce = await reader.registrationNonce(appId);
  const signature = await signTypedData({
    privateKey: keys.member.secret.reveal(),
    domain: memberDomain(chain.chainId, chain.cluster),
    types: memberTypes,
    primaryType: "Register",
    message: {
      appId,
      wireguardKey: keys.wireguard.publicKey,
      identityKey: keys.identity.publicKey,
      composeHash: options.claims.composeHash,
      deviceId: options.claims.deviceId,
      nonce,
    },
  });
  options.onSubmitting?.();
  const receipt = await writer.submit(
    {
      functionName: "register",
      args: [
        keys.member.proof,
        keys.wireguard.publicKey,
        keys.identity.publicKey,
        { composeHash: options.claims.composeHash, deviceId: options.claims.deviceId },
        signature,
      ],
    },
    { confirmations: Math.max(1, options.confirmations), timeoutMs: options.receiptTimeoutMs ?? 120_000 },
  );
  const hash = receipt.txHash;
  logger.info(
    {
      txHash: hash,
      appId,
      nonce: nonce.toString(),
      from: receipt.from,
      sponsored: receipt.sponsored,
      gasUsed: receipt.gasUsed.toString(),
      ...(receipt.userOpHash === undefined ? {} : { userOpHash: receipt.userOpHash }),
    },
    "registration included",
  );
  if (receipt.status !== "success") {
    throw retryableError(
      "RegistrationReverted",
      `registration transaction ${hash} reverted on chain (the state changed after the simulation); retrying`,
      { details: { txHash: hash } },
    );
  }
  options.onIncluded?.(claimedRecord(receipt.logs ?? [], chain.cluster, keys), receipt.blockNumber);
  const after = await reader.memberOfApp(appId);
  if (!after.active) {
    throw retryableError(
      "RegistrationNotVisible",
      `registration ${hash} succeeded but the member is not active yet; retrying`,
      {
        details: { txHash: hash },
      },
    );
  }
  return {
    memberId: after.memberId,
    submitted: true,
    txHash: hash,
    from: receipt.from,
    sponsored: receipt.sponsored,
    gasUsed: receipt.gasUsed,
  };
}

/**
 * This node's record as its registration receipt's MemberRegistered log states it: the log the cluster
 * emitted (by address) carrying exactly this node's app id, member key, WireGuard key and identity key.
 * Only its member id and mesh IP are news, and both are the answering RPC's word (or the bundler's):
 * the reconciler may bring the interface up with them ahead of the membership view, peers only members
 * that view names, and lets the view correct them (reconcile/reconciler.ts `included`). Undefined when
 * no such log is there (a receipt without logs, another node's record, a log from another contract).
 */
export function claimedRecord(
  logs: readonly ReceiptLog[],
  cluster: Address,
  keys: Pick<NodeKeys, "appId" | "member" | "wireguard" | "identity">,
): Member | undefined {
  const own = ownKeys(keys);
  for (const log of logs) {
    if (log.address.toLowerCase() !== cluster.toLowerCase()) continue;
    let event: ReturnType<typeof decodeEventLog<typeof clusterAbi, "MemberRegistered">>;
    try {
      event = decodeEventLog({
        abi: clusterAbi,
        eventName: "MemberRegistered",
        topics: log.topics as [Hex, ...Hex[]],
        data: log.data,
      });
    } catch {
      continue;
    }
    if (!isSameNode(event.args, own)) continue;
    return {
      memberId: event.args.memberId,
      ...own,
      meshIp: event.args.meshIp,
      status: "active",
      registeredAt: 0,
    };
  }
  return undefined;
}

/**
 * Registers (or finds the existing registration), retrying refusals the owner can fix. Resolves
 * undefined when shutdown aborted the wait; throws a fatal `AttestmeshError` for anything else.
 */
export async function ensureRegistered(options: RegisterOptions): Promise<Registration | undefined> {
  const { logger, signal } = options;
  const ctx: RefusalContext = { keys: options.keys, chain: options.chain };
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      const registration = await raceAbort(registerOnce(options), signal);
      if (registration === undefined) return undefined;
      options.onAttempt?.(registration.submitted ? "registered" : "already-member");
      return registration;
    } catch (error) {
      if (signal.aborted) return undefined;
      const refusal = classifyRegistrationError(error, ctx);
      options.onAttempt?.(refusal.code);
      if (!refusal.retryable) {
        logger.error(
          { refusal: refusal.code, fix: refusal.fix, details: refusal.details },
          `registration refused: ${refusal.code}; ${refusal.fix}`,
        );
        throw new AttestmeshError(`registration refused: ${refusal.code}; ${refusal.fix}`, {
          code: refusal.code,
          retryable: false,
          cause: error,
          details: refusal.details,
        });
      }
      const retryInMs = backoffDelay(attempt, options.backoff, options.random);
      logger.warn(
        {
          refusal: refusal.code,
          fix: refusal.fix,
          details: refusal.details,
          attempt: attempt + 1,
          retryInMs,
        },
        `registration refused: ${refusal.code}; ${refusal.fix}`,
      );
      await sleep(retryInMs, signal);
    }
  }
  return undefined;
}
