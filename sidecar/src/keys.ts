// The node's keys, derived inside the TEE through dstack GetKey: the secp256k1 member key with the
// proof the cluster contract verifies, the Ed25519 identity key and the WireGuard key. Every chain is
// checked here exactly as the contract will check it before anything is sent. Secrets stay in memory,
// in `Secret` boxes.

import { derivedKeyDigest, derivedPublicKey, type KeyAlgorithm } from "@attestmesh/shared/dstack/keychain.ts";
import {
  compressedToAddress,
  SECP256K1_HALF_N,
  SECP256K1_N,
  verifyDstackKeyChain,
} from "@attestmesh/shared/dstack/verify.ts";
import { IDENTITY_KEY, type KeySpec, MEMBER_KEY, WIREGUARD_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { secp256k1 } from "@noble/curves/secp256k1";
import { DstackClient } from "@phala/dstack-sdk";
import { type Address, bytesToHex, getAddress, type Hex, hexToBytes } from "viem";
import { AttestmeshError, fatalError, retryableError } from "./errors.ts";
import { type Secret, secret } from "./secret.ts";
import { wireguardKeyPair } from "./wireguard/keys.ts";

/** What dstack GetKey returns: the derived secret and [app signature, KMS signature]. */
export interface DerivedKey {
  readonly key: Uint8Array;
  readonly signatureChain: readonly Uint8Array[];
}

/** The part of the dstack guest agent the sidecar uses. */
export interface KeySource {
  /** The CVM's dstack app id. */
  appId(): Promise<Address>;
  getKey(path: string, purpose: string, algorithm: KeyAlgorithm): Promise<DerivedKey>;
}

/** The registration proof in the contract's `DstackProof` shape (hex bytes). */
export interface DstackProof {
  readonly appId: Address;
  readonly memberPubkey: Hex;
  readonly appPubkey: Hex;
  readonly appSignature: Hex;
  readonly kmsSignature: Hex;
  /** dstack guest API the chain comes from (0: `GetKey`; 1: `/v1/GetKey`). */
  readonly guestApiVersion: 0 | 1;
}

/** A derived key's public half and the checked chain behind it. */
export interface ProvenKey {
  /** 33-byte compressed secp256k1 or 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** The app key, recovered from the app signature (dstack does not return it). */
  readonly appPubkey: Uint8Array;
  /** Signatures with v in {0, 1} and low s. */
  readonly appSignature: Uint8Array;
  readonly kmsSignature: Uint8Array;
  /** The KMS root the chain leads to; whether the cluster accepts it is the contract's call. */
  readonly kmsSigner: Address;
}

export interface NodeKeys {
  readonly appId: Address;
  readonly appPubkey: Hex;
  readonly kmsSigner: Address;
  readonly member: {
    readonly secret: Secret<Hex>;
    readonly publicKey: Hex;
    readonly address: Address;
    readonly proof: DstackProof;
  };
  readonly identity: {
    readonly secret: Secret<Uint8Array>;
    /** 32-byte Ed25519 public key, as the contract stores it. */
    readonly publicKey: Hex;
  };
  readonly wireguard: {
    /** Raw 32-byte private key, for `WireGuardBackend.up`. */
    readonly privateKey: Secret<Uint8Array>;
    /** 32-byte Curve25519 public key, as the contract stores it. */
    readonly publicKey: Hex;
    readonly publicKeyBase64: string;
  };
}

/** A `KeySource` over the official dstack SDK; `endpoint` undefined lets the SDK find the socket. */
export function createDstackKeySource(endpoint: string | undefined): KeySource {
  // The client checks the socket exists when constructed, so build it per call: a guest agent that
  // comes up late is then picked up by the next retry.
  const client = () => new DstackClient(endpoint);
  const unavailable = (what: string, cause: unknown) =>
    retryableError(
      "DstackUnavailable",
      `dstack ${what} failed (${endpoint ?? "default socket"}); check the guest agent socket is mounted, or set DSTACK_SIMULATOR_ENDPOINT.`,
      { cause, details: { endpoint: endpoint ?? null } },
    );
  return {
    async appId() {
      let info: { app_id: string };
      try {
        info = await client().info();
      } catch (cause) {
        throw unavailable("Info", cause);
      }
      return parseAppId(info.app_id);
    },
    async getKey(path, purpose, algorithm) {
      try {
        const result = await client().getKey(path, purpose, algorithm);
        return { key: result.key, signatureChain: result.signature_chain };
      } catch (cause) {
        throw unavailable("GetKey", cause);
      }
    },
  };
}

/** The app id as dstack's Info reports it (hex, with or without 0x) as a checksummed address. */
export function parseAppId(text: string): Address {
  const hex = text.startsWith("0x") || text.startsWith("0X") ? text.slice(2) : text;
  if (!/^[0-9a-fA-F]{40}$/.test(hex)) {
    throw fatalError(
      "InvalidAppId",
      `dstack reported app id ${JSON.stringify(text)}, which is not 20 bytes of hex.`,
      {
        details: { appId: text },
      },
    );
  }
  return getAddress(`0x${hex.toLowerCase()}`);
}

/**
 * A signature in the one encoding the contract and the off-chain verifier agree on: v in {0, 1}
 * (27/28 accepted and mapped down) and low s (a high s is replaced by n - s, with v flipped, which
 * recovers the same key).
 */
export function normaliseSignature(signature: Uint8Array, field: string): Uint8Array {
  if (signature.length !== 65) {
    throw fatalError(
      "InvalidSignatureLength",
      `${field} is ${signature.length} bytes, not 65; dstack sent a malformed chain.`,
      {
        details: { field, length: signature.length },
      },
    );
  }
  const out = signature.slice();
  const v = out[64]!;
  let recovery: number;
  if (v === 0 || v === 27) recovery = 0;
  else if (v === 1 || v === 28) recovery = 1;
  else {
    throw fatalError("InvalidSignatureV", `${field} has v = ${v}; expected 0, 1, 27 or 28.`, {
      details: { field, v },
    });
  }
  const s = BigInt(bytesToHex(out.subarray(32, 64)));
  if (s > SECP256K1_HALF_N) {
    out.set(hexToBytes(`0x${(SECP256K1_N - s).toString(16).padStart(64, "0")}`), 32);
    recovery ^= 1;
  }
  out[64] = recovery;
  return out;
}

/** The 33-byte compressed app key that made `appSignature` (normalised) over `purpose` and `derivedPubkey`. */
export function recoverAppPublicKey(
  purpose: string,
  derivedPubkey: Uint8Array,
  appSignature: Uint8Array,
): Uint8Array {
  const digest = derivedKeyDigest(purpose, derivedPubkey);
  try {
    const r = BigInt(bytesToHex(appSignature.subarray(0, 32)));
    const s = BigInt(bytesToHex(appSignature.subarray(32, 64)));
    return new secp256k1.Signature(r, s, appSignature[64]!).recoverPublicKey(digest).toBytes(true);
  } catch (cause) {
    throw fatalError(
      "SignatureRecoveryFailed",
      "the app signature recovers no public key; dstack sent a corrupt chain.",
      {
        cause,
      },
    );
  }
}

/**
 * Checks one GetKey answer the way the contract will: the derived public key, the app key recovered
 * from the app signature, and the full chain up to its KMS signer (`verifyDstackKeyChain`).
 */
export function proveKey(appId: Address, spec: KeySpec, derived: DerivedKey): ProvenKey {
  if (!(derived.key instanceof Uint8Array) || derived.key.length !== 32) {
    throw fatalError("InvalidDerivedKey", `dstack returned a ${spec.path} key that is not 32 bytes.`, {
      details: { path: spec.path, length: derived.key?.length ?? null },
    });
  }
  const [rawApp, rawKms] = derived.signatureChain;
  if (rawApp === undefined || rawKms === undefined) {
    throw fatalError(
      "InvalidSignatureChain",
      `dstack returned ${derived.signatureChain.length} signatures for ${spec.path}; expected [app, kms]. Is the guest agent a KMS-backed dstack?`,
      { details: { path: spec.path, length: derived.signatureChain.length } },
    );
  }
  const publicKey = derivedPublicKey(derived.key, spec.algorithm);
  const appSignature = normaliseSignature(rawApp, "appSignature");
  const kmsSignature = normaliseSignature(rawKms, "kmsSignature");
  const appPubkey = recoverAppPublicKey(spec.purpose, publicKey, appSignature);
  let kmsSigner: Address;
  try {
    kmsSigner = verifyDstackKeyChain({
      appId: hexToBytes(appId),
      purpose: spec.purpose,
      derivedPubkey: publicKey,
      appPubkey,
      appSignature,
      kmsSignature,
    });
  } catch (cause) {
    if (!(cause instanceof AttestmeshError)) throw cause;
    throw fatalError(cause.code, `the dstack key chain for ${spec.path} does not verify: ${cause.message}`, {
      cause,
      details: { path: spec.path, ...cause.details },
    });
  }
  return { publicKey, appPubkey, appSignature, kmsSignature, kmsSigner };
}

/**
 * Derives and checks the member, identity and WireGuard keys. All three chains must lead to the same
 * app key and KMS signer; the member chain becomes the registration proof.
 */
export async function deriveNodeKeys(source: KeySource): Promise<NodeKeys> {
  const appId = await source.appId();
  const derive = async (spec: KeySpec) => {
    const derived = await source.getKey(spec.path, spec.purpose, spec.algorithm);
    return { derived, proven: proveKey(appId, spec, derived) };
  };
  const member = await derive(MEMBER_KEY);
  const identity = await derive(IDENTITY_KEY);
  const wireguard = await derive(WIREGUARD_KEY);

  const appPubkey = bytesToHex(member.proven.appPubkey);
  for (const [spec, other] of [
    [IDENTITY_KEY, identity],
    [WIREGUARD_KEY, wireguard],
  ] as const) {
    if (
      bytesToHex(other.proven.appPubkey) !== appPubkey ||
      other.proven.kmsSigner !== member.proven.kmsSigner
    ) {
      throw fatalError(
        "InconsistentKeyChains",
        `the ${spec.path} chain leads to another app key or KMS root than the member key's; the guest agent is inconsistent.`,
        { details: { path: spec.path } },
      );
    }
  }

  const memberPubkey = bytesToHex(member.proven.publicKey);
  const wg = wireguardKeyPair(wireguard.derived.key);
  return {
    appId,
    appPubkey,
    kmsSigner: member.proven.kmsSigner,
    member: {
      secret: secret(bytesToHex(member.derived.key)),
      publicKey: memberPubkey,
      address: compressedToAddress(member.proven.publicKey),
      proof: {
        appId,
        memberPubkey,
        appPubkey,
        appSignature: bytesToHex(member.proven.appSignature),
        kmsSignature: bytesToHex(member.proven.kmsSignature),
        guestApiVersion: 0,
      },
    },
    identity: {
      secret: secret(identity.derived.key),
      publicKey: bytesToHex(identity.proven.publicKey),
    },
    wireguard: {
      privateKey: secret(wg.privateKey),
      publicKey: bytesToHex(wg.publicKey),
      publicKeyBase64: wg.publicKeyBase64,
    },
  };
}
