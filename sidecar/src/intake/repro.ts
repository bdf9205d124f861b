// Runs an envelope's repro stub against the sidecar's own RPC: the indexer's claim holds only if the
// same log (transaction, index, topics, data, block hash) comes back.
import type { LogEnvelope } from "@attestmesh/shared/indexer/envelope.ts";
import type { Chain, PublicClient, Transport } from "viem";

export type ReproOutcome = "reproduced" | "not-reproduced" | "unverifiable";

interface RpcLog {
  readonly blockHash: string | null;
  readonly transactionHash: string | null;
  readonly logIndex: string | null;
  readonly topics: readonly string[];
  readonly data: string;
  readonly address: string;
}

/**
 * "unverifiable" when our own RPC has not reached the block yet: nothing can be said. A block at that
 * height with another hash, or a missing or different log, is "not-reproduced".
 */
export async function runRepro(
  client: PublicClient<Transport, Chain | undefined>,
  envelope: LogEnvelope,
): Promise<ReproOutcome> {
  const blockNumber = BigInt(envelope.blockNumber);
  const head = await client.getBlockNumber({ cacheTime: 0 });
  if (head < blockNumber) return "unverifiable";
  const block = await client.getBlock({ blockNumber });
  if (block.hash?.toLowerCase() !== envelope.blockHash) return "not-reproduced";
  const logs = (await client.request({
    method: envelope.repro.method,
    params: envelope.repro.params as never,
  })) as readonly RpcLog[];
  const found = logs.some(
    (l) =>
      l.transactionHash?.toLowerCase() === envelope.txHash &&
      l.blockHash?.toLowerCase() === envelope.blockHash &&
      l.logIndex !== null &&
      Number(l.logIndex) === envelope.logIndex &&
      l.address.toLowerCase() === envelope.log.address &&
      l.data.toLowerCase() === envelope.log.data &&
      l.topics.length === envelope.log.topics.length &&
      l.topics.every((t, i) => t.toLowerCase() === envelope.log.topics[i]),
  );
  return found ? "reproduced" : "not-reproduced";
}
