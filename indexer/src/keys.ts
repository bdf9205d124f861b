// The indexer's Ed25519 signing key, derived inside its TEE through dstack GetKey, with the key chain
// the owner submits to the indexer registry (checked by the service kit's `proveKey`, as the registry
// will), and the quote whose report data binds the key.
import { toHex } from "@attestmesh/shared/indexer/envelope.ts";
import { quoteReportData } from "@attestmesh/shared/indexer/protocol.ts";
import { INDEXER_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { type DstackAgent, proveKey, requireEd25519Chain } from "@attestmesh/shared/service/dstack.ts";
import { type Secret, secret } from "@attestmesh/shared/service/secret.ts";
import type { Address, Hex } from "viem";

export { createDstackAgent as createDstackKeySource } from "@attestmesh/shared/service/dstack.ts";

/** The parts of the dstack guest agent the indexer uses. */
export type IndexerKeySource = Pick<DstackAgent, "info" | "getKey" | "getQuote">;

export interface IndexerKeys {
  /** 32-byte Ed25519 seed; stays in memory. */
  readonly secretKey: Secret<Uint8Array>;
  readonly publicKey: Uint8Array;
  readonly publicKeyHex: Hex;
  readonly appId: Address;
  readonly composeHash: Hex;
  readonly kmsRoot: Address;
  /** The registry's `IndexerProof`. */
  readonly proof: {
    appId: Address;
    appPubkey: Hex;
    appSignature: Hex;
    kmsSignature: Hex;
    guestApiVersion: 0 | 1;
  };
  /** dstack GetQuote over `quoteReportData(publicKey)`, 0x-hex. */
  readonly quote: Hex;
}

/** Derives the signing key, checks its chain as the registry will, and fetches the quote. */
export async function deriveIndexerKeys(source: IndexerKeySource): Promise<IndexerKeys> {
  const { appId, composeHash } = await source.info();
  const derived = await source.getKey(INDEXER_KEY.path, INDEXER_KEY.purpose, INDEXER_KEY.algorithm);
  const proven = proveKey(appId, INDEXER_KEY, derived);
  // The signing key is Ed25519, which dstack before 0.5.6 cannot sign: compare with a secp256k1 chain
  // of the same agent (valid on every dstack) and stop with the release needed rather than register a
  // proof the registry refuses forever.
  const anchorSpec = { ...INDEXER_KEY, algorithm: "secp256k1" as const };
  const anchor = proveKey(
    appId,
    anchorSpec,
    await source.getKey(anchorSpec.path, anchorSpec.purpose, anchorSpec.algorithm),
  );
  requireEd25519Chain(anchor.appPubkey, INDEXER_KEY, proven, derived.key);
  const quote = await source.getQuote(quoteReportData(proven.publicKey));
  return {
    secretKey: secret(derived.key),
    publicKey: proven.publicKey,
    publicKeyHex: toHex(proven.publicKey) as Hex,
    appId,
    composeHash,
    kmsRoot: proven.kmsSigner,
    proof: {
      appId,
      appPubkey: toHex(proven.appPubkey) as Hex,
      appSignature: toHex(proven.appSignature) as Hex,
      kmsSignature: toHex(proven.kmsSignature) as Hex,
      guestApiVersion: proven.guestApiVersion,
    },
    quote,
  };
}
