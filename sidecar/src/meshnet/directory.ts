// Who the mesh protocols may talk to: the active members of the latest confirmed membership view (the
// reconcile follower's), with their on-chain identity keys and mesh IPs. Nothing about a member ever
// comes from the network.
import { numberToIp } from "@attestmesh/shared/mesh/cidr.ts";
import { hexToBytes } from "viem";
import type { Member } from "../model/member.ts";

export interface MeshMember {
  readonly memberId: bigint;
  readonly meshIp: string;
  /** 32-byte Ed25519 key from the member record. */
  readonly identityKey: Uint8Array;
  readonly record: Member;
}

export interface MemberDirectory {
  /** The active member with this id, or undefined. */
  get(memberId: bigint): MeshMember | undefined;
  /** Every active member, ascending by id. */
  all(): MeshMember[];
  /** A number that changes whenever the set of members may have changed (cheap to call). */
  generation?(): number;
}

export function toMeshMember(record: Member): MeshMember | undefined {
  if (record.status !== "active" || !/^0x[0-9a-f]{64}$/i.test(record.identityKey)) return undefined;
  return {
    memberId: record.memberId,
    meshIp: numberToIp(record.meshIp),
    identityKey: hexToBytes(record.identityKey),
    record,
  };
}

/** A directory over a members map that may change between calls (e.g. `follower.current()?.members`). */
export function directoryFrom(members: () => ReadonlyMap<bigint, Member> | undefined): MemberDirectory {
  let lastMap: ReadonlyMap<bigint, Member> | undefined;
  let byId = new Map<bigint, MeshMember>();
  let sorted: MeshMember[] | undefined;
  let generation = 0;
  const refresh = () => {
    const map = members();
    if (map === lastMap) return;
    lastMap = map;
    generation += 1;
    sorted = undefined;
    byId = new Map();
    for (const record of map?.values() ?? []) {
      const member = toMeshMember(record);
      if (member) byId.set(member.memberId, member);
    }
  };
  return {
    get(memberId) {
      refresh();
      return byId.get(memberId);
    },
    all() {
      refresh();
      sorted ??= [...byId.values()].sort((a, b) =>
        a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0,
      );
      return [...sorted];
    },
    generation() {
      refresh();
      return generation;
    },
  };
}
