/**
 * Off-chain verifier of a dstack key chain (KMS root → app key → derived key).
 * It mirrors the on-chain verifier bit for bit: same accepted encodings, same
 * error per input, same order of checks. Everything is decided with plain
 * integer arithmetic on the bytes (as the EVM does with ecrecover and modexp);
 * the elliptic-curve recovery itself is libsecp256k1's, the library behind geth's
 * ecrecover (shared/src/keys/secp256k1.ts, which says what it accepts).
 *
 * Order of checks (the first failing check decides the error):
 *  -1. guestApiVersion ∈ {0, 1} (TypeScript here; the proof structs on chain)      UnsupportedGuestApiVersion
 *   0. appId is 20 bytes (TypeScript only; an ABI `address` cannot be otherwise)  InvalidAppId
 *   1. lengths: derivedPubkey ∈ {32, 33}, appPubkey = 33                          InvalidPublicKeyLength
 *               appSignature = 65, kmsSignature = 65                               InvalidSignatureLength
 *   2. appPubkey decoding: prefix ∈ {02, 03}                                      InvalidPublicKeyPrefix
 *                          x < p and x³ + 7 is a square mod p                     PublicKeyNotOnCurve
 *   3. derivedPubkey encoding, only when 33 bytes: prefix ∈ {02, 03}               InvalidPublicKeyPrefix
 *                                                 x < p                           PublicKeyNotOnCurve
 *      Curve membership is not checked here (it costs a modexp on chain): the app key signed the
 *      real key, so an off-curve one fails at 5. Callers that use it as a key decompress it.
 *      (32 bytes is an Ed25519 key, taken as opaque bytes.)
 *   4. appSignature fields: v ∈ {0, 1, 27, 28}                                     InvalidSignatureV
 *                           1 ≤ r ≤ n − 1                                          InvalidSignatureR
 *                           s ≠ 0                                                  InvalidSignatureS
 *                           s ≤ n / 2                                              SignatureMalleable
 *   5. app recovery over keccak256(purpose ":" lowerhex(derivedPubkey)) (guest API v0), or over
 *      keccak256(LP("dstack-guest-v1-key-claim") LP(algorithm) LP(domain) LP(derivedPubkey)) (v1):
 *      no point with x = r, or the result is infinity                            SignatureRecoveryFailed
 *      recovered address ≠ address(appPubkey)                                     AppSignatureMismatch
 *   6. kmsSignature fields: as 4.
 *   7. kms recovery over keccak256("dstack-kms-issued:" || appId || appPubkey):
 *      as the recovery in 5                                                       SignatureRecoveryFailed
 * The recovered KMS signer is returned; whether it is an accepted root is the caller's decision.
 * Guest API v0 and v1 differ only in the message of step 5 (see guestV1.ts); the contract takes the
 * version as `verifyDstackKeyChain` vs `verifyDstackKeyChainV1`, or as the proof's `guestApiVersion`.
 */

import { keccak_256 } from "@noble/hashes/sha3";
import { bytesToHex } from "@noble/hashes/utils";
import type { Address } from "viem";
import { checksumAddress } from "viem";
import type { ClusterErrorName } from "../contracts/errors.ts";
import { AttestmeshError } from "../errors.ts";
import { secp256k1Recover } from "../keys/secp256k1.ts";
import { type GuestApiVersion, keyClaimDigestV1 } from "./guestV1.ts";
import {
  APP_ID_LENGTH,
  derivedKeyDigest,
  ED25519_PUBLIC_KEY_LENGTH,
  kmsIssuedDigest,
  RECOVERABLE_SIGNATURE_LENGTH,
  SECP256K1_COMPRESSED_LENGTH,
} from "./keychain.ts";

/** Field prime of secp256k1. */
export const SECP256K1_P = 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2fn;
/** Group order of secp256k1. */
export const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
/** Largest accepted s (n / 2, rounded down); anything above is the malleable twin. */
export const SECP256K1_HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

/** The key-chain checks the contract also makes, by its custom error names (checked against the ABI). */
export const CONTRACT_KEY_CHAIN_ERRORS = [
  "InvalidPublicKeyLength",
  "InvalidPublicKeyPrefix",
  "PublicKeyNotOnCurve",
  "InvalidSignatureLength",
  "InvalidSignatureV",
  "InvalidSignatureR",
  "InvalidSignatureS",
  "SignatureMalleable",
  "AppSignatureMismatch",
  "SignatureRecoveryFailed",
  "UnsupportedGuestApiVersion",
] as const satisfies readonly ClusterErrorName[];

/** A key-chain failure: one of the contract's, or `InvalidAppId` (TypeScript only). */
export type KeyChainErrorCode = "InvalidAppId" | (typeof CONTRACT_KEY_CHAIN_ERRORS)[number];

export const KEY_CHAIN_ERROR_CODES: readonly KeyChainErrorCode[] = [
  "InvalidAppId",
  ...CONTRACT_KEY_CHAIN_ERRORS,
];

