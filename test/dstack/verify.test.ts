import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  appSignDerivedKey,
  derivedPublicKey,
  deriveKey,
  KEY_ALGORITHMS,
  kmsSignAppKey,
  secp256k1PublicKey,
} from "@attestmesh/shared/dstack/keychain.ts";
import {
  compressedToAddress,
  decompress,
  KEY_CHAIN_ERROR_CODES,
  type KeyChainInput,
  recoverSignerAddress,
  SECP256K1_HALF_N,
  SECP256K1_N,
  SECP256K1_P,
  verifyDstackKeyChain,
} from "@attestmesh/shared/dstack/verify.ts";
import { AttestmeshError, isAttestmeshError } from "@attestmesh/shared/errors.ts";
import { secp256k1 } from "@noble/curves/secp256k1";
import { keccak_256 } from "@noble/hashes/sha3";
import { bytesToHex, hexToBytes, utf8ToBytes } from "@noble/hashes/utils";
import { getAddress } from "viem";
import { publicKeyToAddress } from "viem/accounts";
import { corruptChainInput, equivalentChainInputs, randomValidChainInput } from "./corrupt.ts";

const SEEDS = [0, 1, 2, 3, 4, 5, 6, 7];

function errorOf(run: () => unknown): AttestmeshError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof AttestmeshError, `expected AttestmeshError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected the call to throw");
}

describe("verifyDstackKeyChain on dstack's simulator fixture", () => {
  test("a chain under k256_key verifies to the fixture's KMS root", () => {
    const appKey = hexToBytes("d6e88992cdeeee35fe70b5db61ab66cdb191fb9b6ec9313757ef162dd7214d5d");
    const derivedPubkey = derivedPublicKey(deriveKey(appKey, "/attestmesh/wg"), "secp256k1");
    const input: KeyChainInput = {
      appId: hexToBytes("5bb4ff9a3837357f19dc176407a5709c62eb6c56"),
      purpose: "wireguard",
      derivedPubkey,
      appPubkey: secp256k1PublicKey(appKey),
      appSignature: appSignDerivedKey(appKey, "wireguard", derivedPubkey),
      kmsSignature: hexToBytes(
        "9e618603e72d01fedb82deff6daf2d62a572becf0059eec3f89c1ab40e1f2e594d2a283f843f34e8f39e4cc49a612496ce67223a12ac923f8efe330346dfc6c500",
      ),
    };
    const signer = verifyDstackKeyChain(input);
    assert.equal(signer.toLowerCase(), "0xa7f6043c29f9cc1d9d6acf554c53e0c6792aaeaf");
    assert.equal(signer, getAddress(signer), "the signer is returned checksummed");
  });
});

describe("verifyDstackKeyChain on valid chains", () => {
  for (const algorithm of KEY_ALGORITHMS) {
    test(`${algorithm}: returns the KMS root address for seeded chains`, () => {
      for (const seed of SEEDS) {
        const { input, kmsRootAddress } = randomValidChainInput(seed, algorithm);
        assert.equal(input.derivedPubkey.length, algorithm === "secp256k1" ? 33 : 32);
        assert.equal(verifyDstackKeyChain(input), kmsRootAddress);
      }
    });

    test(`${algorithm}: v written as 27/28 verifies to the same signer`, () => {
      const { input, kmsRootAddress } = randomValidChainInput(11, algorithm);
      for (const variant of equivalentChainInputs(input)) {
        assert.equal(verifyDstackKeyChain(variant.input), kmsRootAddress, variant.name);
      }
    });
  }

  test("a KMS signature from another root returns that other root, not an error", () => {
    const a = randomValidChainInput(1);
    const b = randomValidChainInput(2);
    const kmsSignature = kmsSignAppKey(b.kmsRootSecret, a.input.appId, a.input.appPubkey);
    const signer = verifyDstackKeyChain({ ...a.input, kmsSignature });
    assert.equal(signer, b.kmsRootAddress);
    assert.notEqual(signer, a.kmsRootAddress);
  });

  test("another app id changes the KMS signer (the app id is inside the signed message)", () => {
    const { input, kmsRootAddress } = randomValidChainInput(3);
    const appId = input.appId.slice();
    appId[0]! ^= 0x80;
    assert.notEqual(verifyDstackKeyChain({ ...input, appId }), kmsRootAddress);
  });
});

describe("verifyDstackKeyChain on corrupted chains", () => {
  for (const algorithm of KEY_ALGORITHMS) {
    for (const seed of SEEDS.slice(0, 4)) {
      test(`${algorithm}, seed ${seed}: every corrupted variant fails with its code`, () => {
        const { input } = randomValidChainInput(seed, algorithm);
        const variants = corruptChainInput(input, seed);
        assert.ok(variants.length > 60);
        for (const { name, input: corrupted, expectedCode } of variants) {
          const error = errorOf(() => verifyDstackKeyChain(corrupted));
          assert.equal(error.code, expectedCode, `${name}: ${error.message}`);
          assert.equal(error.retryable, false, name);
          // A single-field fault names that field (mismatches are reported on the app signature).
          const field = /^(appId|derivedPubkey|appPubkey|appSignature|kmsSignature): /.exec(name)?.[1];
          if (field !== undefined && expectedCode !== "AppSignatureMismatch") {
            assert.equal(error.details.field, field, name);
          }
        }
      });
    }
  }

  test("the variants cover every error code, for both algorithms", () => {
    for (const algorithm of KEY_ALGORITHMS) {
      const codes = new Set(
        corruptChainInput(randomValidChainInput(0, algorithm).input, 0).map((v) => v.expectedCode),
      );
      assert.deepEqual([...codes].sort(), [...KEY_CHAIN_ERROR_CODES].sort(), algorithm);
    }
  });

  test("the variants include the cases the on-chain tests name", () => {
    const names = new Set(corruptChainInput(randomValidChainInput(0).input, 0).map((v) => v.name));
    for (const field of ["appSignature", "kmsSignature"]) {
      for (const c of [
        "v = 2",
        "v = 29",
        "r = 0",
        "r = n",
        "s = 0",
        "s = n - s, v flipped",
        "seeded off-curve r",
      ]) {
        assert.ok(names.has(`${field}: ${c}`), `${field}: ${c}`);
      }
    }
    for (const field of ["appPubkey", "derivedPubkey"]) {
      for (const c of ["prefix 0x04", "x = p", "seeded off-curve x"])
        assert.ok(names.has(`${field}: ${c}`), `${field}: ${c}`);
    }
    assert.ok(names.has("appSignature: made by another key"));
  });

  test("the corruption helper is deterministic in its seed", () => {
    const { input } = randomValidChainInput(5);
    assert.deepEqual(corruptChainInput(input, 9), corruptChainInput(input, 9));
    const seeded = (seed: number) =>
      corruptChainInput(input, seed).find((v) => v.name === "appPubkey: seeded off-curve x")?.input.appPubkey;
    assert.notDeepEqual(seeded(9), seeded(10));
    assert.deepEqual(randomValidChainInput(5), randomValidChainInput(5));
  });

  test("s = n/2 is accepted as low s and s = n/2 + 1 is refused, on the KMS signature", () => {
    const { input } = randomValidChainInput(6);
    const withS = (s: bigint) => {
      const kmsSignature = input.kmsSignature.slice();
      kmsSignature.set(hexToBytes(s.toString(16).padStart(64, "0")), 32);
      return { ...input, kmsSignature };
    };
    // n/2 passes the field checks, so verification reaches recovery and returns some signer.
    assert.match(verifyDstackKeyChain(withS(SECP256K1_HALF_N)), /^0x[0-9a-fA-F]{40}$/);
    assert.equal(
      errorOf(() => verifyDstackKeyChain(withS(SECP256K1_HALF_N + 1n))).code,
      "SignatureMalleable",
    );
    assert.equal(SECP256K1_HALF_N, SECP256K1_N / 2n);
  });
});

describe("decompress and compressedToAddress", () => {
  test("agree with noble and viem on seeded keys of both parities", () => {
    const parities = new Set<number>();
    for (let i = 0; i < 16; i++) {
      const secret = keccak_256(utf8ToBytes(`decompress ${i}`));
      const compressed = secp256k1.getPublicKey(secret, true);
      parities.add(compressed[0]!);
      const uncompressed = secp256k1.getPublicKey(secret, false);
      assert.deepEqual(decompress(compressed), uncompressed);
      assert.equal(compressedToAddress(compressed), publicKeyToAddress(`0x${bytesToHex(uncompressed)}`));
    }
    assert.deepEqual([...parities].sort(), [2, 3]);
  });

  test("refuse bad lengths, prefixes and x coordinates", () => {
    const good = secp256k1.getPublicKey(keccak_256(utf8ToBytes("good")), true);
    const xP = Uint8Array.of(0x02, ...hexToBytes(SECP256K1_P.toString(16)));
    const cases: [Uint8Array, string][] = [
      [good.slice(0, 32), "InvalidPublicKeyLength"],
      [secp256k1.getPublicKey(keccak_256(utf8ToBytes("good")), false), "InvalidPublicKeyLength"],
      [Uint8Array.of(0x04, ...good.subarray(1)), "InvalidPublicKeyPrefix"],
      [xP, "PublicKeyNotOnCurve"],
      [Uint8Array.of(0x02, ...new Uint8Array(32)), "PublicKeyNotOnCurve"], // x = 0: 7 is not a square mod p
    ];
    for (const [key, code] of cases) {
      assert.throws(
        () => decompress(key),
        (e) => isAttestmeshError(e, code),
        code,
      );
    }
  });
});

describe("recoverSignerAddress", () => {
  test("returns the checksummed signer of a digest and applies the field checks", () => {
    const { input, kmsRootAddress } = randomValidChainInput(4);
    const digest = keccak_256(
      new Uint8Array([...utf8ToBytes("dstack-kms-issued:"), ...input.appId, ...input.appPubkey]),
    );
    assert.equal(recoverSignerAddress(digest, input.kmsSignature), kmsRootAddress);
    const highS = input.kmsSignature.slice();
    highS.set(hexToBytes((SECP256K1_N - 1n).toString(16)), 32);
    assert.throws(
      () => recoverSignerAddress(digest, highS),
      (e) => isAttestmeshError(e, "SignatureMalleable"),
    );
  });
});
