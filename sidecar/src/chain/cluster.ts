// Typed reads of the cluster diamond: member records (one, or all in pages), an app id's member, the
// registration nonce and the mesh configuration. Reads take an explicit block so a whole view is
// consistent at one height.
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import type { MeshCidr } from "@attestmesh/shared/mesh/cidr.ts";
import type { Address, Chain, PublicClient, Transport } from "viem";
import { MEMBER_STANDINGS, type Member, type MemberStatus } from "../model/member.ts";

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
  member(memberId: bigint, blockNumber?: bigint): Promise<Member | undefined>;
  /** Every record from id 1 on, in pages of `MEMBER_PAGE_SIZE`, each with its standing. */
  allMembers(blockNumber?: bigint): Promise<Map<bigint, Member>>;
  memberOfApp(appId: Address): Promise<{ memberId: bigint; active: boolean }>;
  registrationNonce(appId: Address): Promise<bigint>;
  meshConfig(blockNumber?: bigint): Promise<MeshConfig>;
}

export function createClusterReader(client: PublicClient<Transport, Chain>, cluster: Address): ClusterReader {
  const at = (blockNumber: bigint | undefined) => (blockNumber === undefined ? {} : { blockNumber });
  return {
    async member(memberId, blockNumber) {
      const view = await client.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "member",
        args: [memberId],
        ...at(blockNumber),
      });
      return toMember(view);
    },
    async allMembers(blockNumber) {
      const members = new Map<bigint, Member>();
      let start = 1n;
      for (;;) {
        const [[page, nextId], [standings]] = await Promise.all([
          client.readContract({
            address: cluster,
            abi: clusterAbi,
            functionName: "members",
            args: [start, MEMBER_PAGE_SIZE],
            ...at(blockNumber),
          }),
          client.readContract({
            address: cluster,
            abi: clusterAbi,
            functionName: "memberStandings",
            args: [start, MEMBER_PAGE_SIZE],
            ...at(blockNumber),
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
    async memberOfApp(appId) {
      const [memberId, active] = await client.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "memberOfApp",
        args: [appId],
      });
      return { memberId, active };
    },
    async registrationNonce(appId) {
      return client.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "registrationNonce",
        args: [appId],
      });
    },
    async meshConfig(blockNumber) {
      const [meshBase, prefixLength, lastMemberId, activeMembers] = await client.readContract({
        address: cluster,
        abi: clusterAbi,
        functionName: "meshConfig",
        ...at(blockNumber),
      });
      return { cidr: { base: meshBase, prefixLength }, lastMemberId, activeMembers };
    },
  };
}
