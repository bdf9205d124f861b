/**
 * Deterministic valid and corrupted dstack key-chain inputs, shared by the
 * TypeScript verifier tests and the Solidity cross-check. Given the same seed
 * every function returns the same bytes, so a failing case can be replayed.
 */
import { secp256k1 } from "@noble/curves/secp256k1";
import { keccak_256 } from "@noble/hashes/sha3";
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from "@noble/hashes/utils";
import type { Address } from "viem";
import { privateKeyToAddress } from "viem/accounts";
import { appSignKeyClaimV1, deriveKeyV1, type GuestApiVersion } from "../../src/dstack/guestV1.ts";
import {
  appSignDerivedKey,
  deriveAppKey,
  derivedKeyDigest,
  derivedPublicKey,
  deriveKey,
  type KeyAlgorithm,
  kmsSignAppKey,
  secp256k1PublicKey,
  signRecoverable,
} from "../../src/dstack/keychain.ts";
import {
  type KeyChainErrorCode,
  type KeyChainInput,
  SECP256K1_HALF_N,
  SECP256K1_N,
  SECP256K1_P,
} from "../../src/dstack/verify.ts";

export type CorruptedChainInput = {
  readonly name: string;
  readonly input: KeyChainInput;
  readonly expectedCode: KeyChainErrorCode;
};

export type EquivalentChainInput = { readonly name: string; readonly input: KeyChainInput };

export type ValidChainInput = {
  readonly input: KeyChainInput;
  readonly kmsRootSecret: Uint8Array;
  /** Computed from the secret with viem, independently of the verifier. */
  readonly kmsRootAddress: Address;
  readonly algorithm: KeyAlgorithm;
  readonly path: string;
};

const MAX_UINT256 = (1n << 256n) - 1n;

/** The next `length` bytes of a deterministic stream. */
type Rng = (length: number) => Uint8Array;

/** A byte stream from keccak256(label || counter): same label, same bytes. */
function createRng(label: string): Rng {
  let counter = 0;
  let pool: Uint8Array = new Uint8Array(0);
  return (length) => {
    while (pool.length < length) {
      pool = concatBytes(pool, keccak_256(utf8ToBytes(`attestmesh-test-rng:${label}:${counter++}`)));
    }
    const out = pool.slice(0, length);
    pool = pool.slice(length);
    return out;
  };
}

function toBigInt(bytes: Uint8Array): bigint {
  return BigInt(`0x${bytesToHex(bytes)}`);
}

function word(value: bigint): Uint8Array {
  return hexToBytes(value.toString(16).padStart(64, "0"));
}

function withByte(bytes: Uint8Array, index: number, value: number): Uint8Array {
  const out = bytes.slice();
  out[index] = value;
  return out;
}

function withWord(bytes: Uint8Array, offset: number, value: bigint): Uint8Array {
  const out = bytes.slice();
  out.set(word(value), offset);
  return out;
}

/** The malleable twin of a signature: s replaced by n - s and the recovery bit flipped; recovers the same key. */
export function malleableTwin(signature: Uint8Array): Uint8Array {
  return withByte(
    withWord(signature, 32, SECP256K1_N - toBigInt(signature.subarray(32, 64))),
    64,
    signature[64]! ^ 1,
  );
}

function isCurveX(x: Uint8Array): boolean {
  try {
    secp256k1.Point.fromBytes(concatBytes(Uint8Array.of(0x02), x));
    return true;
  } catch {
    return false;
  }
}

/** A 32-byte x below n (so it is also a valid r) with no point on secp256k1, checked with noble. */
function offCurveX(rng: Rng): Uint8Array {
  for (;;) {
    const x = rng(32);
    if (toBigInt(x) < SECP256K1_N && !isCurveX(x)) return x;
  }
}

function secretFrom(rng: Rng): Uint8Array {
  for (;;) {
    const secret = rng(32);
    if (secp256k1.utils.isValidSecretKey(secret)) return secret;
  }
}

/**
 * A valid chain from a seeded KMS root, app id, path and purpose. With guest API v1 the key comes from
 * the v1 KDF with the purpose as domain, and link 0 signs the v1 key claim.
 */
