// Typed reads of the cluster diamond: member records (one, or all in pages), an app id's member, the
// registration nonce and the mesh configuration. Every read is a quorum read (reads.ts) at an agreed
// block hash; reads take that block explicitly so a whole view is consistent at one height, or agree on
// the head's when none is given.
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import type { MeshCidr } from "@attestmesh/shared/mesh/cidr.ts";
import type { Address } from "viem";
import { MEMBER_STANDINGS, type Member, type MemberStatus } from "../model/member.ts";
import type { AgreedBlock, ChainReads } from "./reads.ts";

/** Members per `members(start, limit)` call (and `memberStandings`): 1,000 members load in 4 pages of 2 calls. */
export const MEMBER_PAGE_SIZE = 250n;

const STATUSES: readonly MemberStatus[] = ["none", "active", "left", "evicted"];

/** The contract's `MemberView` as viem decodes it. */
export interface MemberView {
  readonly memberId: bigint;
  readonly appId: Address;
  readonly memberKey: Address;
  readonly wireguardKey: `0x${string}`;
  readonly identityKey: `0x${string}`;
  readonly meshIp: number;
  readonly status: number;
  readonly registeredAt: number;
}

/** A record in sidecar terms, or undefined for an empty slot (status None). Unknown statuses count as none. */
export function toMember(view: MemberView): Member | undefined {
  const status = STATUSES[view.status] ?? "none";
  if (status === "none" || view.memberId === 0n) return undefined;
  return {
    memberId: view.memberId,
    appId: view.appId,
    memberKey: view.memberKey,
    wireguardKey: view.wireguardKey.toLowerCase() as `0x${string}`,
    identityKey: view.identityKey.toLowerCase() as `0x${string}`,
    meshIp: view.meshIp,
    status,
    registeredAt: Number(view.registeredAt),
  };
}

export interface MeshConfig {
  readonly cidr: MeshCidr;
  readonly lastMemberId: bigint;
  readonly activeMembers: bigint;
}

export interface ClusterReader {
  member(memberId: bigint, at?: AgreedBlock): Promise<Member | undefined>;
  /** Every record from id 1 on, in pages of `MEMBER_PAGE_SIZE`, each with its standing. */
  allMembers(at?: AgreedBlock): Promise<Map<bigint, Member>>;
  memberOfApp(appId: Address, at?: AgreedBlock): Promise<{ memberId: bigint; active: boolean }>;
  registrationNonce(appId: Address, at?: AgreedBlock): Promise<bigint>;
  meshConfig(at?: AgreedBlock): Promise<MeshConfig>;
}

export function createClusterReader(reads: ChainReads, cluster: Address): ClusterReader {
  const block = async (at: AgreedBlock | undefined) => at ?? (await reads.agreedBlock(0));
  return {
    async member(memberId, at) {
      const view = await reads.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "member",
        args: [memberId],
        at: await block(at),
      });
      return toMember(view);
    },
    async allMembers(at) {
      const pinned = await block(at);
      const members = new Map<bigint, Member>();
      let start = 1n;
      for (;;) {
        const [[page, nextId], [standings]] = await Promise.all([
          reads.readContract({
            address: cluster,
            abi: clusterAbi,
            functionName: "members",
            args: [start, MEMBER_PAGE_SIZE],
            at: pinned,
          }),
          reads.readContract({
            address: cluster,
            abi: clusterAbi,
            functionName: "memberStandings",
            args: [start, MEMBER_PAGE_SIZE],
            at: pinned,
          }),
        ]);
        page.forEach((view, i) => {
          const member = toMember(view);
          const standing = MEMBER_STANDINGS[standings[i] ?? -1];
          if (member) members.set(member.memberId, standing === undefined ? member : { ...member, standing });
        });
        if (nextId === 0n || nextId <= start) return members;
        start = nextId;
      }
    },
    async memberOfApp(appId, at) {
      const [memberId, active] = await reads.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "memberOfApp",
        args: [appId],
        at: await block(at),
      });
      return { memberId, active };
    },
    async registrationNonce(appId, at) {
      return reads.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "registrationNonce",
        args: [appId],
        at: await block(at),
      });
    },
    async meshConfig(at) {
      const [meshBase, prefixLength, lastMemberId, activeMembers] = await reads.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "meshConfig",
        at: await block(at),
      });
      return { cidr: { base: meshBase, prefixLength }, lastMemberId, activeMembers };
    },
  };
}
