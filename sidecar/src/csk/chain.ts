// The CSK facet through viem: the current epoch and its commitment, and committing one (the member key
// signs EIP-712 `CommitCsk`; the gas key pays).
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { BaseError, ContractFunctionRevertedError, type Hex, zeroHash } from "viem";
import { signTypedData } from "viem/accounts";
import type { ChainContext } from "../chain/client.ts";
import { fatalError, retryableError } from "../errors.ts";
import type { Secret } from "../secret.ts";

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

export function createCskChain(chain: ChainContext, memberKey: Secret<Hex>): CskChain {
  const { publicClient, cluster } = chain;
  return {
    canCommit: chain.wallet !== undefined,
    async current() {
      const [epoch, commitment, committer] = await publicClient.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "currentCsk",
      });
      return { epoch, commitment: commitment === zeroHash ? undefined : commitment, committer };
    },
    async commit(memberId, epoch, commitment) {
      const wallet = chain.wallet;
      if (wallet === undefined) {
        throw fatalError("GasKeyMissing", "committing a CSK needs gas; set ATTESTMESH_GAS_KEY");
      }
      const signature = await signTypedData({
        privateKey: memberKey.reveal(),
        domain: memberDomain(chain.chainId, cluster),
        types: memberTypes,
        primaryType: "CommitCsk",
        message: { memberId, epoch, commitment },
      });
      try {
        const { request } = await publicClient.simulateContract({
          account: wallet.account,
          address: cluster,
          abi: clusterAbi,
          functionName: "commitCsk",
          args: [memberId, epoch, commitment, signature],
        });
        const hash = await wallet.writeContract(request);
        const receipt = await publicClient.waitForTransactionReceipt({ hash, timeout: 60_000 });
        if (receipt.status !== "success") {
          throw retryableError("CskCommitReverted", `CSK commitment ${hash} reverted on chain`);
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
