/**
 * dstack's key-derivation and signing algorithms, byte for byte (DESIGN.md,
 * "dstack, exactly"). Pure functions; every byte string in and out is a
 * `Uint8Array`, every text input (path, purpose) a JS string encoded as UTF-8.
 *
 *   app key   = HKDF-SHA256(salt="RATLS", ikm=kmsRoot, info=appId(20) || "app-key", 32)
 *   kms sig   = sign_kmsRoot(keccak256("dstack-kms-issued:" || appId(20) || appPub(33)))
 *   key       = HKDF-SHA256(salt="RATLS", ikm=appKey, info=utf8(path), 32)
 *   app sig   = sign_appKey(keccak256(utf8(purpose) || ":" || utf8(lowerhex(derivedPub))))
 *
 * Signatures are recoverable secp256k1, 65 bytes r || s || v with v ∈ {0,1}
 * and low s, over the 32-byte digest itself (no Ethereum message prefix).
 */
import { ed25519 } from "@noble/curves/ed25519";
import { secp256k1 } from "@noble/curves/secp256k1";
import { hkdf } from "@noble/hashes/hkdf";
import { sha256 } from "@noble/hashes/sha2";
import { keccak_256 } from "@noble/hashes/sha3";
import { bytesToHex, concatBytes, utf8ToBytes } from "@noble/hashes/utils";
import { AttestmeshError } from "../errors.ts";

export type KeyAlgorithm = "secp256k1" | "ed25519";

export const KEY_ALGORITHMS: readonly KeyAlgorithm[] = ["secp256k1", "ed25519"];

/** HKDF salt of every dstack key derivation. */
export const DSTACK_HKDF_SALT = "RATLS";
/** Suffix of the HKDF info that derives an app key from the KMS root. */
export const APP_KEY_INFO_SUFFIX = "app-key";
/** Prefix of the message the KMS root signs over an app public key. */
export const KMS_ISSUED_PREFIX = "dstack-kms-issued:";

export const APP_ID_LENGTH = 20;
export const SECRET_KEY_LENGTH = 32;
export const SECP256K1_COMPRESSED_LENGTH = 33;
export const ED25519_PUBLIC_KEY_LENGTH = 32;
export const RECOVERABLE_SIGNATURE_LENGTH = 65;

const SALT = utf8ToBytes(DSTACK_HKDF_SALT);

function requireLength(value: Uint8Array, length: number, what: string, code: string): void {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    const got = value instanceof Uint8Array ? `${value.length} bytes` : typeof value;
    throw new AttestmeshError(`${what} must be exactly ${length} bytes, got ${got}; pass the raw bytes.`, {
      code,
      details: { what, expected: length, length: value instanceof Uint8Array ? value.length : null },
    });
  }
}

function requireSecp256k1Secret(secret: Uint8Array, what: string): void {
  requireLength(secret, SECRET_KEY_LENGTH, what, "InvalidSecretKey");
  if (!secp256k1.utils.isValidSecretKey(secret)) {
    throw new AttestmeshError(
      `${what} is not a valid secp256k1 scalar (must be in [1, n-1]); use another key.`,
      {
        code: "InvalidSecretKey",
        details: { what },
      },
    );
  }
}

function hkdf32(ikm: Uint8Array, info: Uint8Array): Uint8Array {
  return hkdf(sha256, ikm, SALT, info, 32);
}

/** Signs a 32-byte digest as is; returns r || s || v with v ∈ {0,1} and low s (RFC 6979 nonces). */
export function signRecoverable(secret: Uint8Array, digest: Uint8Array): Uint8Array {
  requireSecp256k1Secret(secret, "signing key");
  requireLength(digest, 32, "digest", "InvalidDigestLength");
  const signature = secp256k1.sign(digest, secret, { lowS: true, prehash: false });
  const recovery = signature.recovery;
  if (recovery !== 0 && recovery !== 1) {
    // r >= n happens with probability ~2^-128; dstack cannot express it either.
    throw new AttestmeshError("signature recovery id is not 0 or 1; sign again with another digest.", {
      code: "SignatureRecoveryFailed",
      details: { recovery },
    });
  }
  return concatBytes(signature.toBytes("compact"), Uint8Array.of(recovery));
}

