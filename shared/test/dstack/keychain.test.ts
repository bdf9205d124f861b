import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, hkdfSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1";
import { keccak_256 } from "@noble/hashes/sha3";
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from "@noble/hashes/utils";
import { publicKeyToAddress } from "viem/accounts";
import { SIMULATOR_APPKEYS_FILE } from "../../../test/fixtures/dstack/fixtures.ts";
import {
  appSignDerivedKey,
  deriveAppKey,
  derivedKeyDigest,
  derivedPublicKey,
  deriveKey,
  kmsIssuedDigest,
  kmsSignAppKey,
  secp256k1PublicKey,
} from "../../src/dstack/keychain.ts";
import { isAttestmeshError } from "../../src/errors.ts";

// From dstack's sdk/simulator/appkeys.json (copied in test/fixtures/dstack/simulator).
const FIXTURE = {
  k256Key: "d6e88992cdeeee35fe70b5db61ab66cdb191fb9b6ec9313757ef162dd7214d5d",
  k256Signature:
    "9e618603e72d01fedb82deff6daf2d62a572becf0059eec3f89c1ab40e1f2e594d2a283f843f34e8f39e4cc49a612496ce67223a12ac923f8efe330346dfc6c500",
  appId: "5bb4ff9a3837357f19dc176407a5709c62eb6c56",
  appPubkey: "02818494263695e8839122dbd88e281d7380622999df4e60a14befa0f2d096fc7c",
  kmsRootPubkey: "0321529e458424ab1f710a3a57ec4dad2fb195ddca572f7469242ba6c7563085b6",
  kmsRootAddress: "0xa7f6043c29f9cc1d9d6acf554c53e0c6792aaeaf",
};
const FIXTURE_FILE = SIMULATOR_APPKEYS_FILE;

/** Recovers with noble directly, independent of the verifier under test. */
function nobleRecoverAddress(digest: Uint8Array, signature: Uint8Array): string {
  const point = secp256k1.Signature.fromBytes(signature.subarray(0, 64), "compact")
    .addRecoveryBit(signature[64]!)
    .recoverPublicKey(digest);
  return publicKeyToAddress(`0x${bytesToHex(point.toBytes(false))}`).toLowerCase();
}

function nodeHkdf(ikm: Uint8Array, info: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", ikm, utf8ToBytes("RATLS"), info, 32));
}

const ROOT = keccak_256(utf8ToBytes("keychain test root"));
const APP_ID = hexToBytes("00112233445566778899aabbccddeeff00112233");

describe("dstack simulator fixture", () => {
  test("k256_key's compressed public key is the documented app public key", () => {
    assert.equal(bytesToHex(secp256k1PublicKey(hexToBytes(FIXTURE.k256Key))), FIXTURE.appPubkey);
  });

  test("k256_signature recovers the KMS root over keccak(prefix || raw 20-byte app id || 33-byte app key)", () => {
    const digest = kmsIssuedDigest(hexToBytes(FIXTURE.appId), hexToBytes(FIXTURE.appPubkey));
    const manual = keccak_256(
      concatBytes(
        utf8ToBytes("dstack-kms-issued:"),
        hexToBytes(FIXTURE.appId),
        hexToBytes(FIXTURE.appPubkey),
      ),
    );
    assert.deepEqual(digest, manual);
    assert.equal(nobleRecoverAddress(digest, hexToBytes(FIXTURE.k256Signature)), FIXTURE.kmsRootAddress);
    const rootAddress = publicKeyToAddress(
      `0x${secp256k1.Point.fromBytes(hexToBytes(FIXTURE.kmsRootPubkey)).toHex(false)}`,
    );
    assert.equal(rootAddress.toLowerCase(), FIXTURE.kmsRootAddress);
  });

  test("the app id as hex text (not raw bytes) does not recover the KMS root", () => {
    const digest = keccak_256(
      concatBytes(
        utf8ToBytes("dstack-kms-issued:"),
        utf8ToBytes(FIXTURE.appId),
        hexToBytes(FIXTURE.appPubkey),
      ),
    );
    assert.notEqual(nobleRecoverAddress(digest, hexToBytes(FIXTURE.k256Signature)), FIXTURE.kmsRootAddress);
  });

  test("inline fixture values equal the fixture file", () => {
    const file = JSON.parse(readFileSync(FIXTURE_FILE, "utf8")) as Record<string, unknown>;
    assert.equal(file.k256_key, FIXTURE.k256Key);
    assert.equal(file.k256_signature, FIXTURE.k256Signature);
  });
});

