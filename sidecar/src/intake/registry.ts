// The cluster's indexer records, read from the registry facet. Read again before every connection and
// on every registry poll, so adding, retiring or rotating an indexer is one owner transaction.
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import type { Address, Chain, Hex, PublicClient, Transport } from "viem";

export interface IndexerRecord {
  readonly endpoint: string;
  /** 32-byte Ed25519 public key, lowercase 0x-hex. */
  readonly signingKey: Hex;
  readonly codeId: Hex;
  readonly appId: Address;
}

const ZERO_KEY = `0x${"00".repeat(32)}`;

/** Every registered indexer, oldest first; empty when the owner registered none (polling alone then). */
export async function readIndexerRecords(
  client: PublicClient<Transport, Chain | undefined>,
  cluster: Address,
): Promise<IndexerRecord[]> {
  const views = await client.readContract({ address: cluster, abi: clusterAbi, functionName: "indexers" });
  return views
    .filter((view) => view.signingKey.toLowerCase() !== ZERO_KEY && view.endpoint !== "")
    .map((view) => ({
      endpoint: view.endpoint,
      signingKey: view.signingKey.toLowerCase() as Hex,
      codeId: view.codeId,
      appId: view.appId,
    }));
}
