// A member as the chain holds it, in sidecar terms: produced by chain/, read by every later stage.
import type { Address, Hex } from "viem";

export type MemberStatus = "none" | "active" | "left" | "evicted";

export { isStale, MEMBER_STANDINGS, type MemberStanding } from "@attestmesh/shared/contracts/standing.ts";

import type { MemberStanding } from "@attestmesh/shared/contracts/standing.ts";

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

/** The keys that name a node, whatever its member id: its app id, member key, WireGuard and identity keys. */
export type MemberKeys = Pick<Member, "appId" | "memberKey" | "wireguardKey" | "identityKey">;

/**
 * Whether two records carry one node's keys: the same app id, member key, WireGuard key and identity
 * key, compared caselessly (addresses come checksummed or not, keys as hex in either case). Anyone
 * can register a public key, so a record sharing only some of them is another node's.
 */
export function isSameNode(a: MemberKeys, b: MemberKeys): boolean {
  const same = (x: string, y: string) => x.toLowerCase() === y.toLowerCase();
  return (
    same(a.appId, b.appId) &&
    same(a.memberKey, b.memberKey) &&
    same(a.wireguardKey, b.wireguardKey) &&
    same(a.identityKey, b.identityKey)
  );
}
