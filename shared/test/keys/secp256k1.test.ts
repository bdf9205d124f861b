// secp256k1 recovery on libsecp256k1 against @noble/curves, the implementation it replaced: the same
// key, or no key from both, on random signatures, on random bytes, and on each edge a recovery has (r no
// point's x coordinate, a result at infinity, digests at or above n, the bounds of r and s, the other
// recovery id); and the production KMS chains still verify to the KMS signer noble recovers.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils";
import { getAddress } from "viem";
import { publicKeyToAddress } from "viem/accounts";
import { keyChainInputOf, loadKmsChains } from "../../../test/fixtures/dstack/fixtures.ts";
import { kmsIssuedDigest } from "../../src/dstack/keychain.ts";
import {
  type KeyChainInput,
  recoverSignerAddress,
  SECP256K1_HALF_N,
  SECP256K1_N,
  SECP256K1_P,
  verifyDstackKeyChain,
} from "../../src/dstack/verify.ts";
import { AttestmeshError } from "../../src/errors.ts";
import { secp256k1Recover } from "../../src/keys/secp256k1.ts";

const { Point } = secp256k1;

function bytes32(value: bigint): Uint8Array {
  return hexToBytes(value.toString(16).padStart(64, "0"));
}

function rs(r: bigint, s: bigint): Uint8Array {
  const out = new Uint8Array(64);
  out.set(bytes32(r));
  out.set(bytes32(s), 32);
  return out;
}

/** @noble/curves' answer: the uncompressed key as hex, or null where it throws (no key recovered). */
function nobleRecover(digest: Uint8Array, r: bigint, s: bigint, recovery: 0 | 1): string | null {
  try {
    return bytesToHex(new secp256k1.Signature(r, s, recovery).recoverPublicKey(digest).toBytes(false));
  } catch {
    return null;
  }
}

function libsecpRecover(digest: Uint8Array, r: bigint, s: bigint, recovery: 0 | 1): string | null {
  const key = secp256k1Recover(digest, rs(r, s), recovery);
  return key === null ? null : bytesToHex(key);
}

function assertAgree(digest: Uint8Array, r: bigint, s: bigint, recovery: 0 | 1, what: string): string | null {
  const expected = nobleRecover(digest, r, s, recovery);
  assert.equal(libsecpRecover(digest, r, s, recovery), expected, what);
  return expected;
}

const mod = (a: bigint, m: bigint) => ((a % m) + m) % m;

/** An r in [1, n − 1] that is the x coordinate of no curve point (x³ + 7 is not a square mod p). */
function rOffTheCurve(from: bigint): bigint {
  for (let x = from; ; x++) {
    try {
      Point.fromHex(`02${x.toString(16).padStart(64, "0")}`);
    } catch {
      return x;
    }
  }
}

