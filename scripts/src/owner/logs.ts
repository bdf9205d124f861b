// The cluster's event logs since its deployment, in bounded eth_getLogs ranges (public RPCs cap them),
// decoded with the cluster ABI. The deployment block is found by bisecting eth_getCode unless given.

import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { type Log, parseEventLogs } from "viem";
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

/** Every log the diamond emitted in [fromBlock, toBlock], decoded, in chain order. */
export async function clusterLogs(
  ctx: ClusterContext,
  options: { fromBlock?: bigint; toBlock?: bigint; range?: bigint } = {},
): Promise<ClusterLog[]> {
  const toBlock = options.toBlock ?? (await ctx.net.client.getBlockNumber());
  const fromBlock = options.fromBlock ?? (await findDeployBlock(ctx, toBlock));
  let range = options.range ?? 10_000n;
  const raw: Log[] = [];
  for (let start = fromBlock; start <= toBlock; ) {
    const end = start + range - 1n < toBlock ? start + range - 1n : toBlock;
    try {
      raw.push(...(await ctx.net.client.getLogs({ address: ctx.cluster, fromBlock: start, toBlock: end })));
      start = end + 1n;
    } catch (cause) {
      // Providers refuse large ranges with assorted messages: halve and retry, down to 100 blocks.
      if (range <= 100n) {
        throw new AttestmeshError(`eth_getLogs failed for blocks ${start}-${end}`, {
          code: "LogsUnavailable",
          retryable: true,
          cause,
        });
      }
      range /= 2n;
    }
  }
  return parseEventLogs({ abi: clusterAbi, logs: raw });
}
