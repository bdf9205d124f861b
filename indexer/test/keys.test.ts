// The indexer's signing key and its registry proof. Regression: the indexer normalised v (27/28) but
// not s, so a guest agent that sent a high-s signature produced a proof the registry refuses
// (SignatureMalleable); it now goes through the service kit's proof, which normalises both.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createKmsRoot, createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { derivedPublicKey } from "@attestmesh/shared/dstack/keychain.ts";
import { SECP256K1_HALF_N } from "@attestmesh/shared/dstack/verify.ts";
import { quoteReportData } from "@attestmesh/shared/indexer/protocol.ts";
import { INDEXER_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { secp256k1 } from "@noble/curves/secp256k1";
import { keccak_256 } from "@noble/hashes/sha3";
import { bytesToHex, getAddress, type Hex, hexToBytes } from "viem";
import { deriveIndexerKeys, type IndexerKeySource } from "../src/keys.ts";

const KMS_ROOT = createKmsRoot(keccak_256(new TextEncoder().encode("indexer keys test kms root")));
const APP_ID = getAddress("0x3333333333333333333333333333333333333333");
const COMPOSE_HASH = `0x${"ab".repeat(32)}` as Hex;

/** The malleable twin a careless guest agent might send: (r, n - s), v flipped and written as 27/28. */
function malleableTwin(signature: Uint8Array): Uint8Array {
  const sig = secp256k1.Signature.fromBytes(signature.subarray(0, 64), "compact");
  const twin = new secp256k1.Signature(sig.r, secp256k1.Point.Fn.neg(sig.s));
  return Uint8Array.of(...twin.toBytes("compact"), 27 + (signature[64]! ^ 1));
}

/** The simulator's guest agent, its signatures passed through `mangle`, recording what it quoted. */
function source(
  mangle: (signature: Uint8Array) => Uint8Array,
): IndexerKeySource & { quotedFor: Uint8Array[] } {
  const cvm = createSimulatedCvm({ kmsRoot: KMS_ROOT, appId: hexToBytes(APP_ID) });
  const quotedFor: Uint8Array[] = [];
  return {
    quotedFor,
    info: async () => ({
      appId: APP_ID,
      composeHash: COMPOSE_HASH,
      deviceId: `0x${"11".repeat(32)}` as const,
    }),
    getKey: async (path, purpose, algorithm) => {
      const derived = cvm.getKey(path, purpose, algorithm);
      return { key: derived.key, signatureChain: derived.signatureChain.map(mangle) };
    },
    getQuote: async (reportData) => {
      quotedFor.push(reportData);
      return "0x01";
    },
  };
}

test("a high-s, v = 27/28 chain from the guest agent becomes a proof the registry accepts", async () => {
  const honest = await deriveIndexerKeys(source((s) => s));
  const mangled = await deriveIndexerKeys(source(malleableTwin));
  const sent = await source(malleableTwin).getKey(
    INDEXER_KEY.path,
    INDEXER_KEY.purpose,
    INDEXER_KEY.algorithm,
  );
  for (const signature of sent.signatureChain) {
    assert.ok(BigInt(bytesToHex(signature.subarray(32, 64))) > SECP256K1_HALF_N, "the agent sends high s");
    assert.ok(signature[64]! >= 27, "and v as 27/28");
  }
  assert.equal(mangled.kmsRoot, KMS_ROOT.address);
  assert.deepEqual(mangled.proof, honest.proof);
  for (const signature of [mangled.proof.appSignature, mangled.proof.kmsSignature]) {
    const bytes = hexToBytes(signature);
    assert.ok(BigInt(bytesToHex(bytes.subarray(32, 64))) <= SECP256K1_HALF_N, "low s");
    assert.ok(bytes[64]! <= 1, "v in {0, 1}");
  }
});

test("the signing key stays boxed, and the quote binds its public key", async () => {
  const src = source((s) => s);
  const keys = await deriveIndexerKeys(src);
  assert.equal(keys.appId, APP_ID);
  assert.equal(keys.composeHash, COMPOSE_HASH);
  assert.deepEqual(keys.publicKey, derivedPublicKey(keys.secretKey.reveal(), INDEXER_KEY.algorithm));
  assert.ok(!JSON.stringify(keys).includes(bytesToHex(keys.secretKey.reveal()).slice(2)));
  assert.deepEqual(src.quotedFor, [quoteReportData(keys.publicKey)]);
});
