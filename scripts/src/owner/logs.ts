// The cluster's event logs since its deployment, in bounded eth_getLogs ranges (public RPCs cap them),
// decoded with the cluster ABI. The deployment block is found by bisecting eth_getCode unless given.

import { createLogScanner } from "@attestmesh/shared/chain/logRange.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { type Address, type Log, parseEventLogs } from "viem";
import type { ClusterContext } from "./context.ts";

/** The first block at which the diamond has code (log2(head) eth_getCode calls; needs an archive RPC). */
export async function findDeployBlock(ctx: ClusterContext, head: bigint): Promise<bigint> {
  let low = 0n;
  let high = head;
  try {
    while (low < high) {
      const mid = (low + high) / 2n;
      const code = await ctx.net.client.getCode({ address: ctx.cluster, blockNumber: mid });
      if (code !== undefined && code !== "0x") high = mid;
      else low = mid + 1n;
    }
  } catch (cause) {
    throw new AttestmeshError(
      "cannot find the cluster's deployment block (the RPC keeps no history?); pass --from-block",
      { code: "DeployBlockUnknown", retryable: true, cause },
    );
  }
  return low;
}

export type ClusterLog = ReturnType<typeof parseEventLogs<typeof clusterAbi>>[number];

/**
 * Every raw log of `address` in [fromBlock, toBlock], in chain order, read in spans of at most `range`
 * blocks (default 10,000). Providers refuse large ranges with assorted messages, so any error halves
 * the span, down to 100 blocks; then it is `LogsUnavailable`.
 */
export async function rawLogs(
  ctx: ClusterContext,
  address: Address,
  fromBlock: bigint,
  toBlock: bigint,
  range = 10_000n,
): Promise<Log[]> {
  const scanner = createLogScanner({ maxBlocks: range, minBlocks: 100n, shrinkOn: () => true });
  try {
    return await scanner.forward(fromBlock, toBlock, (from, to) =>
      ctx.net.client.getLogs({ address, fromBlock: from, toBlock: to }),
    );
  } catch (cause) {
    throw new AttestmeshError(`eth_getLogs failed for ${address}, blocks ${fromBlock}-${toBlock}`, {
      code: "LogsUnavailable",
      retryable: true,
      cause,
    });
  }
}

/** Every log the diamond emitted in [fromBlock, toBlock], decoded, in chain order. */
export async function clusterLogs(
  ctx: ClusterContext,
  options: { fromBlock?: bigint; toBlock?: bigint; range?: bigint } = {},
): Promise<ClusterLog[]> {
  const toBlock = options.toBlock ?? (await ctx.net.client.getBlockNumber());
  const fromBlock = options.fromBlock ?? (await findDeployBlock(ctx, toBlock));
  const raw = await rawLogs(ctx, ctx.cluster, fromBlock, toBlock, options.range);
  return parseEventLogs({ abi: clusterAbi, logs: raw });
}
