// The CSK a committer generates inside its TEE: dstack GetKey on a versioned path naming the chain,
// the cluster and the epoch, then HKDF, so the shared key is not itself a key dstack attests for this
// app. Deterministic per (app key, chain, cluster, epoch): the committer re-derives the same key after
// a restart, and nobody outside the TEE (or the dstack KMS) can compute it. Every epoch gets a new key.
import { hkdf } from "@noble/hashes/hkdf";
import { sha256 } from "@noble/hashes/sha2";
import type { Address } from "viem";
import type { KeySource } from "../keys.ts";

export const CSK_KEY_VERSION = "v1";
export const CSK_PURPOSE = "attestmesh-csk-v1";

/** The dstack GetKey path for one epoch's CSK. */
export function cskKeyPath(chainId: number, cluster: Address, epoch: bigint): string {
  return `attestmesh/${CSK_KEY_VERSION}/csk/${chainId}/${cluster.toLowerCase()}/${epoch}`;
}

export async function deriveCsk(
  source: KeySource,
  chainId: number,
  cluster: Address,
  epoch: bigint,
): Promise<Uint8Array> {
  const path = cskKeyPath(chainId, cluster, epoch);
  const derived = await source.getKey(path, CSK_PURPOSE, "secp256k1");
  const ikm = Uint8Array.from(derived.key);
  try {
    return hkdf(sha256, ikm, new TextEncoder().encode(path), new TextEncoder().encode(CSK_PURPOSE), 32);
  } finally {
    ikm.fill(0);
  }
}
