// The keys a simulated dstack node registers with: its member key and the key-chain proof the cluster
// verifies for it, its WireGuard key and its identity key, under guest API v0 (`GetKey`) or v1
// (`/v1/GetKey`, dstack 0.6), exactly as the sidecar derives them (sidecar/src/keys.ts): the WireGuard
// key is the X25519 public key of the derived secret, the identity key the Ed25519 one. Tests, benches
// and the gas snapshot build their nodes from these, and their indexers from `simulatedIndexerKeys`.
import { appSignKeyClaimV1, deriveKeyV1 } from "@attestmesh/shared/dstack/guestV1.ts";
import {
  deriveAppKey,
  derivedPublicKey,
  kmsSignAppKey,
  secp256k1PublicKey,
} from "@attestmesh/shared/dstack/keychain.ts";
import { IDENTITY_KEY, INDEXER_KEY, MEMBER_KEY, WIREGUARD_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { wireguardKeyPair } from "@attestmesh/sidecar/wireguard/keys.ts";
import { type Address, bytesToHex, hexToBytes } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { createSimulatedCvm, type KmsRoot, type SimulatedCvm } from "./simulator.ts";

/** A node's registration keys from its CVM's guest API v0 GetKey; `appId` is the CVM's app. */
export function simulatedNodeKeys(appId: Address, cvm: SimulatedCvm) {
  const member = cvm.getKey(MEMBER_KEY.path, MEMBER_KEY.purpose, "secp256k1");
  const identity = cvm.getKey(IDENTITY_KEY.path, IDENTITY_KEY.purpose, "ed25519");
  const wireguard = cvm.getKey(WIREGUARD_KEY.path, WIREGUARD_KEY.purpose, "ed25519");
  return {
    memberAccount: privateKeyToAccount(bytesToHex(member.key)),
    memberSecret: member.key,
    proof: {
      appId,
      memberPubkey: bytesToHex(derivedPublicKey(member.key, "secp256k1")),
      appPubkey: bytesToHex(cvm.appPublicKey),
      appSignature: bytesToHex(member.signatureChain[0]),
      kmsSignature: bytesToHex(member.signatureChain[1]),
      guestApiVersion: 0,
    },
    identityKey: bytesToHex(derivedPublicKey(identity.key, "ed25519")),
    /** The identity key's seed: signs the node's sealed messages. */
    identitySecret: identity.key,
    /** X25519, as WireGuard uses it (not the Ed25519 public key of the same secret). */
    wireguardKey: bytesToHex(wireguardKeyPair(wireguard.key).publicKey),
  };
}

/** A node's registration keys under guest API v1: the v1 KDF, link 0 over the v1 key claim. */
export function simulatedNodeKeysV1(kmsRoot: KmsRoot, appId: Address) {
  const appKey = deriveAppKey(kmsRoot.secret, hexToBytes(appId));
  const memberSecret = deriveKeyV1(appKey, "secp256k1", MEMBER_KEY.purpose);
  const memberPubkey = derivedPublicKey(memberSecret, "secp256k1");
  const appPubkey = secp256k1PublicKey(appKey);
  const edKey = (domain: string) =>
    bytesToHex(derivedPublicKey(deriveKeyV1(appKey, "ed25519", domain), "ed25519"));
  const wireguard = deriveKeyV1(appKey, WIREGUARD_KEY.algorithm, WIREGUARD_KEY.purpose);
  return {
    memberAccount: privateKeyToAccount(bytesToHex(memberSecret)),
    memberSecret,
    proof: {
      appId,
      memberPubkey: bytesToHex(memberPubkey),
      appPubkey: bytesToHex(appPubkey),
      appSignature: bytesToHex(appSignKeyClaimV1(appKey, MEMBER_KEY.purpose, memberPubkey)),
      kmsSignature: bytesToHex(kmsSignAppKey(kmsRoot.secret, hexToBytes(appId), appPubkey)),
      guestApiVersion: 1,
    },
    identityKey: edKey(IDENTITY_KEY.purpose),
    wireguardKey: bytesToHex(wireguardKeyPair(wireguard).publicKey),
  };
}

/**
 * An indexer's signing key from its CVM's guest API v0 GetKey, as the indexer derives it
 * (indexer/src/keys.ts), and the key-chain proof `setIndexer` verifies for it; `appId` is the CVM's app.
 */
export function simulatedIndexerKeys(kmsRoot: KmsRoot, appId: Address) {
  const cvm = createSimulatedCvm({ kmsRoot, appId: hexToBytes(appId) });
  const { key, signatureChain } = cvm.getKey(INDEXER_KEY.path, INDEXER_KEY.purpose, INDEXER_KEY.algorithm);
  return {
    signingKey: bytesToHex(derivedPublicKey(key, "ed25519")),
    proof: {
      appId,
      appPubkey: bytesToHex(cvm.appPublicKey),
      appSignature: bytesToHex(signatureChain[0]),
      kmsSignature: bytesToHex(signatureChain[1]),
      guestApiVersion: 0,
    },
  };
}