export function randomValidChainInput(
  seed: number,
  algorithm: KeyAlgorithm = "secp256k1",
  guestApiVersion: GuestApiVersion = 0,
): ValidChainInput {
  const rng = createRng(
    guestApiVersion === 0 ? `valid:${seed}:${algorithm}` : `valid-v1:${seed}:${algorithm}`,
  );
  const kmsRootSecret = secretFrom(rng);
  const appId = rng(20);
  const path = `/attestmesh/${bytesToHex(rng(4))}`;
  const purpose = `wireguard-${bytesToHex(rng(2))}`;
  const appKey = deriveAppKey(kmsRootSecret, appId);
  const appPubkey = secp256k1PublicKey(appKey);
  const secret = guestApiVersion === 0 ? deriveKey(appKey, path) : deriveKeyV1(appKey, algorithm, purpose);
  const derivedPubkey = derivedPublicKey(secret, algorithm);
  const appSignature =
    guestApiVersion === 0
      ? appSignDerivedKey(appKey, purpose, derivedPubkey)
      : appSignKeyClaimV1(appKey, purpose, derivedPubkey);
  return {
    input: {
      appId,
      purpose,
      derivedPubkey,
      appPubkey,
      appSignature,
      kmsSignature: kmsSignAppKey(kmsRootSecret, appId, appPubkey),
      ...(guestApiVersion === 0 ? {} : { guestApiVersion }),
    },
    kmsRootSecret,
    kmsRootAddress: privateKeyToAddress(`0x${bytesToHex(kmsRootSecret)}`),
    algorithm,
    path,
  };
}

/** Re-encodings that must verify to the same signer: v as 27/28 instead of 0/1. */
export function equivalentChainInputs(valid: KeyChainInput): EquivalentChainInput[] {
  const shift = (signature: Uint8Array) => withByte(signature, 64, signature[64]! + 27);
  return [
    { name: "appSignature v + 27", input: { ...valid, appSignature: shift(valid.appSignature) } },
    { name: "kmsSignature v + 27", input: { ...valid, kmsSignature: shift(valid.kmsSignature) } },
    {
      name: "both signatures v + 27",
      input: { ...valid, appSignature: shift(valid.appSignature), kmsSignature: shift(valid.kmsSignature) },
    },
  ];
}

type PubkeyField = "appPubkey" | "derivedPubkey";
type SignatureField = "appSignature" | "kmsSignature";

/** Names a corrupted copy of `valid` whose `field` is `value`, with the error it must raise. */
function variantOf(valid: KeyChainInput, field: PubkeyField | SignatureField) {
  return (name: string, value: Uint8Array, expectedCode: KeyChainErrorCode): CorruptedChainInput => ({
    name: `${field}: ${name}`,
    input: { ...valid, [field]: value },
    expectedCode,
  });
}

function pubkeyVariants(valid: KeyChainInput, field: PubkeyField, rng: Rng): CorruptedChainInput[] {
  const key = valid[field];
  const at = variantOf(valid, field);
  const badPrefixes = [0x00, 0x01, 0x04, 0x05, 0x06, 0x07, 0xff];
  const seededPrefix = badPrefixes[rng(1)[0]! % badPrefixes.length]!;
  // x ≥ p whose reduction mod p IS a curve x: only an explicit x < p check refuses it.
  const aliasOf = (start: bigint) => {
    let x0 = start;
    while (!isCurveX(word(x0))) x0 = (x0 + 1n) % (MAX_UINT256 - SECP256K1_P);
    return SECP256K1_P + x0;
  };
  // Flipping the prefix keeps a valid point (the negation) with another address and another hex.
  return [
    ...[0x00, 0x04, 0x05].map((prefix) =>
      at(
        `prefix 0x${prefix.toString(16).padStart(2, "0")}`,
        withByte(key, 0, prefix),
        "InvalidPublicKeyPrefix",
      ),
    ),
    at(
      `seeded bad prefix 0x${seededPrefix.toString(16)}`,
      withByte(key, 0, seededPrefix),
      "InvalidPublicKeyPrefix",
    ),
    at("x = p", withWord(key, 1, SECP256K1_P), "PublicKeyNotOnCurve"),
    at("x = 2^256 - 1", withWord(key, 1, MAX_UINT256), "PublicKeyNotOnCurve"),
    at("x = p + smallest curve x", withWord(key, 1, aliasOf(0n)), "PublicKeyNotOnCurve"),
    at("seeded x = p + curve x", withWord(key, 1, aliasOf(toBigInt(rng(4)))), "PublicKeyNotOnCurve"),
    // The app key must be a curve point (it is decompressed to its address). A derived key is only
    // checked for encoding: the app key signed the real key, so an altered one fails that signature.
    at(
      "seeded off-curve x",
      concatBytes(key.subarray(0, 1), offCurveX(rng)),
      field === "appPubkey" ? "PublicKeyNotOnCurve" : "AppSignatureMismatch",
    ),
    at("prefix parity flipped", withByte(key, 0, key[0]! ^ 1), "AppSignatureMismatch"),
  ];
}

