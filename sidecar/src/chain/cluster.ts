// Typed reads of the cluster diamond: member records (one, or all in pages) and standings, an app id's
// member, the registration nonce and the mesh configuration. Every read is a quorum read (reads.ts) at an
// agreed block hash; reads take that block explicitly so a whole view is consistent at one height, or
// agree on the head's when none is given.
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import type { MeshCidr } from "@attestmesh/shared/mesh/cidr.ts";
import type { Address, ContractFunctionArgs, ContractFunctionName } from "viem";
import { MEMBER_STANDINGS, type Member, type MemberStanding, type MemberStatus } from "../model/member.ts";
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
  /** A member's policy standing (`memberStanding`); an unknown value reads as not active. */
  standing(memberId: bigint, at?: AgreedBlock): Promise<MemberStanding>;
  /** Every record from id 1 on, in pages of `MEMBER_PAGE_SIZE`, each with its standing. */
  allMembers(at?: AgreedBlock): Promise<Map<bigint, Member>>;
  memberOfApp(appId: Address, at?: AgreedBlock): Promise<{ memberId: bigint; active: boolean }>;
  registrationNonce(appId: Address, at?: AgreedBlock): Promise<bigint>;
  meshConfig(at?: AgreedBlock): Promise<MeshConfig>;
}

export function createClusterReader(reads: ChainReads, cluster: Address): ClusterReader {
  /** A view call on the diamond at `at`, or at the head when none is given. */
  const view = async <
    functionName extends ContractFunctionName<typeof clusterAbi, "view" | "pure">,
    const args extends ContractFunctionArgs<typeof clusterAbi, "view" | "pure", functionName>,
  >(
    functionName: functionName,
    args: args,
    at: AgreedBlock | undefined,
  ) =>
    reads.readContract({
      address: cluster,
      abi: clusterAbi,
      functionName,
      args,
      at: at ?? (await reads.agreedBlock(0)),
    });
  return {
    async member(memberId, at) {
      return toMember(await view("member", [memberId], at));
    },
    async standing(memberId, at) {
      return MEMBER_STANDINGS[await view("memberStanding", [memberId], at)] ?? "not-active";
    },
    async allMembers(at) {
      const pinned = at ?? (await reads.agreedBlock(0));
      const members = new Map<bigint, Member>();
      let start = 1n;
      for (;;) {
        const [[page, nextId], [standings]] = await Promise.all([
          view("members", [start, MEMBER_PAGE_SIZE], pinned),
          view("memberStandings", [start, MEMBER_PAGE_SIZE], pinned),
        ]);
        page.forEach((record, i) => {
          const member = toMember(record);
          const standing = MEMBER_STANDINGS[standings[i] ?? -1];
          if (member) members.set(member.memberId, standing === undefined ? member : { ...member, standing });
        });
        if (nextId === 0n || nextId <= start) return members;
        start = nextId;
      }
    },
    async memberOfApp(appId, at) {
      const [memberId, active] = await view("memberOfApp", [appId], at);
      return { memberId, active };
    },
    registrationNonce: (appId, at) => view("registrationNonce", [appId], at),
    async meshConfig(at) {
      const [meshBase, prefixLength, lastMemberId, activeMembers] = await view("meshConfig", [], at);
      return { cidr: { base: meshBase, prefixLength }, lastMemberId, activeMembers };
    },
  };
}
