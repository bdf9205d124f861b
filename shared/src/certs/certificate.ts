// The offline-verifiable member certificate (DESIGN.md "Who controls which input"): everything a node
// needs to decide, with no RPC, that a member key is a TEE's — its dstack KMS chain, its member app's
// CREATE2 salt, and its keys bound by the member key's EIP-712 registration signature — checked against
// values pinned in the attested compose (PinnedTrust), never against anything an RPC returned.
//
// A certificate proves: the KMS (a pinned root) issued an app key for an app id that is a member app of
// this cluster (CREATE2 of the pinned implementation and cluster for the salt); that app key derived
// the member key; the member key signed these WireGuard and identity keys for this chain and cluster.
// Since the KMS issues an app key only after the member app's `isAppAllowed` (which defers to the
// cluster policy, read by the KMS on the real chain) allowed the boot, that is "a TEE running a compose
// the owner allowed, for a member app of this cluster".
//
// Checks, in order (the first failing one names the refusal):
//   1. shape: hex fields of the right lengths, every Register field present     MalformedCertificate
//   2. its key chain is of the pinned guest API (`guestApiVersion`)             GuestApiNotPinned
//   3. the member key's dstack KMS chain (shared/dstack/verify.ts)              KeyChainInvalid
//   4. its KMS signer is a pinned KMS root                                      KmsRootNotPinned
//   5. app id = CREATE2(cluster, salt, clone(implementation, cluster))          AppIdNotMemberApp
//   6. the Register typed data (domain: pinned chain id and cluster) recovers
//      to the certified member key, its signature held to the contract's rules
//      (v ∈ {0, 1, 27, 28}, low s)                                              RegistrationSignatureMismatch
//   7. against the member record the follower reports, when given: app id,
//      member key, WireGuard key, identity key equal                            AppIdMismatch, MemberKeyMismatch,
//                                                                               WireguardKeyMismatch, IdentityKeyMismatch
//
// Why 2: one CVM of an allowed app holds one app key, and from it derives a v0 member key (`GetKey`)
// and a different v1 member key (`/v1/GetKey`), both with valid KMS chains. The contract accepts
// either, so without the pin an app's CVM could be a member under a key no sidecar of the pinned
// compose derives (the application beside the sidecar, or a compose pinning the other guest API that
// the owner allowed by mistake or for a migration), and the CSK would be sealed to keys that key
// signed. The version is cheap to compare, so it is checked before any signature.
import { type Address, getAddress, type Hex, hashTypedData, hexToBytes, isHex } from "viem";
import { memberDomain, memberTypes } from "../contracts/typedData.ts";
import type { GuestApiVersion } from "../dstack/guestV1.ts";
import { compressedToAddress, recoverSignerAddress, verifyDstackKeyChain } from "../dstack/verify.ts";
import { AttestmeshError } from "../errors.ts";
import { MEMBER_KEY } from "../keys/purposes.ts";
import { GUEST_API_VERSION, type PinnedTrust } from "../service/pinned.ts";
import { predictMemberAppId } from "./memberApp.ts";

export interface MemberCertificate {
  readonly appId: Address;
  /** The CREATE2 salt of the member app (bytes32). */
  readonly salt: Hex;
  /** The member key's dstack chain (IMembership.DstackProof, minus the app id above). */
  readonly memberPubkey: Hex;
  readonly appPubkey: Hex;
  readonly appSignature: Hex;
  readonly kmsSignature: Hex;
  readonly guestApiVersion: GuestApiVersion;
  /** 32-byte Curve25519 WireGuard key. */
  readonly wireguardKey: Hex;
  /** 32-byte Ed25519 identity key. */
  readonly identityKey: Hex;
  /**
   * Every other field of the signed Register message (memberTypes.Register minus appId, wireguardKey,
   * identityKey and nonce), by its typed-data name: the claims the registration states.
   */
  readonly claims: Readonly<Record<string, Hex>>;
  /** The registration nonce the signature was made with. */
  readonly nonce: bigint;
  /** The member key's EIP-712 registration signature (65 bytes). */
  readonly signature: Hex;
}

