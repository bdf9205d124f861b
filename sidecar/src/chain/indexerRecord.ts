// The cluster's indexer records (registry facet), as a quorum read at the agreed head: which endpoints
// to connect to and which Ed25519 key must sign each one's pushes.
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import type { Address, Hex } from "viem";
import type { IndexerRecord } from "../intake/registry.ts";
import type { ChainReads } from "./reads.ts";

const ZERO_KEY = `0x${"00".repeat(32)}`;

/** Every registered indexer, oldest first; empty when the owner registered none (polling alone then). */
export async function readIndexerRecords(reads: ChainReads, cluster: Address): Promise<IndexerRecord[]> {
  const views = await reads.readContract({
    address: cluster,
    abi: clusterAbi,
    functionName: "indexers",
    at: await reads.agreedBlock(0),
  });
  return views
    .filter((view) => view.signingKey.toLowerCase() !== ZERO_KEY && view.endpoint !== "")
    .map((view) => ({
      endpoint: view.endpoint,
      signingKey: view.signingKey.toLowerCase() as Hex,
      codeId: view.codeId,
      appId: view.appId,
    }));
}
