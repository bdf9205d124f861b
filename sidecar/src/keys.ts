// The node's keys, derived inside the TEE through dstack GetKey: the secp256k1 member key with the
// proof the cluster contract verifies, the Ed25519 identity key and the WireGuard key. Every chain is
// checked (by the service kit's `proveKey`) exactly as the contract will check it before anything is
// sent. Secrets stay in memory, in `Secret` boxes.
import { compressedToAddress } from "@attestmesh/shared/dstack/verify.ts";
import { IDENTITY_KEY, type KeySpec, MEMBER_KEY, WIREGUARD_KEY } from "@attestmesh/shared/keys/purposes.ts";
import {
  createDstackAgent,
  createDstackV0Agent,
  type KeySource,
  proveKey,
  requireEd25519Chain,
} from "@attestmesh/shared/service/dstack.ts";
import { type PinnedSettings, readPinnedSettings } from "@attestmesh/shared/service/pinned.ts";
import { type Address, bytesToHex, type Hex } from "viem";
import { fatalError } from "./errors.ts";
import { type Secret, secret } from "./secret.ts";
import { wireguardKeyPair } from "./wireguard/keys.ts";

export {
  type DerivedKey,
  type KeySource,
  normaliseSignature,
  type ProvenKey,
  parseAppId,
  proveKey,
  recoverAppPublicKey,
} from "@attestmesh/shared/service/dstack.ts";

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

/**
 * A `KeySource` on the guest API the attested compose pins (v0: the official dstack SDK; v1: the kit's
 * v1 client); `endpoint` undefined means the CVM's socket.
 */
export function createDstackKeySource(endpoint: string | undefined): KeySource {
  return createDstackAgent(endpoint);
}

/** The values pinned in the attested compose, from the compose document the guest agent returns. */
export async function readPinnedFromGuestAgent(endpoint: string | undefined): Promise<PinnedSettings> {
  return readPinnedSettings(await createDstackV0Agent(endpoint).appCompose());
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
    // A dstack before 0.5.6 signs the secp256k1 key instead of the Ed25519 one: stop, naming the fix.
    requireEd25519Chain(member.proven.appPubkey, spec, other.proven, other.derived.key);
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
        guestApiVersion: member.proven.guestApiVersion,
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