/** The member record a certificate must match (what the follower reports). */
export interface CertifiedRecord {
  readonly appId: Address;
  readonly memberKey: Address;
  readonly wireguardKey: Hex;
  readonly identityKey: Hex;
}

export const CERTIFICATE_REFUSALS = [
  "MalformedCertificate",
  "GuestApiNotPinned",
  "KeyChainInvalid",
  "KmsRootNotPinned",
  "AppIdNotMemberApp",
  "RegistrationSignatureMismatch",
  "AppIdMismatch",
  "MemberKeyMismatch",
  "WireguardKeyMismatch",
  "IdentityKeyMismatch",
] as const;
export type CertificateRefusal = (typeof CERTIFICATE_REFUSALS)[number];

export interface VerifiedCertificate {
  readonly certificate: MemberCertificate;
  readonly memberKey: Address;
  readonly kmsRoot: Address;
}

/** Fields of the Register message the certificate carries by name; every other one is a claim. */
const NAMED_FIELDS = new Set(["appId", "wireguardKey", "identityKey", "nonce"]);

function refuse(reason: CertificateRefusal, message: string, details: Record<string, unknown> = {}): never {
  throw new AttestmeshError(`member certificate refused (${reason}): ${message}`, {
    code: reason,
    retryable: false,
    details: { reason, ...details },
  });
}

function hexOf(field: string, value: unknown, bytes: number): Hex {
  if (typeof value !== "string" || !isHex(value) || (value.length - 2) / 2 !== bytes) {
    refuse("MalformedCertificate", `${field} is not ${bytes} bytes of hex.`, { field });
  }
  return value.toLowerCase() as Hex;
}

/**
 * The Register message a certificate's signature is over (its typed-data fields, 13.1's claims
 * included), built from memberTypes so the typed data has one definition.
 */
export function registerMessageOf(certificate: MemberCertificate): Record<string, unknown> {
  const message: Record<string, unknown> = {};
  for (const { name } of memberTypes.Register) {
    if (name === "appId") message[name] = certificate.appId;
    else if (name === "wireguardKey") message[name] = certificate.wireguardKey;
    else if (name === "identityKey") message[name] = certificate.identityKey;
    else if (name === "nonce") message[name] = certificate.nonce;
    else {
      const claim = certificate.claims[name];
      if (claim === undefined) {
        refuse("MalformedCertificate", `the registration claim ${name} is missing.`, { field: name });
      }
      message[name] = claim;
    }
  }
  return message;
}

/**
 * Signers recovered lately, by the typed-data digest (domain and every message field) and the signature:
 * the certificate source recovers a registration's signer to find its nonce, and the verification that
 * follows recovers the same one again. A recovery is a function of exactly these two values, so an entry
 * answers only the question it was computed for; a failed recovery is never kept.
 */
const SIGNERS_KEPT = 256;
const recentSigners = new Map<string, Address>();

/**
 * Who signed the certificate's Register message for `chainId` and `cluster`; throws if nobody can have.
 * The signature must pass the contract's checks (v ∈ {0, 1, 27, 28}, r in [1, n − 1], s in [1, n/2]):
 * the register call refuses the high-s twin of a signature, so a certificate carrying one is refused too.
 */
export function registrationSigner(
  certificate: MemberCertificate,
  chainId: number,
  cluster: Address,
  message: Record<string, unknown> = registerMessageOf(certificate),
): Address {
  const digest = hashTypedData({
    domain: memberDomain(chainId, cluster),
    types: memberTypes,
    primaryType: "Register",
    // biome-ignore lint/suspicious/noExplicitAny: the message is built from memberTypes.Register itself
    message: message as any,
  });
  const key = `${digest}:${String(certificate.signature).toLowerCase()}`;
  const kept = recentSigners.get(key);
  if (kept !== undefined) return kept;
  const signer = recoverSignerAddress(hexToBytes(digest), hexToBytes(certificate.signature));
  if (recentSigners.size >= SIGNERS_KEPT) recentSigners.delete(recentSigners.keys().next().value!);
  recentSigners.set(key, signer);
  return signer;
}

/** The names of the Register fields a certificate carries as claims. */
export function registerClaimNames(): string[] {
  return memberTypes.Register.map((f) => f.name).filter((name) => !NAMED_FIELDS.has(name));
}

