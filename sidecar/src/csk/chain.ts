// The CSK facet through viem: the current epoch and its commitment (quorum reads, chain/reads.ts), and committing one (the member key
// signs EIP-712 `CommitCsk`; the cluster writer submits it, sponsored or paid by the gas key). Also the
// way out of a commitment nobody can open (issue 13): confirming an epoch whose key this member pulled
// and checked (`ConfirmCsk`), and re-opening an unconfirmed epoch after the contract's delay (`ReopenCsk`).
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { pino } from "pino";
import { BaseError, type ContractErrorName, ContractFunctionRevertedError, type Hex, zeroHash } from "viem";
import { signTypedData } from "viem/accounts";
import type { ChainContext } from "../chain/client.ts";
import type { ClusterReader } from "../chain/cluster.ts";
import type { AgreedBlock } from "../chain/reads.ts";
import { writerOf } from "../chain/selectWriter.ts";
import { fatalError, retryableError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Secret } from "../secret.ts";
import type { HeadReads } from "./standing.ts";

const silentLogger = pino({ level: "silent" });

export interface CskEpochState {
  readonly epoch: bigint;
  /** Undefined while uncommitted. */
  readonly commitment: Hex | undefined;
  readonly committer: bigint;
  /** The member other than the committer that confirmed holding the key; 0 if none. */
  readonly confirmer?: bigint;
  /** The member barred from committing this epoch (it committed the one members re-opened); 0 if none. */
  readonly barred?: bigint;
}

export type CommitOutcome = "committed" | "already-committed" | "epoch-moved" | "barred";
export type ConfirmOutcome = "confirmed" | "epoch-moved";
export type ReopenOutcome = "reopened" | "too-early" | "already-confirmed" | "epoch-moved";

export interface CskChain {
  current(): Promise<CskEpochState>;
  /** Commits `commitment` for `epoch` as `memberId`; resolves once the receipt is in. */
  commit(memberId: bigint, epoch: bigint, commitment: Hex): Promise<CommitOutcome>;
  /** Confirms holding `epoch`'s key, checked against `commitment`. */
  confirm(memberId: bigint, epoch: bigint, commitment: Hex): Promise<ConfirmOutcome>;
  /** Re-opens `epoch`, committed and confirmed by nobody for the contract's delay. */
  reopen(memberId: bigint, epoch: bigint): Promise<ReopenOutcome>;
  readonly canCommit: boolean;
}

/** The cluster's custom errors, by name, as its ABI declares them: a misspelled name does not compile. */
type ClusterErrorName = ContractErrorName<typeof clusterAbi>;

/** The custom error a revert carries, if it is one of the cluster's. */
function revertName(error: unknown): string | undefined {
  if (!(error instanceof BaseError)) return undefined;
  const reverted = error.walk((e) => e instanceof ContractFunctionRevertedError);
  return reverted instanceof ContractFunctionRevertedError ? reverted.data?.errorName : undefined;
}

/** The cluster function behind each signed CSK step, and what it is doing (for the missing-gas error). */
const CSK_STEPS = {
  CommitCsk: { functionName: "commitCsk", what: "committing a CSK" },
  ConfirmCsk: { functionName: "confirmCsk", what: "confirming a CSK" },
  ReopenCsk: { functionName: "reopenCsk", what: "re-opening a CSK epoch" },
} as const;

export function createCskChain(chain: ChainContext, memberKey: Secret<Hex>, logger?: Logger): CskChain {
  const { reads, cluster } = chain;
  const writer = writerOf(chain, logger ?? silentLogger);
  const needWriter = (what: string) => {
    if (writer === undefined) {
      throw fatalError(
        "GasKeyMissing",
        `${what} needs gas; set ATTESTMESH_BUNDLER_URL (sponsored) or ATTESTMESH_GAS_KEY`,
      );
    }
    return writer;
  };
  /**
   * One signed CSK step: the member key signs `primaryType` over `message`, and the cluster function of
   * that name takes the message's fields in their typed-data order, then the signature. Answers `done`,
   * or the outcome `reverts` gives for the custom error the call reverted with; any other failure throws.
   */
  const transact = async <Done extends string, Outcome extends string>(
    primaryType: keyof typeof CSK_STEPS,
    message: Readonly<Record<string, bigint | Hex>>,
    done: Done,
    reverts: Readonly<Partial<Record<ClusterErrorName, Outcome>>>,
  ): Promise<Done | Outcome> => {
    const { functionName, what } = CSK_STEPS[primaryType];
    const w = needWriter(what);
    const signature = await signTypedData({
      privateKey: memberKey.reveal(),
      domain: memberDomain(chain.chainId, cluster),
      types: memberTypes,
      primaryType,
      message,
    } as Parameters<typeof signTypedData>[0]);
    const args: readonly unknown[] = [
      ...memberTypes[primaryType].map((field) => message[field.name]),
      signature,
    ];
    try {
      const receipt = await w.submit({ functionName, args } as Parameters<typeof w.submit>[0], {
        timeoutMs: 60_000,
      });
      if (receipt.status !== "success") {
        throw retryableError("CskTransactionReverted", `${functionName} ${receipt.txHash} reverted on chain`);
      }
      return done;
    } catch (error) {
      const name = revertName(error);
      const outcome = name === undefined ? undefined : reverts[name as ClusterErrorName];
      if (outcome !== undefined) return outcome;
      throw error;
    }
  };
  return {
    canCommit: writer !== undefined,
    async current() {
      // Both at one block hash a quorum of providers agrees on, each compared across the quorum.
      const at = await reads.agreedBlock(0);
      const [[epoch, commitment, committer], [, confirmer, barred]] = await Promise.all([
        reads.readContract({ address: cluster, abi: clusterAbi, functionName: "currentCsk", at }),
        reads.readContract({ address: cluster, abi: clusterAbi, functionName: "cskRecovery", at }),
      ]);
      return {
        epoch,
        commitment: commitment === zeroHash ? undefined : commitment,
        committer,
        confirmer,
        barred,
      };
    },
    commit: (memberId, epoch, commitment) =>
      transact("CommitCsk", { memberId, epoch, commitment }, "committed", {
        CskAlreadyCommitted: "already-committed",
        CskEpochMismatch: "epoch-moved",
        CskCommitterBarred: "barred",
      }),
    confirm: (memberId, epoch, commitment) =>
      transact("ConfirmCsk", { memberId, epoch, commitment }, "confirmed", {
        CskEpochMismatch: "epoch-moved",
      }),
    reopen: (memberId, epoch) =>
      transact("ReopenCsk", { memberId, epoch }, "reopened", {
        CskReopenTooEarly: "too-early",
        CskAlreadyConfirmed: "already-confirmed",
        CskEpochMismatch: "epoch-moved",
      }),
  };
}

/**
 * The head reads of standing.ts through the quorum reads (chain/reads.ts): one block at the head that a
 * quorum of the pinned providers agree on, never a cached one (a stale head would reopen the window the
 * standing check closes), and the member record and the epoch at that block, each compared across them.
 */
export function headReadsOf(
  chain: ChainContext,
  reader: Pick<ClusterReader, "member" | "standing">,
): HeadReads<AgreedBlock> {
  const { reads, cluster } = chain;
  return {
    head: () => reads.agreedBlock(0),
    member: (memberId, at) => reader.member(memberId, at),
    async epoch(at) {
      const [epoch] = await reads.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "currentCsk",
        at,
      });
      return epoch;
    },
    standing: (memberId, at) => reader.standing(memberId, at),
  };
}
