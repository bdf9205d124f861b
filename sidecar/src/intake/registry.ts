// The cluster's indexer records, read from the registry facet. Read again before every connection and
// on every registry poll, so adding, retiring or rotating an indexer is one owner transaction. The read
// itself is the chain layer's quorum read (chain/indexerRecord.ts), handed to the intake as a function:
// the intake stands below the chain layer.
import type { Address, Hex } from "viem";

export interface IndexerRecord {
  readonly endpoint: string;
  /** 32-byte Ed25519 public key, lowercase 0x-hex. */
  readonly signingKey: Hex;
  readonly codeId: Hex;
  readonly appId: Address;
}

/** Every registered indexer, oldest first; empty when the owner registered none (polling alone then). */
export type ReadIndexerRecords = () => Promise<IndexerRecord[]>;
