// A member's standing (IMemberStanding.Standing, by index): whether the cluster's policy would admit the
// member again now. Read by the sidecar (a stale member is dropped like an evicted one), the owner CLI
// (`members`, `evict --stale`) and the dashboard (drift).

export const MEMBER_STANDINGS = [
  "not-active",
  "good",
  "unrecorded",
  "device-revoked",
  "device-not-allowed",
  "compose-hash-not-allowed",
  "kms-root-not-allowed",
] as const;

export type MemberStanding = (typeof MEMBER_STANDINGS)[number];

/**
 * Whether the owner's revocation reached an active member: on a revoked device, running a withdrawn
 * compose hash, or admitted by a removed KMS root. Such a member is treated as evicted.
 */
export function isStale(standing: MemberStanding | undefined): boolean {
  return (
    standing !== undefined && standing !== "good" && standing !== "unrecorded" && standing !== "not-active"
  );
}
