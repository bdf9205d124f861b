import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ipToNumber, parseMeshCidr } from "@attestmesh/shared/mesh/cidr.ts";
import { getAddress, type Hex } from "viem";
import type { Member } from "../../src/model/member.ts";
import { computeDesiredPeers } from "../../src/reconcile/desired.ts";
import { hexToWgBase64 } from "../../src/wireguard/keys.ts";

const mesh = parseMeshCidr("10.77.0.0/16");

function key(n: number): Hex {
  return `0x${n.toString(16).padStart(2, "0").repeat(32)}`;
}

function member(id: number, overrides: Partial<Member> = {}): Member {
  return {
    memberId: BigInt(id),
    appId: getAddress(`0x${id.toString(16).padStart(40, "0")}`),
    memberKey: getAddress(`0x${(id + 1000).toString(16).padStart(40, "0")}`),
    wireguardKey: key(id),
    identityKey: key(id + 100),
    meshIp: ipToNumber(`10.77.0.${id}`),
    status: "active",
    registeredAt: 1_700_000_000 + id,
    ...overrides,
  };
}

const self = member(1);

/** What `self` makes of `members` (no endpoints): the ids it keeps, in order, and each dropped id with why. */
function outcome(members: Member[]) {
  const { peers, dropped } = computeDesiredPeers({ members, self, mesh, endpoints: new Map() });
  return { kept: peers.map((p) => p.memberId), dropped: dropped.map((d) => [d.memberId, d.reason]) };
}

describe("computeDesiredPeers", () => {
  test("a member the owner's revocation reached is dropped like an evicted one; its key and address stay free", () => {
    const members = [
      self,
      member(2, { standing: "good" }),
      member(3, { standing: "device-revoked" }),
      member(4, { standing: "compose-hash-not-allowed" }),
      member(5, { standing: "kms-root-not-allowed" }),
      member(6, { standing: "device-not-allowed" }),
      member(7, { standing: "unrecorded" }),
      // A later member that took over the stale one's address is not shadowed by it.
      member(8, { meshIp: ipToNumber("10.77.0.3") }),
    ];
    assert.deepEqual(outcome(members), {
      kept: [2n, 7n, 8n],
      dropped: [
        [3n, "no longer standing (device-revoked): treated as evicted"],
        [4n, "no longer standing (compose-hash-not-allowed): treated as evicted"],
        [5n, "no longer standing (kms-root-not-allowed): treated as evicted"],
        [6n, "no longer standing (device-not-allowed): treated as evicted"],
      ],
    });
  });

  test("every active member but self, keyed by its on-chain key, routed to its /32", () => {
    const members = [
      self,
      member(3),
      member(2),
      member(4, { status: "evicted" }),
      member(5, { status: "left" }),
    ];
    const { peers, dropped } = computeDesiredPeers({ members, self, mesh, endpoints: new Map() });
    assert.deepEqual(dropped, []);
    assert.deepEqual(
      peers.map((p) => [p.memberId, p.meshIp, p.config]),
      [
        [2n, "10.77.0.2", { publicKey: hexToWgBase64(key(2)), allowedIps: ["10.77.0.2/32"] }],
        [3n, "10.77.0.3", { publicKey: hexToWgBase64(key(3)), allowedIps: ["10.77.0.3/32"] }],
      ],
    );
  });

  test("endpoints by app id (any case) and keepalive when set", () => {
    const peer = member(2);
    const endpoints = new Map([[peer.appId.toLowerCase(), "node-2.example:51820"]]);
    const { peers } = computeDesiredPeers({
      members: [self, peer, member(3)],
      self,
      mesh,
      endpoints,
      keepaliveSeconds: 15,
    });
    assert.deepEqual(peers[0]!.config, {
      publicKey: hexToWgBase64(key(2)),
      allowedIps: ["10.77.0.2/32"],
      endpoint: "node-2.example:51820",
      keepaliveSeconds: 15,
    });
    assert.equal(peers[1]!.config.endpoint, undefined);
    assert.ok(!("endpoint" in peers[1]!.config), "no endpoint property at all without an endpoint");
  });

  test("keepalive 0 sets none", () => {
    const { peers } = computeDesiredPeers({
      members: [self, member(2)],
      self,
      mesh,
      endpoints: new Map(),
      keepaliveSeconds: 0,
    });
    assert.ok(!("keepaliveSeconds" in peers[0]!.config));
  });

  test("a lone member wants no peers", () => {
    assert.deepEqual(computeDesiredPeers({ members: [self], self, mesh, endpoints: new Map() }), {
      peers: [],
      dropped: [],
    });
  });

  test("bad records are dropped with a reason and never stop the others", () => {
    const members = [
      self,
      member(2, { wireguardKey: key(0) }),
      member(3, { wireguardKey: "0x1234" }),
      member(4, { wireguardKey: self.wireguardKey }),
      member(5, { meshIp: ipToNumber("10.78.0.5") }),
      member(6, { meshIp: ipToNumber("10.77.255.255") }),
      member(7, { meshIp: self.meshIp }),
      member(8),
      member(9, { wireguardKey: key(8) }),
      member(10, { meshIp: ipToNumber("10.77.0.8") }),
      member(11, { wireguardKey: key(8).toUpperCase().replace("0X", "0x") as Hex }),
      member(12),
    ];
    assert.deepEqual(outcome(members), {
      kept: [8n, 12n],
      dropped: [
        [2n, "WireGuard key is zero or malformed"],
        [3n, "WireGuard key is zero or malformed"],
        [4n, "WireGuard key equals this node's own key"],
        [5n, "mesh address 10.78.0.5 is not a host address of the mesh"],
        [6n, "mesh address 10.77.255.255 is not a host address of the mesh"],
        [7n, "mesh address 10.77.0.1 is this node's own address"],
        [9n, "WireGuard key already belongs to member 8"],
        [10n, "mesh address 10.77.0.8 already belongs to member 8"],
        [11n, "WireGuard key already belongs to member 8"],
      ],
    });
  });

  test("on a duplicate key the earliest member keeps it, whatever the input order", () => {
    const members = [member(9, { wireguardKey: key(5) }), self, member(5)];
    assert.deepEqual(outcome(members), {
      kept: [5n],
      dropped: [[9n, "WireGuard key already belongs to member 5"]],
    });
  });
});
