// The cluster's indexer record, read from the registry facet. Read again before every connection, so
// rotating or clearing the indexer is one owner transaction.
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

/** The current record, or undefined when the owner set none (polling alone then). */
export async function readIndexerRecord(
  client: PublicClient<Transport, Chain | undefined>,
  cluster: Address,
): Promise<IndexerRecord | undefined> {
  const view = await client.readContract({ address: cluster, abi: clusterAbi, functionName: "indexer" });
  if (view.signingKey.toLowerCase() === ZERO_KEY || view.endpoint === "") return undefined;
  return {
    endpoint: view.endpoint,
    signingKey: view.signingKey.toLowerCase() as Hex,
    codeId: view.codeId,
    appId: view.appId,
  };
}