describe("deriveAppKey", () => {
  test("is HKDF-SHA256(salt=RATLS, ikm=root, info=appId || 'app-key') (checked against node:crypto)", () => {
    const expected = nodeHkdf(ROOT, concatBytes(APP_ID, utf8ToBytes("app-key")));
    assert.deepEqual(deriveAppKey(ROOT, APP_ID), expected);
  });

  test("is deterministic and separates app ids and roots", () => {
    const a = deriveAppKey(ROOT, APP_ID);
    assert.deepEqual(deriveAppKey(ROOT, APP_ID.slice()), a);
    const otherApp = APP_ID.slice();
    otherApp[19]! ^= 1;
    assert.notDeepEqual(deriveAppKey(ROOT, otherApp), a);
    assert.notDeepEqual(deriveAppKey(keccak_256(ROOT), APP_ID), a);
  });

  test("rejects an app id that is not 20 bytes", () => {
    for (const appId of [APP_ID.slice(0, 19), concatBytes(APP_ID, Uint8Array.of(0))]) {
      assert.throws(
        () => deriveAppKey(ROOT, appId),
        (e) => isAttestmeshError(e, "InvalidAppId"),
      );
    }
  });
});

describe("kmsSignAppKey", () => {
  const appPubkey = secp256k1PublicKey(deriveAppKey(ROOT, APP_ID));

  test("is a low-s, v ∈ {0,1} recoverable signature by the root over the kms-issued digest", () => {
    const signature = kmsSignAppKey(ROOT, APP_ID, appPubkey);
    assert.equal(signature.length, 65);
    assert.ok(signature[64] === 0 || signature[64] === 1);
    const sig = secp256k1.Signature.fromBytes(signature.subarray(0, 64), "compact");
    assert.equal(sig.hasHighS(), false);
    const rootAddress = publicKeyToAddress(
      `0x${bytesToHex(secp256k1.getPublicKey(ROOT, false))}`,
    ).toLowerCase();
    assert.equal(nobleRecoverAddress(kmsIssuedDigest(APP_ID, appPubkey), signature), rootAddress);
  });

  test("is deterministic (RFC 6979)", () => {
    assert.deepEqual(kmsSignAppKey(ROOT, APP_ID, appPubkey), kmsSignAppKey(ROOT, APP_ID, appPubkey));
  });

  test("rejects an app public key that is not 33 bytes", () => {
    assert.throws(
      () => kmsSignAppKey(ROOT, APP_ID, appPubkey.slice(1)),
      (e) => isAttestmeshError(e, "InvalidPublicKeyLength"),
    );
  });
});

describe("deriveKey and derivedPublicKey", () => {
  const appKey = deriveAppKey(ROOT, APP_ID);

  test("deriveKey is HKDF-SHA256(salt=RATLS, ikm=appKey, info=utf8(path))", () => {
    for (const path of ["", "/wg", "/attestmesh/wireguard/ü"]) {
      assert.deepEqual(deriveKey(appKey, path), nodeHkdf(appKey, utf8ToBytes(path)));
    }
  });

  test("different paths give different keys; the same path the same key", () => {
    assert.deepEqual(deriveKey(appKey, "/a"), deriveKey(appKey, "/a"));
    assert.notDeepEqual(deriveKey(appKey, "/a"), deriveKey(appKey, "/b"));
  });

  test("secp256k1 public key is 33-byte compressed SEC1", () => {
    const k = deriveKey(appKey, "/secp");
    const pub = derivedPublicKey(k, "secp256k1");
    assert.equal(pub.length, 33);
    assert.ok(pub[0] === 2 || pub[0] === 3);
    assert.deepEqual(pub, secp256k1.getPublicKey(k, true));
  });

  test("ed25519 public key uses k as the seed (checked against node:crypto)", () => {
    const k = deriveKey(appKey, "/ed");
    const pkcs8 = concatBytes(hexToBytes("302e020100300506032b657004220420"), k);
    const spki = createPublicKey(
      createPrivateKey({ key: Buffer.from(pkcs8), format: "der", type: "pkcs8" }),
    ).export({
      format: "der",
      type: "spki",
    });
    assert.deepEqual(derivedPublicKey(k, "ed25519"), new Uint8Array(spki.subarray(-32)));
  });

  test("an unknown algorithm is refused", () => {
    assert.throws(
      () => derivedPublicKey(deriveKey(appKey, "/x"), "p256" as never),
      (e) => isAttestmeshError(e, "UnsupportedKeyAlgorithm"),
    );
  });
});

describe("appSignDerivedKey", () => {
  const appKey = deriveAppKey(ROOT, APP_ID);
  const appAddress = publicKeyToAddress(
    `0x${bytesToHex(secp256k1.getPublicKey(appKey, false))}`,
  ).toLowerCase();

  test("signs keccak256(purpose ':' lowercase hex without 0x) with the app key", () => {
    for (const algorithm of ["secp256k1", "ed25519"] as const) {
      const pub = derivedPublicKey(deriveKey(appKey, `/${algorithm}`), algorithm);
      const digest = keccak_256(utf8ToBytes(`wireguard:${bytesToHex(pub).toLowerCase()}`));
      assert.deepEqual(derivedKeyDigest("wireguard", pub), digest);
      const signature = appSignDerivedKey(appKey, "wireguard", pub);
      assert.ok(signature[64] === 0 || signature[64] === 1);
      assert.equal(nobleRecoverAddress(digest, signature), appAddress);
    }
  });
});