function signatureVariants(valid: KeyChainInput, field: SignatureField, rng: Rng): CorruptedChainInput[] {
  const signature = valid[field];
  const at = variantOf(valid, field);
  const badVs = [
    ...Array.from({ length: 25 }, (_, i) => i + 2),
    ...Array.from({ length: 227 }, (_, i) => i + 29),
  ];
  const seededV = badVs[rng(1)[0]! % badVs.length]!;
  const v = signature[64]!;
  const s = toBigInt(signature.subarray(32, 64));
  const highS = SECP256K1_HALF_N + 1n + (toBigInt(rng(16)) % (SECP256K1_N - SECP256K1_HALF_N - 1n));
  return [
    at("length 64", signature.slice(0, 64), "InvalidSignatureLength"),
    at("length 66", concatBytes(signature, rng(1)), "InvalidSignatureLength"),
    at("length 0", new Uint8Array(0), "InvalidSignatureLength"),
    at("v = 2", withByte(signature, 64, 2), "InvalidSignatureV"),
    at("v = 26", withByte(signature, 64, 26), "InvalidSignatureV"),
    at("v = 29", withByte(signature, 64, 29), "InvalidSignatureV"),
    at(`seeded v = ${seededV}`, withByte(signature, 64, seededV), "InvalidSignatureV"),
    at("r = 0", withWord(signature, 0, 0n), "InvalidSignatureR"),
    at("r = n", withWord(signature, 0, SECP256K1_N), "InvalidSignatureR"),
    at("r = 2^256 - 1", withWord(signature, 0, MAX_UINT256), "InvalidSignatureR"),
    at("s = 0", withWord(signature, 32, 0n), "InvalidSignatureS"),
    at(
      "s = n - s, v flipped",
      withByte(withWord(signature, 32, SECP256K1_N - s), 64, v ^ 1),
      "SignatureMalleable",
    ),
    at("s = n/2 + 1", withWord(signature, 32, SECP256K1_HALF_N + 1n), "SignatureMalleable"),
    at("seeded s in (n/2, n)", withWord(signature, 32, highS), "SignatureMalleable"),
    at("s = n", withWord(signature, 32, SECP256K1_N), "SignatureMalleable"),
    at("s = 2^256 - 1", withWord(signature, 32, MAX_UINT256), "SignatureMalleable"),
    at("seeded off-curve r", withWord(signature, 0, toBigInt(offCurveX(rng))), "SignatureRecoveryFailed"),
  ];
}

/**
 * Corrupted variants of a valid chain, each with the error code the verifier
 * (TypeScript and Solidity alike) must report. Covers every field, every
 * error code, the boundaries of each range, and inputs with two faults that
 * pin the order of the checks. Deterministic in (valid, seed).
 */
