// dstack 0.6's guest API v1, against the test vectors of its spec (docs/guest-api-v1.md @147e39c8,
// copied in test/fixtures/dstack/guest-v1/vectors.json): the KDF, the key claim, link 0, and the
// off-chain verifier on v1 chains.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from "@noble/hashes/utils";
import { privateKeyToAddress } from "viem/accounts";
import { loadGuestV1Vectors } from "../../../test/fixtures/dstack/fixtures.ts";
import {
  appSignKeyClaimV1,
  deriveKeyV1,
  keyClaimDigestV1,
  keyClaimV1,
  lengthPrefixed,
} from "../../src/dstack/guestV1.ts";
import {
  derivedKeyDigest,
  derivedPublicKey,
  kmsSignAppKey,
  secp256k1PublicKey,
} from "../../src/dstack/keychain.ts";
import { recoverSignerAddress, verifyDstackKeyChain } from "../../src/dstack/verify.ts";
import { isAttestmeshError } from "../../src/errors.ts";

const vectors = loadGuestV1Vectors();
const appRootKey = hexToBytes(vectors.appRootKey);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return isAttestmeshError(error) ? error.code : String(error);
  }
  return undefined;
}

describe("guest API v1 key derivation (spec vectors)", () => {
  for (const v of vectors.keys) {
    const domain = v.domainHex === undefined ? utf8ToBytes(v.domain ?? "") : hexToBytes(v.domainHex);
    test(`${v.algorithm}, domain ${JSON.stringify(v.domain ?? `0x${v.domainHex}`)}`, () => {
      const secret = deriveKeyV1(appRootKey, v.algorithm, domain);
      assert.equal(bytesToHex(secret), v.privateKey);
      assert.equal(bytesToHex(derivedPublicKey(secret, v.algorithm)), v.publicKey);
    });
  }

  test("a string domain is its UTF-8 bytes", () => {
    assert.deepEqual(
      deriveKeyV1(appRootKey, "secp256k1", "storage-encryption"),
      deriveKeyV1(appRootKey, "secp256k1", utf8ToBytes("storage-encryption")),
    );
  });
});

describe("guest API v1 link 0 (spec vector)", () => {
  const { domain, publicKey, signature } = vectors.link0;
  const key = hexToBytes(publicKey);
  const appAddress = privateKeyToAddress(`0x${vectors.appRootKey}`);

  test("the claim is length-prefixed field by field", () => {
    const lp = (s: string) => concatBytes(Uint8Array.of(0, 0, 0, s.length), utf8ToBytes(s));
    assert.deepEqual(
      keyClaimV1(domain, key),
      concatBytes(
        lp("dstack-guest-v1-key-claim"),
        lp("secp256k1"),
        lp(domain),
        Uint8Array.of(0, 0, 0, 33),
        key,
      ),
    );
    assert.deepEqual(lengthPrefixed(new Uint8Array(0)), new Uint8Array(4));
  });

  test("the spec's signature recovers to the app root key", () => {
    assert.equal(recoverSignerAddress(keyClaimDigestV1(domain, key), hexToBytes(signature)), appAddress);
  });

  test("signing the claim reproduces the spec's signature byte for byte (RFC 6979)", () => {
    assert.equal(bytesToHex(appSignKeyClaimV1(appRootKey, domain, key)), signature);
  });

  test("the spec's link 0 under a KMS signature verifies as v1 and is refused as v0", () => {
    const kmsRoot = hexToBytes("11".repeat(32));
    const appId = hexToBytes("22".repeat(20));
    const appPubkey = secp256k1PublicKey(appRootKey);
    const input = {
      appId,
      purpose: domain,
      derivedPubkey: key,
      appPubkey,
      appSignature: hexToBytes(signature),
      kmsSignature: kmsSignAppKey(kmsRoot, appId, appPubkey),
    };
    const root = privateKeyToAddress(`0x${"11".repeat(32)}`);
    assert.equal(verifyDstackKeyChain({ ...input, guestApiVersion: 1 }), root);
    assert.equal(
      codeOf(() => verifyDstackKeyChain(input)),
      "AppSignatureMismatch",
    );
    assert.equal(
      codeOf(() => verifyDstackKeyChain({ ...input, guestApiVersion: 0 })),
      "AppSignatureMismatch",
    );
  });

  test("a v0 message is never a v1 claim: the claim's key prefix puts a zero byte where v0 has hex", () => {
    for (const [purpose, k] of [
      [domain, key],
      ["", key.slice(1)],
      ["\u0000\u0000\u0000\u0021", key],
    ] as const) {
      const v0 = utf8ToBytes(`${purpose}:${bytesToHex(k)}`);
      const v1 = keyClaimV1(purpose, k);
      assert.notDeepEqual(v0, v1);
      assert.notDeepEqual(derivedKeyDigest(purpose, k), keyClaimDigestV1(purpose, k));
      assert.equal(v1[v1.length - k.length - 4], 0);
      assert.match(new TextDecoder().decode(v0.slice(v0.length - 2 * k.length)), /^[0-9a-f]+$/);
    }
  });

  test("refuses an unknown guest API version before anything else", () => {
    const input = {
      appId: new Uint8Array(3),
      purpose: "",
      derivedPubkey: new Uint8Array(0),
      appPubkey: new Uint8Array(0),
      appSignature: new Uint8Array(0),
      kmsSignature: new Uint8Array(0),
    };
    assert.equal(
      codeOf(() => verifyDstackKeyChain({ ...input, guestApiVersion: 2 as unknown as 0 })),
      "UnsupportedGuestApiVersion",
    );
    assert.equal(
      codeOf(() => verifyDstackKeyChain(input)),
      "InvalidAppId",
    );
  });
});