/** The 33-byte compressed SEC1 public key of a secp256k1 secret. */
export function secp256k1PublicKey(secret: Uint8Array): Uint8Array {
  requireSecp256k1Secret(secret, "secp256k1 secret");
  return secp256k1.getPublicKey(secret, true);
}

/** `HKDF-SHA256(salt="RATLS", ikm=kmsRootSecret, info=appId || "app-key", 32)`. */
export function deriveAppKey(kmsRootSecret: Uint8Array, appId: Uint8Array): Uint8Array {
  requireLength(appId, APP_ID_LENGTH, "app id", "InvalidAppId");
  if (!(kmsRootSecret instanceof Uint8Array) || kmsRootSecret.length === 0) {
    throw new AttestmeshError("KMS root secret must be non-empty bytes.", { code: "InvalidSecretKey" });
  }
  return hkdf32(kmsRootSecret, concatBytes(appId, utf8ToBytes(APP_KEY_INFO_SUFFIX)));
}

/** `keccak256("dstack-kms-issued:" || appId(20) || appPubkeyCompressed(33))`, the digest the KMS root signs. */
export function kmsIssuedDigest(appId: Uint8Array, appPubkeyCompressed: Uint8Array): Uint8Array {
  requireLength(appId, APP_ID_LENGTH, "app id", "InvalidAppId");
  requireLength(appPubkeyCompressed, SECP256K1_COMPRESSED_LENGTH, "app public key", "InvalidPublicKeyLength");
  return keccak_256(concatBytes(utf8ToBytes(KMS_ISSUED_PREFIX), appId, appPubkeyCompressed));
}

/** The KMS root's recoverable signature (r || s || v, v ∈ {0,1}, low s) over an app public key. */
export function kmsSignAppKey(
  kmsRootSecret: Uint8Array,
  appId: Uint8Array,
  appPubkeyCompressed: Uint8Array,
): Uint8Array {
  return signRecoverable(kmsRootSecret, kmsIssuedDigest(appId, appPubkeyCompressed));
}

/** `HKDF-SHA256(salt="RATLS", ikm=appKey, info=utf8(path), 32)`: the secret GetKey returns. */
export function deriveKey(appKey: Uint8Array, path: string): Uint8Array {
  requireLength(appKey, SECRET_KEY_LENGTH, "app key", "InvalidSecretKey");
  return hkdf32(appKey, utf8ToBytes(path));
}

/**
 * Public key of a derived secret `k`: 33-byte compressed SEC1 for secp256k1,
 * or the 32-byte Ed25519 public key when `k` is used as the Ed25519 seed.
 */
export function derivedPublicKey(k: Uint8Array, algorithm: KeyAlgorithm): Uint8Array {
  requireLength(k, SECRET_KEY_LENGTH, "derived key", "InvalidSecretKey");
  switch (algorithm) {
    case "secp256k1":
      return secp256k1PublicKey(k);
    case "ed25519":
      return ed25519.getPublicKey(k);
    default:
      throw new AttestmeshError(
        `unsupported key algorithm ${JSON.stringify(algorithm)}; use "secp256k1" or "ed25519".`,
        { code: "UnsupportedKeyAlgorithm", details: { algorithm } },
      );
  }
}

/** `keccak256(utf8(purpose) || ":" || utf8(lowerhex(derivedPubkey)))`, no `0x`: the digest the app key signs. */
export function derivedKeyDigest(purpose: string, derivedPubkey: Uint8Array): Uint8Array {
  return keccak_256(utf8ToBytes(`${purpose}:${bytesToHex(derivedPubkey)}`));
}

/** The app key's recoverable signature (r || s || v, v ∈ {0,1}, low s) over a derived public key. */
export function appSignDerivedKey(
  appKey: Uint8Array,
  purpose: string,
  derivedPubkey: Uint8Array,
): Uint8Array {
  return signRecoverable(appKey, derivedKeyDigest(purpose, derivedPubkey));
}
