// The indexer's signing key and its registry proof. Regression: the indexer normalised v (27/28) but
// not s, so a guest agent that sent a high-s signature produced a proof the registry refuses
// (SignatureMalleable); it now goes through the service kit's proof, which normalises both.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  appSignDerivedKey,
  deriveAppKey,
  derivedPublicKey,
  deriveKey,
  kmsSignAppKey,
  secp256k1PublicKey,
} from "@attestmesh/shared/dstack/keychain.ts";
import { SECP256K1_HALF_N, SECP256K1_N } from "@attestmesh/shared/dstack/verify.ts";
import { quoteReportData } from "@attestmesh/shared/indexer/protocol.ts";
import { INDEXER_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { keccak_256 } from "@noble/hashes/sha3";
import { bytesToHex, getAddress, type Hex, hexToBytes } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { deriveIndexerKeys, type IndexerKeySource } from "../src/keys.ts";

const KMS_ROOT = keccak_256(new TextEncoder().encode("indexer keys test kms root"));
const APP_ID = getAddress("0x3333333333333333333333333333333333333333");
const COMPOSE_HASH = `0x${"ab".repeat(32)}` as Hex;

/** s -> n - s with v flipped (the same key recovers), and v moved to 27/28. */
function highSv27(signature: Uint8Array): Uint8Array {
  const out = signature.slice();
  const s = BigInt(bytesToHex(out.subarray(32, 64)));
  out.set(hexToBytes(`0x${(SECP256K1_N - s).toString(16).padStart(64, "0")}`), 32);
  out[64] = (out[64]! ^ 1) + 27;
  return out;
}

function source(
  mangle: (signature: Uint8Array) => Uint8Array,
): IndexerKeySource & { quotedFor: Uint8Array[] } {
  const appId = hexToBytes(APP_ID);
  const appKey = deriveAppKey(KMS_ROOT, appId);
  const quotedFor: Uint8Array[] = [];
  return {
    quotedFor,
    info: async () => ({ appId: APP_ID, composeHash: COMPOSE_HASH }),
    getKey: async (path, purpose, algorithm) => {
      const key = deriveKey(appKey, path);
      const pub = derivedPublicKey(key, algorithm);
      return {
        key,
        signatureChain: [
          mangle(appSignDerivedKey(appKey, purpose, pub)),
          mangle(kmsSignAppKey(KMS_ROOT, appId, secp256k1PublicKey(appKey))),
        ],
      };
    },
    getQuote: async (reportData) => {
      quotedFor.push(reportData);
      return "0x01";
    },
  };
}

test("a high-s, v = 27/28 chain from the guest agent becomes a proof the registry accepts", async () => {
  const honest = await deriveIndexerKeys(source((s) => s));
  const mangled = await deriveIndexerKeys(source(highSv27));
  const root = privateKeyToAccount(bytesToHex(KMS_ROOT)).address;
  assert.equal(mangled.kmsRoot, root);
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
