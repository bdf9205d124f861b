// The CSK facet through viem: the current epoch and its commitment, and committing one (the member key
// signs EIP-712 `CommitCsk`; the cluster writer submits it, sponsored or paid by the gas key).
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { pino } from "pino";
import { BaseError, ContractFunctionRevertedError, type Hex, zeroHash } from "viem";
import { signTypedData } from "viem/accounts";
import type { ChainContext } from "../chain/client.ts";
import { writerOf } from "../chain/selectWriter.ts";
import { fatalError, retryableError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Secret } from "../secret.ts";

const silentLogger = pino({ level: "silent" });

export interface CskEpochState {
  readonly epoch: bigint;
  /** Undefined while uncommitted. */
  readonly commitment: Hex | undefined;
  readonly committer: bigint;
}

export type CommitOutcome = "committed" | "already-committed" | "epoch-moved";

export interface CskChain {
  current(): Promise<CskEpochState>;
  /** Commits `commitment` for `epoch` as `memberId`; resolves once the receipt is in. */
  commit(memberId: bigint, epoch: bigint, commitment: Hex): Promise<CommitOutcome>;
  readonly canCommit: boolean;
}

export function createCskChain(chain: ChainContext, memberKey: Secret<Hex>, logger?: Logger): CskChain {
  const { publicClient, cluster } = chain;
  const writer = writerOf(chain, logger ?? silentLogger);
  return {
    canCommit: writer !== undefined,
    async current() {
      const [epoch, commitment, committer] = await publicClient.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "currentCsk",
      });
      return { epoch, commitment: commitment === zeroHash ? undefined : commitment, committer };
    },
    async commit(memberId, epoch, commitment) {
      if (writer === undefined) {
        throw fatalError(
          "GasKeyMissing",
          "committing a CSK needs gas; set ATTESTMESH_BUNDLER_URL (sponsored) or ATTESTMESH_GAS_KEY",
        );
      }
      const signature = await signTypedData({
        privateKey: memberKey.reveal(),
        domain: memberDomain(chain.chainId, cluster),
        types: memberTypes,
        primaryType: "CommitCsk",
        message: { memberId, epoch, commitment },
      });
      try {
        const receipt = await writer.submit(
          { functionName: "commitCsk", args: [memberId, epoch, commitment, signature] },
          { timeoutMs: 60_000 },
        );
        if (receipt.status !== "success") {
          throw retryableError("CskCommitReverted", `CSK commitment ${receipt.txHash} reverted on chain`);
        }
        return "committed";
      } catch (error) {
        if (error instanceof BaseError) {
          const reverted = error.walk((e) => e instanceof ContractFunctionRevertedError);
          if (reverted instanceof ContractFunctionRevertedError) {
            if (reverted.data?.errorName === "CskAlreadyCommitted") return "already-committed";
            if (reverted.data?.errorName === "CskEpochMismatch") return "epoch-moved";
          }
        }
        throw error;
      }
    },
  };
}