export function corruptChainInput(valid: KeyChainInput, seed: number): CorruptedChainInput[] {
  const rng = createRng(`corrupt:${seed}`);
  const derivedIsSecp = valid.derivedPubkey.length === 33;
  const variants: CorruptedChainInput[] = [];
  const add = (name: string, patch: Partial<KeyChainInput>, expectedCode: KeyChainErrorCode) =>
    variants.push({ name, input: { ...valid, ...patch }, expectedCode });

  add("appId: 19 bytes", { appId: valid.appId.slice(0, 19) }, "InvalidAppId");
  add("appId: 21 bytes", { appId: concatBytes(valid.appId, rng(1)) }, "InvalidAppId");

  // Lengths.
  for (const length of [0, 31, 34, 64, 65]) {
    const derivedPubkey = concatBytes(valid.derivedPubkey, rng(65)).slice(0, length);
    add(`derivedPubkey: length ${length}`, { derivedPubkey }, "InvalidPublicKeyLength");
  }
  for (const length of [0, 32, 34, 65]) {
    const appPubkey = concatBytes(valid.appPubkey, rng(65)).slice(0, length);
    add(`appPubkey: length ${length}`, { appPubkey }, "InvalidPublicKeyLength");
  }
  add(
    "appPubkey: uncompressed 65-byte form",
    { appPubkey: secp256k1.Point.fromBytes(valid.appPubkey).toBytes(false) },
    "InvalidPublicKeyLength",
  );

  // Decoding, signature fields, recovery.
  variants.push(...pubkeyVariants(valid, "appPubkey", rng));
  if (derivedIsSecp) {
    variants.push(...pubkeyVariants(valid, "derivedPubkey", rng));
    // 32 bytes is a legal (Ed25519) length, so the truncated key is only caught by the app signature.
    add(
      "derivedPubkey: truncated to 32 bytes",
      { derivedPubkey: valid.derivedPubkey.slice(0, 32) },
      "AppSignatureMismatch",
    );
  } else {
    add(
      "derivedPubkey: one byte of the Ed25519 key flipped",
      { derivedPubkey: withByte(valid.derivedPubkey, 7, valid.derivedPubkey[7]! ^ 0x01) },
      "AppSignatureMismatch",
    );
    add(
      "derivedPubkey: Ed25519 key behind a 0x05 byte",
      { derivedPubkey: concatBytes(Uint8Array.of(0x05), valid.derivedPubkey) },
      "InvalidPublicKeyPrefix",
    );
  }
  variants.push(...signatureVariants(valid, "appSignature", rng));
  variants.push(...signatureVariants(valid, "kmsSignature", rng));

  const appSignature = valid.appSignature;
  add(
    "appSignature: v flipped",
    { appSignature: withByte(appSignature, 64, appSignature[64]! ^ 1) },
    "AppSignatureMismatch",
  );
  add(
    "appSignature: s = n/2 (largest low s)",
    { appSignature: withWord(appSignature, 32, SECP256K1_HALF_N) },
    "AppSignatureMismatch",
  );
  add(
    "appSignature: made by another key",
    { appSignature: signRecoverable(secretFrom(rng), derivedKeyDigest(valid.purpose, valid.derivedPubkey)) },
    "AppSignatureMismatch",
  );
  add("purpose: changed", { purpose: `${valid.purpose}x` }, "AppSignatureMismatch");
  // The other guest API's message over the same purpose and key: never the same bytes.
  add(
    "guestApiVersion: the chain read as the other guest API",
    { guestApiVersion: (valid.guestApiVersion ?? 0) === 0 ? 1 : 0 },
    "AppSignatureMismatch",
  );
  add(
    "guestApiVersion: 2 (unknown)",
    { guestApiVersion: 2 as unknown as 0 | 1, appSignature: withByte(valid.appSignature, 64, 9) },
    "UnsupportedGuestApiVersion",
  );
  add("purpose: empty", { purpose: "" }, "AppSignatureMismatch");

  // Two faults at once: the earlier check in the documented order wins.
  const offX = offCurveX(rng);
  add(
    "order: kmsSignature length before appPubkey prefix",
    { kmsSignature: valid.kmsSignature.slice(0, 64), appPubkey: withByte(valid.appPubkey, 0, 0x04) },
    "InvalidSignatureLength",
  );
  add(
    "order: appSignature length before derivedPubkey length",
    { appSignature: valid.appSignature.slice(0, 64), derivedPubkey: new Uint8Array(31) },
    "InvalidPublicKeyLength",
  );
  add(
    "order: appPubkey curve before derivedPubkey prefix",
    {
      appPubkey: concatBytes(valid.appPubkey.subarray(0, 1), offX),
      derivedPubkey: derivedIsSecp ? withByte(valid.derivedPubkey, 0, 0x04) : valid.derivedPubkey,
    },
    "PublicKeyNotOnCurve",
  );
  add(
    "order: appPubkey prefix before appSignature v",
    { appPubkey: withByte(valid.appPubkey, 0, 0x01), appSignature: withByte(appSignature, 64, 2) },
    "InvalidPublicKeyPrefix",
  );
  if (derivedIsSecp) {
    add(
      "order: derivedPubkey range before appSignature v",
      {
        derivedPubkey: withWord(valid.derivedPubkey, 1, SECP256K1_P),
        appSignature: withByte(appSignature, 64, 2),
      },
      "PublicKeyNotOnCurve",
    );
  }
  add(
    "order: appSignature v before r",
    { appSignature: withByte(withWord(appSignature, 0, 0n), 64, 2) },
    "InvalidSignatureV",
  );
  add(
    "order: appSignature r before s",
    { appSignature: withWord(withWord(appSignature, 0, 0n), 32, 0n) },
    "InvalidSignatureR",
  );
  add(
    "order: appSignature s = 0 before recovery",
    { appSignature: withWord(withWord(appSignature, 0, toBigInt(offX)), 32, 0n) },
    "InvalidSignatureS",
  );
  add(
    "order: appSignature high s before kmsSignature v",
    {
      appSignature: withWord(appSignature, 32, SECP256K1_HALF_N + 1n),
      kmsSignature: withByte(valid.kmsSignature, 64, 2),
    },
    "SignatureMalleable",
  );
  add(
    "order: appSignature mismatch before kmsSignature r",
    { purpose: `${valid.purpose}x`, kmsSignature: withWord(valid.kmsSignature, 0, 0n) },
    "AppSignatureMismatch",
  );
  add(
    "order: appSignature recovery before kmsSignature fields",
    {
      appSignature: withWord(appSignature, 0, toBigInt(offX)),
      kmsSignature: withWord(valid.kmsSignature, 32, SECP256K1_HALF_N + 1n),
    },
    "SignatureRecoveryFailed",
  );
  add(
    "order: kmsSignature v before r and s",
    { kmsSignature: withByte(withWord(withWord(valid.kmsSignature, 0, 0n), 32, 0n), 64, 29) },
    "InvalidSignatureV",
  );
  return variants;
}
