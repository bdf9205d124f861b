// The keys a node derives through dstack GetKey. Paths and purposes are versioned: changing one gives
// every node new keys, so a change must bump the version. The purposes of chain-proven keys must equal
// the contract's KeyPurposes.sol (a test pins them).
import type { KeyAlgorithm } from "../dstack/keychain.ts";

export interface KeySpec {
  readonly path: string;
  readonly purpose: string;
  readonly algorithm: KeyAlgorithm;
}

/** Key `name` of version 1: path `attestmesh/v1/<name>`, purpose `attestmesh-<name>-v1`. */
function v1(name: string, algorithm: KeyAlgorithm): KeySpec {
  return { path: `attestmesh/v1/${name}`, purpose: `attestmesh-${name}-v1`, algorithm };
}

/** secp256k1 member key: proven on chain by its dstack chain; signs every member action. */
export const MEMBER_KEY: KeySpec = v1("member", "secp256k1");

/** Ed25519 identity key: signs heartbeats; its X25519 form receives sealed boxes. */
export const IDENTITY_KEY: KeySpec = v1("identity", "ed25519");

/** WireGuard static key (the 32 derived bytes, clamped as X25519 requires). */
export const WIREGUARD_KEY: KeySpec = v1("wireguard", "ed25519");

/** The indexer's Ed25519 signing key: proven on chain in the indexer registry. */
export const INDEXER_KEY: KeySpec = v1("indexer", "ed25519");