/** Which input a key-chain error is about; carried in `error.details.field`. */
export type KeyChainField =
  | "appId"
  | "derivedPubkey"
  | "appPubkey"
  | "appSignature"
  | "kmsSignature"
  | "guestApiVersion"
  | "publicKey"
  | "signature";

export type KeyChainInput = {
  /** 20-byte app id (an address). */
  readonly appId: Uint8Array;
  /** The purpose given to GetKey (v0), or the domain given to /v1/GetKey (v1); signed as UTF-8. */
  readonly purpose: string;
  /** 33-byte compressed secp256k1 or 32-byte Ed25519 public key of the derived key. */
  readonly derivedPubkey: Uint8Array;
  /** 33-byte compressed secp256k1 public key of the app key. */
  readonly appPubkey: Uint8Array;
  /** signature_chain[0]: r || s || v by the app key. */
  readonly appSignature: Uint8Array;
  /** signature_chain[1]: r || s || v by the KMS root. */
  readonly kmsSignature: Uint8Array;
  /** The guest API the chain comes from; 0 when absent. */
  readonly guestApiVersion?: GuestApiVersion;
};

function fail(code: KeyChainErrorCode, message: string, details: Record<string, unknown>): never {
  throw new AttestmeshError(message, { code, retryable: false, details });
}

function toBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${bytesToHex(bytes)}`);
}

function toBytes32(value: bigint): Uint8Array {
  const out = new Uint8Array(32);
  let rest = value;
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return out;
}

function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  let b = base % modulus;
  let e = exponent;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % modulus;
    b = (b * b) % modulus;
    e >>= 1n;
  }
  return result;
}

function checkLength(
  field: KeyChainField,
  value: Uint8Array,
  allowed: readonly number[],
  code: KeyChainErrorCode,
) {
  if (!(value instanceof Uint8Array) || !allowed.includes(value.length)) {
    const length = value instanceof Uint8Array ? value.length : null;
    fail(
      code,
      `${field} must be ${allowed.join(" or ")} bytes, got ${length ?? typeof value}; resend the raw bytes.`,
      {
        field,
        length,
      },
    );
  }
}

/** Prefix and range of a compressed key (not its curve membership); returns prefix and x. */
function checkCompressedEncoding(field: KeyChainField, pubkey: Uint8Array): { prefix: number; x: bigint } {
  checkLength(field, pubkey, [SECP256K1_COMPRESSED_LENGTH], "InvalidPublicKeyLength");
  const prefix = pubkey[0]!;
  if (prefix !== 0x02 && prefix !== 0x03) {
    fail(
      "InvalidPublicKeyPrefix",
      `${field} must start with 0x02 or 0x03 (compressed SEC1), got 0x${prefix.toString(16).padStart(2, "0")}.`,
      {
        field,
        prefix,
      },
    );
  }
  const x = toBigInt(pubkey.subarray(1));
  if (x >= SECP256K1_P) {
    fail("PublicKeyNotOnCurve", `${field} x coordinate is not below the field prime; the key is corrupt.`, {
      field,
      x: `0x${x.toString(16)}`,
    });
  }
  return { prefix, x };
}

function decompressField(field: KeyChainField, pubkey: Uint8Array): Uint8Array {
  const { prefix, x } = checkCompressedEncoding(field, pubkey);
  const ySquared = (((x * x) % SECP256K1_P) * x + 7n) % SECP256K1_P;
  // p ≡ 3 (mod 4), so a square root, when one exists, is a^((p+1)/4).
  let y = modPow(ySquared, (SECP256K1_P + 1n) / 4n, SECP256K1_P);
  if ((y * y) % SECP256K1_P !== ySquared) {
    fail("PublicKeyNotOnCurve", `${field} x coordinate has no point on secp256k1; the key is corrupt.`, {
      field,
      x: `0x${x.toString(16)}`,
    });
  }
  // y = 0 cannot occur: secp256k1 has prime order, so no point of order 2.
  if ((y & 1n) !== BigInt(prefix & 1)) y = SECP256K1_P - y;
  const out = new Uint8Array(65);
  out[0] = 0x04;
  out.set(pubkey.subarray(1), 1);
  out.set(toBytes32(y), 33);
  return out;
}

/** 65-byte uncompressed SEC1 point (0x04 || x || y) of a 33-byte compressed secp256k1 key. */
export function decompress(pubkey33: Uint8Array): Uint8Array {
  return decompressField("publicKey", pubkey33);
}

function uncompressedToAddress(uncompressed65: Uint8Array): Address {
  return checksumAddress(`0x${bytesToHex(keccak_256(uncompressed65.subarray(1)).subarray(12))}`);
}

/** Checksummed Ethereum address (last 20 bytes of keccak256(x || y)) of a compressed secp256k1 key. */
export function compressedToAddress(pubkey33: Uint8Array): Address {
  return uncompressedToAddress(decompress(pubkey33));
}

/** A signature whose fields passed the checks of step 4: r || s (64 bytes) and its recovery id. */
type SignatureFields = { readonly rs: Uint8Array; readonly recovery: 0 | 1 };

function checkSignatureFields(field: KeyChainField, signature: Uint8Array): SignatureFields {
  checkLength(field, signature, [RECOVERABLE_SIGNATURE_LENGTH], "InvalidSignatureLength");
  const v = signature[64]!;
  let recovery: 0 | 1;
  if (v === 0 || v === 27) recovery = 0;
  else if (v === 1 || v === 28) recovery = 1;
  else fail("InvalidSignatureV", `${field} v must be 0, 1, 27 or 28, got ${v}.`, { field, v });
  const r = toBigInt(signature.subarray(0, 32));
  if (r === 0n || r >= SECP256K1_N) {
    fail("InvalidSignatureR", `${field} r must be in [1, n-1]; the signature is corrupt.`, {
      field,
      r: `0x${r.toString(16)}`,
    });
  }
  const s = toBigInt(signature.subarray(32, 64));
  if (s === 0n)
    fail("InvalidSignatureS", `${field} s must not be zero; the signature is corrupt.`, { field, s: "0x0" });
  if (s > SECP256K1_HALF_N) {
    fail("SignatureMalleable", `${field} s is above n/2; re-sign with low s (or use n - s and flip v).`, {
      field,
      s: `0x${s.toString(16)}`,
    });
  }
  return { rs: signature.subarray(0, 64), recovery };
}

function recoverAddress(field: KeyChainField, digest: Uint8Array, signature: SignatureFields): Address {
  const uncompressed = secp256k1Recover(digest, signature.rs, signature.recovery);
  if (uncompressed === null) {
    fail(
      "SignatureRecoveryFailed",
      `${field} recovers no public key (r is not a curve x, or the result is infinity).`,
      {
        field,
      },
    );
  }
  return uncompressedToAddress(uncompressed);
}

/**
 * Checksummed address that signed `digest` (32 bytes) with a 65-byte r || s || v
 * signature, applying the same field checks as the key-chain verifier.
 */
export function recoverSignerAddress(digest: Uint8Array, signature: Uint8Array): Address {
  return recoverAddress("signature", digest, checkSignatureFields("signature", signature));
}

/**
 * Verifies a dstack key chain and returns the checksummed address of the KMS
 * signer. Throws `AttestmeshError` with a `KeyChainErrorCode` (see the order
 * at the top of this file). Does not check the signer against any allowlist.
 */
export function verifyDstackKeyChain(input: KeyChainInput): Address {
  const { appId, purpose, derivedPubkey, appPubkey, appSignature, kmsSignature } = input;
  const guestApiVersion = input.guestApiVersion ?? 0;
  if (guestApiVersion !== 0 && guestApiVersion !== 1) {
    fail(
      "UnsupportedGuestApiVersion",
      `guestApiVersion must be 0 or 1 (the dstack guest API), got ${String(guestApiVersion)}.`,
      { field: "guestApiVersion", version: guestApiVersion },
    );
  }
  checkLength("appId", appId, [APP_ID_LENGTH], "InvalidAppId");

  checkLength(
    "derivedPubkey",
    derivedPubkey,
    [ED25519_PUBLIC_KEY_LENGTH, SECP256K1_COMPRESSED_LENGTH],
    "InvalidPublicKeyLength",
  );
  checkLength("appPubkey", appPubkey, [SECP256K1_COMPRESSED_LENGTH], "InvalidPublicKeyLength");
  checkLength("appSignature", appSignature, [RECOVERABLE_SIGNATURE_LENGTH], "InvalidSignatureLength");
  checkLength("kmsSignature", kmsSignature, [RECOVERABLE_SIGNATURE_LENGTH], "InvalidSignatureLength");

  const appAddress = uncompressedToAddress(decompressField("appPubkey", appPubkey));
  if (derivedPubkey.length === SECP256K1_COMPRESSED_LENGTH)
    checkCompressedEncoding("derivedPubkey", derivedPubkey);

  const appFields = checkSignatureFields("appSignature", appSignature);
  const appDigest =
    guestApiVersion === 0
      ? derivedKeyDigest(purpose, derivedPubkey)
      : keyClaimDigestV1(purpose, derivedPubkey);
  const appSigner = recoverAddress("appSignature", appDigest, appFields);
  if (appSigner !== appAddress) {
    fail(
      "AppSignatureMismatch",
      "appSignature was not made by appPubkey over this purpose and derived key; the chain is forged or mixed up.",
      { field: "appSignature", recovered: appSigner, expected: appAddress },
    );
  }

  const kmsFields = checkSignatureFields("kmsSignature", kmsSignature);
  return recoverAddress("kmsSignature", kmsIssuedDigest(appId, appPubkey), kmsFields);
}
