// Ed25519 signatures on Node's OpenSSL, with RFC 8032's strict rules for the public key.
//
// Why not @noble/curves here: its verify is plain JavaScript, about 7 ms a signature on the 2-core
// devnet machine against 0.3 ms here, and every member verifies every indexer push before it wakes
// (docs/performance.md, "Ed25519 on OpenSSL"). Signatures are deterministic, so signing here gives the
// same bytes as any other RFC 8032 signer.
//
// What a signature must pass to verify, the rules of @noble/curves' strict mode (`zip215: false`):
// - the public key is a canonical encoding (y < p, no sign bit on x = 0) of a point of large order,
//   checked once per key with @noble/curves (OpenSSL decodes y ≥ p and accepts small-order keys, for
//   which a signature of any message is trivial);
// - S < L, and R re-encodes to the bytes sent (OpenSSL checks both);
// - [S]B = R + [k]A (OpenSSL's equation, without the cofactor: stricter than @noble/curves for a
//   signature whose R carries a small-order part, which no honest signer makes).
import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from "node:crypto";
import { ed25519 } from "@noble/curves/ed25519";

/** Keys remembered with their verdict; a node sees a few (its indexers', its peers'). */
const KEYS_KEPT = 256;

/** The public key's KeyObject, or null for a key no signature may verify under. */
const publicKeys = new Map<string, KeyObject | null>();

function publicKeyObject(publicKey: Uint8Array): KeyObject | null {
  const id = Buffer.from(publicKey).toString("hex");
  const known = publicKeys.get(id);
  if (known !== undefined) return known;
  let key: KeyObject | null = null;
  try {
    // Strict decoding throws on a non-canonical encoding or a point off the curve.
    if (!ed25519.ExtendedPoint.fromHex(publicKey, false).isSmallOrder()) {
      key = createPublicKey({
        key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(publicKey).toString("base64url") },
        format: "jwk",
      });
    }
  } catch {
    key = null;
  }
  if (publicKeys.size >= KEYS_KEPT) publicKeys.delete(publicKeys.keys().next().value!);
  publicKeys.set(id, key);
  return key;
}

/** Whether `signature` (64 bytes) is `publicKey`'s (32 bytes) over `message`, by the rules above. */
export function ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  const key = publicKeyObject(publicKey);
  if (key === null) return false;
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}

/** PKCS#8 wrapping of a 32-byte Ed25519 seed (RFC 8410). */
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/** Signs `message` with the 32-byte Ed25519 secret (seed). The key lives only in this call. */
export function ed25519Sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (secretKey.length !== 32) throw new TypeError("an Ed25519 secret key is 32 bytes");
  const der = Buffer.concat([PKCS8_PREFIX, secretKey]);
  try {
    const key = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
    return new Uint8Array(sign(null, message, key));
  } finally {
    der.fill(0);
  }
}