describe("secp256k1Recover (libsecp256k1) against @noble/curves", () => {
  test("random low-s and high-s signatures: both recover the signer's key", () => {
    for (let i = 0; i < 200; i++) {
      const secret = secp256k1.utils.randomSecretKey();
      const digest = new Uint8Array(randomBytes(32));
      const signature = secp256k1.sign(digest, secret, { lowS: true, prehash: false });
      const recovery = signature.recovery as 0 | 1;
      const key = bytesToHex(secp256k1.getPublicKey(secret, false));
      assert.equal(assertAgree(digest, signature.r, signature.s, recovery, `signature ${i}`), key);
      // The malleable twin recovers the same key (refusing it is the callers' job).
      const twin = (recovery ^ 1) as 0 | 1;
      assert.equal(assertAgree(digest, signature.r, SECP256K1_N - signature.s, twin, `twin ${i}`), key);
      // The other recovery id recovers some other key, the same one in both.
      assert.notEqual(assertAgree(digest, signature.r, signature.s, twin, `flipped ${i}`), key);
    }
  });

  test("random r, s, recovery id and digest: the same key, or no key from both (about half have no R)", () => {
    let none = 0;
    for (let i = 0; i < 400; i++) {
      const r = mod(BigInt(`0x${bytesToHex(randomBytes(32))}`), SECP256K1_N - 1n) + 1n;
      const s = mod(BigInt(`0x${bytesToHex(randomBytes(32))}`), SECP256K1_N - 1n) + 1n;
      const recovery = (i & 1) as 0 | 1;
      if (assertAgree(new Uint8Array(randomBytes(32)), r, s, recovery, `random ${i}`) === null) none++;
    }
    assert.ok(none > 100 && none < 300, `${none} of 400 random r recover no key`);
  });

  test("an r that is no curve point's x coordinate: no key from either", () => {
    const digest = new Uint8Array(randomBytes(32));
    for (const from of [1n, 2n ** 128n, SECP256K1_N - 1000n]) {
      const r = rOffTheCurve(from);
      assert.ok(r < SECP256K1_N);
      for (const recovery of [0, 1] as const) {
        assert.equal(assertAgree(digest, r, 1n, recovery, `r = ${r}`), null);
      }
    }
  });

  test("a result at infinity (digest = s·k for R = k·G): no key from either, SignatureRecoveryFailed in the verifier", () => {
    for (let i = 0; i < 8; i++) {
      const k = mod(BigInt(`0x${bytesToHex(randomBytes(32))}`), SECP256K1_N - 1n) + 1n;
      const R = Point.BASE.multiply(k);
      const r = R.x;
      const s = mod(BigInt(`0x${bytesToHex(randomBytes(32))}`), SECP256K1_HALF_N - 1n) + 1n;
      const digest = bytes32(mod(s * k, SECP256K1_N));
      const recovery = Number(R.y & 1n) as 0 | 1;
      assert.ok(r < SECP256K1_N, "R.x < n (true but for a 2^-128 chance)");
      assert.equal(assertAgree(digest, r, s, recovery, `infinity ${i}`), null);
      // The other parity is −R, whose result is not at infinity.
      assert.notEqual(assertAgree(digest, r, s, (recovery ^ 1) as 0 | 1, `−R ${i}`), null);
      const signature = new Uint8Array(65);
      signature.set(rs(r, s));
      signature[64] = 27 + recovery;
      assert.throws(
        () => recoverSignerAddress(digest, signature),
        (error: unknown) => error instanceof AttestmeshError && error.code === "SignatureRecoveryFailed",
      );
    }
  });

  test("digests at and above n, zero, and all ones: reduced mod n by both", () => {
    const secret = secp256k1.utils.randomSecretKey();
    const key = bytesToHex(secp256k1.getPublicKey(secret, false));
    for (const value of [
      0n,
      1n,
      SECP256K1_N - 1n,
      SECP256K1_N,
      SECP256K1_N + 1n,
      SECP256K1_P,
      2n ** 256n - 1n,
    ]) {
      const digest = bytes32(value);
      const signature = secp256k1.sign(digest, secret, { lowS: true, prehash: false });
      assert.equal(
        assertAgree(digest, signature.r, signature.s, signature.recovery as 0 | 1, `digest ${value}`),
        key,
      );
    }
    // A digest and the same digest plus n are one message to both.
    const digest = bytes32(5n);
    const signature = secp256k1.sign(digest, secret, { lowS: true, prehash: false });
    assert.equal(
      libsecpRecover(bytes32(SECP256K1_N + 5n), signature.r, signature.s, signature.recovery as 0 | 1),
      key,
    );
  });

  test("r and s at the bounds of [1, n − 1]: the same answer from both", () => {
    const digest = new Uint8Array(randomBytes(32));
    const bounds = [1n, 2n, SECP256K1_HALF_N, SECP256K1_HALF_N + 1n, SECP256K1_N - 2n, SECP256K1_N - 1n];
    for (const r of bounds) {
      for (const s of bounds) {
        for (const recovery of [0, 1] as const) assertAgree(digest, r, s, recovery, `r ${r}, s ${s}`);
      }
    }
  });

  test("r or s outside [1, n − 1], a recovery id but 0 and 1, wrong lengths: a RangeError, not a key", () => {
    const digest = new Uint8Array(32);
    for (const [r, s] of [
      [0n, 1n],
      [1n, 0n],
      [SECP256K1_N, 1n],
      [1n, SECP256K1_N],
      [2n ** 256n - 1n, 1n],
    ] as const) {
      assert.throws(() => secp256k1Recover(digest, rs(r, s), 0), RangeError, `r ${r}, s ${s}`);
    }
    assert.throws(() => secp256k1Recover(digest, rs(1n, 1n), 2 as 0), RangeError);
    assert.throws(() => secp256k1Recover(new Uint8Array(31), rs(1n, 1n), 0), RangeError);
    assert.throws(() => secp256k1Recover(digest, new Uint8Array(65), 0), RangeError);
  });

  test("compressed output is the same key", () => {
    const secret = secp256k1.utils.randomSecretKey();
    const digest = new Uint8Array(randomBytes(32));
    const signature = secp256k1.sign(digest, secret, { lowS: true, prehash: false });
    const key = secp256k1Recover(digest, rs(signature.r, signature.s), signature.recovery as 0 | 1, true);
    assert.equal(bytesToHex(key!), bytesToHex(secp256k1.getPublicKey(secret, true)));
  });
});

describe("the production KMS chains (test/fixtures/dstack/production) on libsecp256k1", () => {
  const fixture = loadKmsChains();
  /** The KMS signer as @noble/curves recovers it from the KMS signature. */
  const nobleKmsSigner = (input: KeyChainInput) => {
    const v = input.kmsSignature[64]!;
    const signature = secp256k1.Signature.fromBytes(input.kmsSignature.subarray(0, 64), "compact");
    const point = signature
      .addRecoveryBit(v >= 27 ? v - 27 : v)
      .recoverPublicKey(kmsIssuedDigest(input.appId, input.appPubkey));
    return publicKeyToAddress(`0x${bytesToHex(point.toBytes(false))}`);
  };

  for (const chain of fixture.chains) {
    test(`${chain.name}: verifies to its KMS root, the signer noble recovers`, () => {
      const input = keyChainInputOf(chain);
      assert.equal(verifyDstackKeyChain(input), getAddress(chain.kmsRootAddress));
      assert.equal(verifyDstackKeyChain(input), nobleKmsSigner(input));
    });
  }

  test("the production negative does not verify to a production root", () => {
    const roots = new Set(fixture.chains.map((chain) => getAddress(chain.kmsRootAddress)));
    assert.ok(fixture.negative.length > 0);
    for (const chain of fixture.negative) {
      let signer: string | undefined;
      try {
        signer = verifyDstackKeyChain(keyChainInputOf(chain));
      } catch (error) {
        assert.ok(error instanceof AttestmeshError, String(error));
      }
      assert.ok(signer === undefined || !roots.has(getAddress(signer)), chain.name);
    }
  });
});
