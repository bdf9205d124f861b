import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { ed25519 } from "@noble/curves/ed25519";
import { ed25519Sign, ed25519Verify } from "../../src/keys/ed25519.ts";

const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

function littleEndian(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

function fromLittleEndian(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  return n;
}

/** A signature that holds for any message under a small-order key A: R = [s]B, S = s, so [S]B = R + [k]A. */
function anyMessageSignature(s: bigint): Uint8Array {
  const out = new Uint8Array(64);
  out.set(ed25519.ExtendedPoint.BASE.multiply(s).toRawBytes(), 0);
  out.set(littleEndian(s), 32);
  return out;
}

describe("Ed25519 on OpenSSL", () => {
  it("signs exactly as RFC 8032 (the bytes @noble/curves makes), and verifies its own and noble's", () => {
    for (let i = 0; i < 20; i++) {
      const secret = randomBytes(32);
      const message = randomBytes(i * 37);
      const ours = ed25519Sign(message, secret);
      assert.deepEqual(ours, ed25519.sign(message, secret), `trial ${i}`);
      assert.equal(ed25519Verify(ours, message, ed25519.getPublicKey(secret)), true);
    }
  });

  it("refuses a changed message, a changed signature, another key and wrong lengths", () => {
    const secret = randomBytes(32);
    const publicKey = ed25519.getPublicKey(secret);
    const message = new TextEncoder().encode("a push for block 54");
    const signature = ed25519Sign(message, secret);
    assert.equal(ed25519Verify(signature, new TextEncoder().encode("a push for block 55"), publicKey), false);
    for (const at of [0, 31, 32, 63]) {
      const flipped = signature.slice();
      flipped[at]! ^= 1;
      assert.equal(ed25519Verify(flipped, message, publicKey), false, `bit flipped at byte ${at}`);
    }
    assert.equal(ed25519Verify(signature, message, ed25519.getPublicKey(randomBytes(32))), false);
    assert.equal(ed25519Verify(signature.subarray(0, 63), message, publicKey), false);
    assert.equal(ed25519Verify(signature, message, publicKey.subarray(0, 31)), false);
    assert.throws(() => ed25519Sign(message, secret.subarray(0, 31)), /32 bytes/);
  });

  it("attacker: S + L (the same signature, malleated) does not verify", () => {
    const secret = randomBytes(32);
    const message = randomBytes(40);
    const signature = ed25519Sign(message, secret);
    const malleated = signature.slice();
    malleated.set(littleEndian(fromLittleEndian(signature.subarray(32)) + L), 32);
    assert.equal(ed25519Verify(malleated, message, ed25519.getPublicKey(secret)), false);
  });

  it("attacker: no key of small order verifies a signature of any message (OpenSSL alone would)", () => {
    // Points of order 1, 2, 4 and 8 in canonical encodings; the test checks each is of small order.
    const negativeZeroX = littleEndian(0n);
    negativeZeroX[31]! |= 0x80;
    const smallOrder = [
      littleEndian(1n), // the identity
      littleEndian(P - 1n), // order 2: (0, -1)
      littleEndian(0n), // order 4: (sqrt(-1), 0)
      negativeZeroX, // order 4: (-sqrt(-1), 0)
      Buffer.from("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", "hex"), // order 8
      Buffer.from("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", "hex"), // order 8
    ];
    const message = new TextEncoder().encode("evict member 3");
    for (const key of smallOrder) {
      const forged = anyMessageSignature(12_345n);
      assert.equal(ed25519.ExtendedPoint.fromHex(key).isSmallOrder(), true);
      assert.equal(ed25519Verify(forged, message, key), false, Buffer.from(key).toString("hex"));
    }
  });

  it("attacker: a non-canonical key (y ≥ p, or a sign bit on x = 0) does not verify", () => {
    const message = new TextEncoder().encode("a sealed message");
    const forged = anyMessageSignature(777n);
    const yAboveP = littleEndian(P + 1n); // y = 1 again, encoded non-canonically
    const negativeZero = littleEndian(1n);
    negativeZero[31]! |= 0x80;
    assert.equal(ed25519Verify(forged, message, yAboveP), false);
    assert.equal(ed25519Verify(forged, message, negativeZero), false);
  });

  it("agrees with @noble/curves' strict mode on valid signatures and on every single-byte change", () => {
    for (let i = 0; i < 8; i++) {
      const secret = randomBytes(32);
      const publicKey = ed25519.getPublicKey(secret);
      const message = randomBytes(64);
      const signature = ed25519Sign(message, secret);
      const cases: Array<[Uint8Array, Uint8Array, Uint8Array]> = [[signature, message, publicKey]];
      for (let at = 0; at < 64; at += 7) {
        const s = signature.slice();
        s[at]! ^= 0x40;
        cases.push([s, message, publicKey]);
      }
      for (let at = 0; at < 32; at += 5) {
        const k = publicKey.slice();
        k[at]! ^= 0x02;
        cases.push([signature, message, k]);
      }
      for (const [s, m, k] of cases) {
        let noble: boolean;
        try {
          noble = ed25519.verify(s, m, k, { zip215: false });
        } catch {
          noble = false;
        }
        assert.equal(ed25519Verify(s, m, k), noble);
      }
    }
  });
});
