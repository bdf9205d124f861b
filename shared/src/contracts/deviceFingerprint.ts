// The fingerprint the cluster keeps of a device no owner call named (LibMemberClaims.fingerprintOf).

import { type Hex, keccak256 } from "viem";

/**
 * The 31-bit fingerprint of `deviceId`: the top 31 bits of keccak256(deviceId), as the cluster keeps
 * it for a member on a device no owner call named (`memberClaims(id).deviceFingerprint`).
 */
export function deviceFingerprint(deviceId: Hex): number {
  return Number(BigInt(keccak256(deviceId)) >> 225n);
}
