// The WireGuard peers this node should have, computed from chain state alone: every active member but
// itself and those the owner's revocation reached (no longer standing), keyed by its on-chain WireGuard key, routed to its mesh address as a /32. Endpoints (routing
// only) come from the endpoints file. A record that cannot be a peer is dropped with a reason, never
// allowed to stop the others: a zero or malformed key, an address outside the mesh, this node's own key
// or address, or a key or address an earlier (lower id) member already holds.
import { containsIp, type MeshCidr, numberToIp } from "@attestmesh/shared/mesh/cidr.ts";
import { isStale, type Member } from "../model/member.ts";
import type { DesiredPeer, DroppedRecord } from "../model/peer.ts";
import { hexToWgBase64 } from "../wireguard/keys.ts";
import type { Endpoints } from "./endpoints.ts";

export interface DesiredState {
  /** Sorted by member id. */
  readonly peers: readonly DesiredPeer[];
  readonly dropped: readonly DroppedRecord[];
}

const ZERO_KEY = `0x${"0".repeat(64)}`;

export function computeDesiredPeers(input: {
  readonly members: Iterable<Member>;
  readonly self: Member;
  readonly mesh: MeshCidr;
  readonly endpoints: Endpoints;
  /** 0 or undefined: no persistent keepalive. */
  readonly keepaliveSeconds?: number;
}): DesiredState {
  const { self, mesh, endpoints } = input;
  const active = [...input.members]
    .filter((m) => m.status === "active" && m.memberId !== self.memberId)
    .sort((a, b) => (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0));
  const keepalive = input.keepaliveSeconds ? { keepaliveSeconds: input.keepaliveSeconds } : {};
  const selfKey = self.wireguardKey.toLowerCase();
  const keyOwner = new Map<string, bigint>();
  const ipOwner = new Map<number, bigint>();
  const peers: DesiredPeer[] = [];
  const dropped: DroppedRecord[] = [];

  for (const member of active) {
    const key = member.wireguardKey.toLowerCase();
    const drop = (reason: string) => dropped.push({ memberId: member.memberId, reason });
    if (isStale(member.standing)) {
      // The owner revoked its device, or withdrew its compose hash or KMS root: as good as evicted.
      drop(`no longer standing (${member.standing}): treated as evicted`);
      continue;
    }
    if (!/^0x[0-9a-f]{64}$/.test(key) || key === ZERO_KEY) {
      drop("WireGuard key is zero or malformed");
      continue;
    }
    if (key === selfKey) {
      drop("WireGuard key equals this node's own key");
      continue;
    }
    if (!Number.isInteger(member.meshIp) || !containsIp(mesh, member.meshIp)) {
      drop(`mesh address ${formatIp(member.meshIp)} is not a host address of the mesh`);
      continue;
    }
    if (member.meshIp === self.meshIp) {
      drop(`mesh address ${numberToIp(member.meshIp)} is this node's own address`);
      continue;
    }
    const keyHolder = keyOwner.get(key);
    if (keyHolder !== undefined) {
      drop(`WireGuard key already belongs to member ${keyHolder}`);
      continue;
    }
    const ipHolder = ipOwner.get(member.meshIp);
    if (ipHolder !== undefined) {
      drop(`mesh address ${numberToIp(member.meshIp)} already belongs to member ${ipHolder}`);
      continue;
    }
    keyOwner.set(key, member.memberId);
    ipOwner.set(member.meshIp, member.memberId);
    const meshIp = numberToIp(member.meshIp);
    const endpoint = endpoints.get(member.appId.toLowerCase());
    peers.push({
      memberId: member.memberId,
      appId: member.appId,
      meshIp,
      config: {
        publicKey: hexToWgBase64(key),
        allowedIps: [`${meshIp}/32`],
        ...(endpoint === undefined ? {} : { endpoint }),
        ...keepalive,
      },
    });
  }
  return { peers, dropped };
}

function formatIp(value: number): string {
  return Number.isInteger(value) && value >= 0 && value <= 0xffffffff ? numberToIp(value) : String(value);
}
