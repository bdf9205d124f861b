// The sidecar's one way to change the chain: a cluster call (a member action the member key already
// signed as EIP-712 typed data) goes in, the receipt of its inclusion comes out. Two implementations:
// `direct` pays with a funded gas key (chains without a bundler), `sponsored` sends an ERC-4337
// UserOperation from the node's member account through a bundler, paid by the operator's paymaster.
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import type { Account, Address, ContractFunctionArgs, ContractFunctionName, Hex } from "viem";
import type { ChainContext } from "./client.ts";

export type ClusterWriteFunction = ContractFunctionName<typeof clusterAbi, "nonpayable">;

export interface ClusterCall<N extends ClusterWriteFunction = ClusterWriteFunction> {
  readonly functionName: N;
  readonly args: ContractFunctionArgs<typeof clusterAbi, "nonpayable", N>;
}

export interface WriteReceipt {
  readonly txHash: Hex;
  readonly blockNumber: bigint;
  /** "reverted" only when the call passed the simulation and then failed on chain. */
  readonly status: "success" | "reverted";
  /** Gas this call cost: the transaction's gas (direct) or the UserOperation's actual gas (sponsored). */
  readonly gasUsed: bigint;
  /** Wei paid for it, by the gas key (direct) or by the paymaster (sponsored). */
  readonly feeWei: bigint;
  /** The address the cluster saw as the caller. */
  readonly from: Address;
  readonly sponsored: boolean;
  readonly userOpHash?: Hex;
  /**
   * The call's logs as the receipt lists them (the transaction's, or the UserOperation's own), from
   * the RPC or bundler that answered: a claim, never state (register.ts reads this node's own
   * MemberRegistered from it to configure ahead of its membership view, which corrects it).
   */
  readonly logs?: readonly ReceiptLog[];
}

/** A log of a receipt: who emitted it, its topics and data. */
export interface ReceiptLog {
  readonly address: Address;
  readonly topics: readonly Hex[];
  readonly data: Hex;
}

export interface SubmitOptions {
  /** Receipt wait before the submission counts as failed. */
  readonly timeoutMs?: number;
  readonly confirmations?: number;
}

export interface ClusterWriter {
  readonly mode: "direct" | "sponsored";
  /** The address the cluster sees as the caller (the gas key or the member account). */
  readonly from: Address;
  /**
   * Simulates the call (a refusal throws viem's ContractFunctionRevertedError, so callers decode it
   * without spending gas), submits it and waits for its inclusion.
   */
  submit<N extends ClusterWriteFunction>(
    call: ClusterCall<N>,
    options?: SubmitOptions,
  ): Promise<WriteReceipt>;
}

/**
 * Simulates `call` on the cluster as `account` would send it: a refusal throws viem's
 * ContractFunctionRevertedError before anything is signed or paid for.
 */
export function simulateClusterCall(chain: ChainContext, call: ClusterCall, account: Account | Address) {
  return chain.publicClient.simulateContract({
    address: chain.cluster,
    abi: clusterAbi,
    functionName: call.functionName,
    args: call.args,
    account,
  } as never);
}
