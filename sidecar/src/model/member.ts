// A member as the chain holds it, in sidecar terms: produced by chain/, read by every later stage.
import type { Address, Hex } from "viem";

export type MemberStatus = "none" | "active" | "left" | "evicted";

/**
 * Whether the policy would admit the member again now (IMemberStanding.Standing): an active member on a
 * revoked device, or running a withdrawn compose hash, or admitted by a removed KMS root is stale, and
 * is treated as evicted.
 */
export type MemberStanding =
  | "not-active"
  | "good"
  | "unrecorded"
  | "device-revoked"
  | "device-not-allowed"
  | "compose-hash-not-allowed"
  | "kms-root-not-allowed";

export const MEMBER_STANDINGS: readonly MemberStanding[] = [
  "not-active",
  "good",
  "unrecorded",
  "device-revoked",
  "device-not-allowed",
  "compose-hash-not-allowed",
  "kms-root-not-allowed",
];

/** Whether a standing means the owner's revocation reached the member (it is to be dropped). */
export function isStale(standing: MemberStanding | undefined): boolean {
  return (
    standing !== undefined && standing !== "good" && standing !== "unrecorded" && standing !== "not-active"
  );
}

/** A member record as the chain holds it (IMembership.MemberView), in sidecar terms. */
export interface Member {
  readonly memberId: bigint;
  readonly appId: Address;
  readonly memberKey: Address;
  /** 32-byte Curve25519 key, hex. */
  readonly wireguardKey: Hex;
  /** 32-byte Ed25519 key, hex. */
  readonly identityKey: Hex;
  /** Mesh IPv4 as an unsigned 32-bit integer (host order). */
  readonly meshIp: number;
  readonly status: MemberStatus;
  readonly registeredAt: number;
  /** Read with the member pages; undefined where only the record was read. */
  readonly standing?: MemberStanding;
}
