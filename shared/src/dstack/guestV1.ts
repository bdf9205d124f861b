/**
 * dstack 0.6's guest API v1 key derivation and key claim, byte for byte
 * (DESIGN.md "dstack, exactly"; dstack's docs/guest-api-v1.md @147e39c8):
 *
 *   LP(x)  = uint32_be(len(x)) || x
 *   key    = HKDF-SHA256(salt="dstack-guest-v1", ikm=appKey,
 *                        info=LP("dstack-guest-v1-key") || LP(algorithm) || LP(domain), 32)
 *   claim  = LP("dstack-guest-v1-key-claim") || LP(algorithm) || LP(domain) || LP(raw public key)
 *   link 0 = sign_appKey(keccak256(claim))      (link 1, the KMS signature, as in v0)
 *
 * The domain is bytes (a string is taken as its UTF-8). A v0 message
 * (`purpose:hex(key)`) ends in 64 or 66 lowercase hex characters; a v1 claim's
 * last 36 or 37 bytes hold the key's length prefix, which starts with a zero
 * byte: no byte string is both, so a signature over one is never a signature
 * over the other.
 */
import { hkdf } from "@noble/hashes/hkdf";
import { sha256 } from "@noble/hashes/sha2";
import { keccak_256 } from "@noble/hashes/sha3";
import { concatBytes, utf8ToBytes } from "@noble/hashes/utils";
import { AttestmeshError } from "../errors.ts";
import {
  ED25519_PUBLIC_KEY_LENGTH,
  type KeyAlgorithm,
  SECP256K1_COMPRESSED_LENGTH,
  SECRET_KEY_LENGTH,
  signRecoverable,
} from "./keychain.ts";

/** HKDF salt of guest API v1 key derivation. */
export const GUEST_V1_SALT = "dstack-guest-v1";
/** First field of the v1 HKDF info. */
export const GUEST_V1_KEY_LABEL = "dstack-guest-v1-key";
/** First field of the v1 key claim link 0 signs. */
export const GUEST_V1_CLAIM_LABEL = "dstack-guest-v1-key-claim";

/** The guest API a key chain comes from: 0 (`GetKey`) or 1 (`/v1/GetKey`). */
export type GuestApiVersion = 0 | 1;

/** `uint32_be(len(x)) || x`. */
export function lengthPrefixed(x: Uint8Array): Uint8Array {
  if (x.length > 0xffffffff) {
    throw new AttestmeshError("a length-prefixed field must be shorter than 2^32 bytes.", {
      code: "InvalidLength",
      details: { length: x.length },
    });
  }
  const out = new Uint8Array(4 + x.length);
  new DataView(out.buffer).setUint32(0, x.length, false);
  out.set(x, 4);
  return out;
}

function domainBytes(domain: string | Uint8Array): Uint8Array {
  return typeof domain === "string" ? utf8ToBytes(domain) : domain;
}

/** The algorithm a raw public key's length implies (33: secp256k1, 32: ed25519). */
export function algorithmOfPublicKey(publicKey: Uint8Array): KeyAlgorithm {
  if (publicKey.length === SECP256K1_COMPRESSED_LENGTH) return "secp256k1";
  if (publicKey.length === ED25519_PUBLIC_KEY_LENGTH) return "ed25519";
  throw new AttestmeshError(
    `a v1 public key is 33 bytes (secp256k1) or 32 bytes (ed25519), got ${publicKey.length}.`,
    { code: "InvalidPublicKeyLength", details: { length: publicKey.length } },
  );
}

/** The v1 derived secret: HKDF-SHA256 with salt "dstack-guest-v1" and length-prefixed info. */
export function deriveKeyV1(
  appKey: Uint8Array,
  algorithm: KeyAlgorithm,
  domain: string | Uint8Array,
): Uint8Array {
  if (!(appKey instanceof Uint8Array) || appKey.length !== SECRET_KEY_LENGTH) {
    throw new AttestmeshError("app key must be exactly 32 bytes; pass the raw bytes.", {
      code: "InvalidSecretKey",
    });
  }
  const info = concatBytes(
    lengthPrefixed(utf8ToBytes(GUEST_V1_KEY_LABEL)),
    lengthPrefixed(utf8ToBytes(algorithm)),
    lengthPrefixed(domainBytes(domain)),
  );
  return hkdf(sha256, appKey, utf8ToBytes(GUEST_V1_SALT), info, 32);
}

/** The v1 key claim link 0 signs (not hashed). The algorithm follows from the key's length. */
export function keyClaimV1(domain: string | Uint8Array, publicKey: Uint8Array): Uint8Array {
  return concatBytes(
    lengthPrefixed(utf8ToBytes(GUEST_V1_CLAIM_LABEL)),
    lengthPrefixed(utf8ToBytes(algorithmOfPublicKey(publicKey))),
    lengthPrefixed(domainBytes(domain)),
    lengthPrefixed(publicKey),
  );
}

/** `keccak256(keyClaimV1(domain, publicKey))`: the digest the app key signs in v1. */
export function keyClaimDigestV1(domain: string | Uint8Array, publicKey: Uint8Array): Uint8Array {
  return keccak_256(keyClaimV1(domain, publicKey));
}

/** The app key's recoverable signature (r || s || v, v ∈ {0,1}, low s) over a v1 key claim. */
export function appSignKeyClaimV1(
  appKey: Uint8Array,
  domain: string | Uint8Array,
  publicKey: Uint8Array,
): Uint8Array {
  return signRecoverable(appKey, keyClaimDigestV1(domain, publicKey));
}
