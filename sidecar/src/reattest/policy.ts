// The cluster's policy for judging one peer, read at one chain-head block that a quorum of the pinned
// providers agree on (chain/reads.ts): the allowlists and TCB rule (policySnapshot), the simulator rule
// (a simulator KMS root allowed, as the KMS-root rule decides for the indexer and `attestmesh attest`),
// the peer's standing and stated claims (memberClaims), and whether the device its quote names is
// revoked. The head, not the confirmed view: a revocation must reach running peers at once.
import { type AttestationPolicy, attestationPolicyOf } from "@attestmesh/shared/attestation/policy.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import type { Address } from "viem";
import type { ChainReads } from "../chain/reads.ts";
import { MEMBER_STANDINGS } from "../model/member.ts";
import type { PeerPolicy } from "./verdict.ts";

/** Reads the policy one peer is judged against; `deviceId` is the device its quote names, if any. */
export type PeerPolicyReader = (memberId: bigint, deviceId?: string) => Promise<PeerPolicy>;

/** Whether the owner revoked `deviceId` (lowercase hex, no 0x), at the head. */
export function createDeviceRevokedReader(reads: ChainReads, cluster: Address) {
  return async (deviceId: string): Promise<boolean> => {
    const at = await reads.agreedBlock(0);
    const revokedAt = await reads.readContract({
      address: cluster,
      abi: clusterAbi,
      functionName: "deviceRevokedAt",
      args: [`0x${deviceId}`],
      at,
    });
    return revokedAt !== 0n;
  };
}

const hex = (h: string) => h.toLowerCase().replace(/^0x/, "");
const ZERO = "0".repeat(64);

export function createPeerPolicyReader(reads: ChainReads, cluster: Address): PeerPolicyReader {
  return async (memberId, deviceId) => {
    const at = await reads.agreedBlock(0);
    const [snapshot, claims, revokedAt] = await Promise.all([
      reads.readContract({ address: cluster, abi: clusterAbi, functionName: "policySnapshot", at }),
      reads.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "memberClaims",
        args: [memberId],
        at,
      }),
      deviceId === undefined
        ? Promise.resolve(undefined)
        : reads.readContract({
            address: cluster,
            abi: clusterAbi,
            functionName: "deviceRevokedAt",
            args: [`0x${deviceId}`],
            at,
          }),
    ]);
    const stated = { compose: hex(claims.composeHash), device: hex(claims.deviceId) };
    return {
      ...attestationPolicyOf(snapshot),
      allowAnyDevice: snapshot.allowAnyDevice,
      composeHashes: new Set(snapshot.composeHashes.map(hex)),
      deviceIds: new Set(snapshot.deviceIds.map(hex)),
      standing: MEMBER_STANDINGS[claims.standing] ?? "not-active",
      ...(stated.compose === ZERO ? {} : { statedComposeHash: stated.compose }),
      ...(stated.device === ZERO ? {} : { statedDeviceId: stated.device }),
      ...(revokedAt === undefined ? {} : { evidenceDeviceRevoked: revokedAt !== 0n }),
    };
  };
}

/**
 * The cluster's simulator and TCB rules at the agreed head, for evidence judged without a member
 * behind it (the indexer's quote): one provider claiming the simulator is allowed is outvoted.
 */
export function agreedAttestationPolicy(
  reads: ChainReads,
  cluster: Address,
): () => Promise<AttestationPolicy> {
  return async () => {
    const at = await reads.agreedBlock(0);
    return attestationPolicyOf(
      await reads.readContract({ address: cluster, abi: clusterAbi, functionName: "policySnapshot", at }),
    );
  };
}