/**
 * Verifies a member certificate with no RPC, against the pinned trust values and (when given) the
 * member record. Throws an `AttestmeshError` whose code is the `CertificateRefusal`.
 */
export async function verifyMemberCertificate(
  certificate: MemberCertificate,
  pinned: PinnedTrust,
  record?: CertifiedRecord,
): Promise<VerifiedCertificate> {
  const memberPubkey = hexOf("memberPubkey", certificate.memberPubkey, 33);
  const appPubkey = hexOf("appPubkey", certificate.appPubkey, 33);
  const appSignature = hexOf("appSignature", certificate.appSignature, 65);
  const kmsSignature = hexOf("kmsSignature", certificate.kmsSignature, 65);
  const salt = hexOf("salt", certificate.salt, 32);
  const wireguardKey = hexOf("wireguardKey", certificate.wireguardKey, 32);
  const identityKey = hexOf("identityKey", certificate.identityKey, 32);
  hexOf("signature", certificate.signature, 65);
  hexOf("appId", certificate.appId, 20);
  const appId = getAddress(certificate.appId);
  const message = registerMessageOf(certificate);
  const pinnedVersion = GUEST_API_VERSION[pinned.guestApi];
  if (certificate.guestApiVersion !== pinnedVersion) {
    refuse(
      "GuestApiNotPinned",
      `its member key's chain is from guest API v${String(certificate.guestApiVersion)}, but the attested compose pins ${pinned.guestApi}.`,
      { guestApiVersion: certificate.guestApiVersion, pinned: pinned.guestApi },
    );
  }

  let kmsRoot: Address;
  try {
    kmsRoot = verifyDstackKeyChain({
      appId: hexToBytes(appId),
      purpose: MEMBER_KEY.purpose,
      derivedPubkey: hexToBytes(memberPubkey),
      appPubkey: hexToBytes(appPubkey),
      appSignature: hexToBytes(appSignature),
      kmsSignature: hexToBytes(kmsSignature),
      guestApiVersion: certificate.guestApiVersion,
    });
  } catch (error) {
    if (!(error instanceof AttestmeshError)) throw error;
    refuse("KeyChainInvalid", `the member key's dstack chain does not verify (${error.code}).`, {
      keyChainError: error.code,
    });
  }
  if (!pinned.kmsRoots.includes(kmsRoot)) {
    refuse(
      "KmsRootNotPinned",
      `its KMS signer ${kmsRoot} is not a KMS root pinned in the attested compose.`,
      {
        kmsRoot,
      },
    );
  }
  const predicted = predictMemberAppId(pinned.memberAppImplementation, pinned.cluster, salt);
  if (predicted !== appId) {
    refuse(
      "AppIdNotMemberApp",
      `app id ${appId} is not this cluster's member app for salt ${salt} (that is ${predicted}).`,
      { appId, salt, predicted },
    );
  }
  const memberKey = compressedToAddress(hexToBytes(memberPubkey));
  let signer: Address;
  try {
    signer = registrationSigner(certificate, pinned.chainId, pinned.cluster, message);
  } catch {
    refuse("RegistrationSignatureMismatch", "the registration signature does not recover to any key.");
  }
  if (getAddress(signer) !== memberKey) {
    refuse(
      "RegistrationSignatureMismatch",
      `the registration is signed by ${signer}, not by the certified member key ${memberKey} (keys, chain id or cluster differ).`,
      { signer, memberKey },
    );
  }
  if (record !== undefined) {
    if (getAddress(record.appId) !== appId) {
      refuse("AppIdMismatch", `the record's app id ${record.appId} is not the certificate's ${appId}.`);
    }
    if (getAddress(record.memberKey) !== memberKey) {
      refuse(
        "MemberKeyMismatch",
        `the record's member key ${record.memberKey} is not the certified ${memberKey}.`,
      );
    }
    if (record.wireguardKey.toLowerCase() !== wireguardKey) {
      refuse("WireguardKeyMismatch", "the record's WireGuard key is not the certified one.");
    }
    if (record.identityKey.toLowerCase() !== identityKey) {
      refuse("IdentityKeyMismatch", "the record's identity key is not the certified one.");
    }
  }
  return { certificate, memberKey, kmsRoot };
}
