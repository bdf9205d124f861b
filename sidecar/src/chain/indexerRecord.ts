// The cluster's indexer record (registry facet), as a quorum read at the agreed head: which endpoint
// to connect to and which Ed25519 key must sign its pushes.
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import type { Address, Hex } from "viem";
import type { IndexerRecord } from "../intake/registry.ts";
import type { ChainReads } from "./reads.ts";

const ZERO_KEY = `0x${"00".repeat(32)}`;

/** The current record, or undefined when the owner set none (polling alone then). */
export async function readIndexerRecord(
  reads: ChainReads,
  cluster: Address,
): Promise<IndexerRecord | undefined> {
  const view = await reads.readContract({
    address: cluster,
    abi: clusterAbi,
    functionName: "indexer",
    at: await reads.agreedBlock(0),
  });
  if (view.signingKey.toLowerCase() === ZERO_KEY || view.endpoint === "") return undefined;
  return {
    endpoint: view.endpoint,
    signingKey: view.signingKey.toLowerCase() as Hex,
    codeId: view.codeId,
    appId: view.appId,
  };
}
