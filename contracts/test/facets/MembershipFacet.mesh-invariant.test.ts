// Mesh address allocation under random churn. A seeded run of register / leave / evict steps checks,
// after every step, that active members hold unique host addresses inside the CIDR, that the counters
// match the records, that MeshFull comes exactly when every host address is taken, and that each new
// member gets the address MeshAddress documents: its id's own offset, else the next free one, wrapping.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { type MeshCidr, numberToIp, parseMeshCidr } from "@attestmesh/shared/mesh/cidr.ts";
import { type Hex, parseEventLogs } from "viem";
import {
  type ClusterFixture,
  type SimulatedNode,
  setupCluster,
  signRegistration,
  simulatedNode,
} from "../../../test/helpers/cluster.ts";
import { catchRevert } from "../../../test/helpers/revert.ts";

const Status = { None: 0, Active: 1, Left: 2, Evicted: 3 } as const;

/** mulberry32: a tiny seeded PRNG, so a failing run replays from its seed. */
function prng(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    below: (n: number) => Math.floor(next() * n),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
  };
}

interface Tracked {
  readonly node: SimulatedNode;
  /** Whether its app id is currently allowed (an eviction disallows it). */
  allowed: boolean;
  /** Its active member id, if any. */
  activeId: bigint | null;
}

function hostsOf(cidr: MeshCidr): number {
  return 2 ** (32 - cidr.prefixLength) - 2;
}

/** The host offset MeshAddress must hand to member `memberId` given the offsets in use. */
function expectedOffset(memberId: bigint, used: ReadonlySet<number>, hosts: number): number | null {
  const first = Number((memberId - 1n) % BigInt(hosts)) + 1;
  for (let i = 0; i < hosts; i++) {
    const offset = ((first - 1 + i) % hosts) + 1;
    if (!used.has(offset)) return offset;
  }
  return null;
}

function signLeave(fx: ClusterFixture, node: SimulatedNode, memberId: bigint): Promise<Hex> {
  return node.memberAccount.signTypedData({
    domain: memberDomain(fx.chainId, fx.deployed.diamond),
    types: memberTypes,
    primaryType: "Leave",
    message: { memberId },
  });
}

/** A simulated cluster driver that keeps a model of the mesh next to the chain. */
function meshModel(fx: ClusterFixture, cidr: MeshCidr) {
  const hosts = hostsOf(cidr);
  const nodes: Tracked[] = [];
  /** Active member id → host offset. */
  const active = new Map<bigint, number>();
  const stats = { registered: 0, meshFull: 0, left: 0, evicted: 0, wrapped: 0, collisions: 0 };

  async function register(tracked: Tracked, context: string) {
    if (!tracked.allowed) {
      await fx.owner.write.addAppId([tracked.node.appId]);
      tracked.allowed = true;
    }
    const { node } = tracked;
    const nonce = await fx.owner.read.registrationNonce([node.appId]);
    const signature = await signRegistration(fx, node, { nonce });
    const [, , lastId] = await fx.owner.read.meshConfig();
    const memberId = lastId + 1n;
    const expected = expectedOffset(memberId, new Set(active.values()), hosts);
    const call = fx.relayer.write.register([
      node.proof,
      node.wireguardKey,
      node.identityKey,
      node.claims,
      signature,
    ]);
    if (active.size === hosts) {
      assert.equal(expected, null);
      const revert = await catchRevert(call);
      assert.equal(revert.errorName, "MeshFull", `${context}: a full mesh refuses with MeshFull`);
      stats.meshFull++;
      return;
    }
    let hash: Hex;
    try {
      hash = await call;
    } catch (error) {
      const revert = await catchRevert(Promise.reject(error));
      assert.fail(
        `${context}: registering member ${memberId} with ${active.size} of ${hosts} addresses in use ` +
          `(free offset ${expected} expected) reverted with ${revert.errorName ?? revert.raw}`,
      );
    }
    const receipt = await fx.publicClient.waitForTransactionReceipt({ hash });
    const [event] = parseEventLogs({ abi: clusterAbi, logs: receipt.logs, eventName: "MemberRegistered" });
    assert.equal(event?.args.memberId, memberId, `${context}: member id`);
    const offset = event.args.meshIp - cidr.base;
    assert.equal(
      offset,
      expected,
      `${context}: member ${memberId} got ${numberToIp(event.args.meshIp)} (offset ${offset}), expected offset ${expected}`,
    );
    if (memberId > BigInt(hosts)) stats.wrapped++;
    if (offset !== Number((memberId - 1n) % BigInt(hosts)) + 1) stats.collisions++;
    active.set(memberId, offset);
    tracked.activeId = memberId;
    stats.registered++;
  }

  async function leave(tracked: Tracked) {
    const memberId = tracked.activeId!;
    await fx.relayer.write.leaveCluster([memberId, await signLeave(fx, tracked.node, memberId)]);
    active.delete(memberId);
    tracked.activeId = null;
    stats.left++;
  }

  async function evict(tracked: Tracked, reason: number) {
    const memberId = tracked.activeId!;
    await fx.owner.write.evict([memberId, reason]);
    active.delete(memberId);
    tracked.activeId = null;
    tracked.allowed = false;
    stats.evicted++;
  }

  /** The invariants, read from the chain in one page of the directory. */
  async function check(context: string) {
    const [meshBase, prefixLength, lastId, activeMembers] = await fx.owner.read.meshConfig();
    assert.deepEqual([meshBase, prefixLength], [cidr.base, cidr.prefixLength]);
    const [records, nextId] = await fx.owner.read.members([1n, lastId]);
    assert.equal(nextId, 0n);
    assert.equal(records.length, Number(lastId));
    const activeRecords = records.filter((m) => m.status === Status.Active);
    assert.equal(
      activeMembers,
      BigInt(activeRecords.length),
      `${context}: activeMembers counts the active records`,
    );
    assert.ok(activeRecords.length <= hosts, `${context}: more active members than host addresses`);
    const ips = new Set<number>();
    for (const m of activeRecords) {
      const offset = m.meshIp - cidr.base;
      assert.ok(
        offset >= 1 && offset <= hosts,
        `${context}: member ${m.memberId} has ${numberToIp(m.meshIp)}, outside the hosts of the CIDR`,
      );
      assert.ok(!ips.has(m.meshIp), `${context}: ${numberToIp(m.meshIp)} is held by two active members`);
      ips.add(m.meshIp);
    }
    assert.deepEqual(
      new Map(activeRecords.map((m) => [m.memberId, m.meshIp - cidr.base])),
      active,
      `${context}: the chain's active members are the model's`,
    );
  }

  /** One random step: mostly registrations (so the mesh fills), otherwise a departure. */
  async function step(random: ReturnType<typeof prng>, poolSize: number, context: string) {
    const actives = nodes.filter((t) => t.activeId !== null);
    const roll = random.next();
    if (actives.length === 0 || roll < 0.55) {
      const idle = nodes.filter((t) => t.activeId === null);
      const tracked =
        idle.length === 0 || (nodes.length < poolSize && random.next() < 0.3)
          ? newTracked()
          : random.pick(idle);
      await register(tracked, context);
    } else if (roll < 0.8) {
      await leave(random.pick(actives));
    } else {
      await evict(random.pick(actives), 1 + random.below(200));
    }
  }

  function newTracked(): Tracked {
    const tracked: Tracked = { node: simulatedNode(fx.kmsRoot), allowed: false, activeId: null };
    nodes.push(tracked);
    return tracked;
  }

  return { hosts, active, stats, register, leave, evict, check, step, newTracked, nodes };
}

describe("mesh allocation invariants in a /28 (14 hosts)", async () => {
  const cidr = parseMeshCidr("10.9.0.0/28");
  const fx = await setupCluster({ meshCidr: "10.9.0.0/28" });

  it("keeps addresses unique, inside the CIDR and counted through 150 random register/leave/evict steps", async () => {
    const seed = 0x28a11c;
    const random = prng(seed);
    const mesh = meshModel(fx, cidr);
    await mesh.check("start");
    for (let i = 1; i <= 150; i++) {
      const context = `seed ${seed}, step ${i}`;
      await mesh.step(random, 24, context);
      await mesh.check(context);
    }
    // The run must have exercised what it claims to: a full mesh, wrapped ids and collisions.
    assert.ok(mesh.stats.meshFull > 0, `the mesh never filled: ${JSON.stringify(mesh.stats)}`);
    assert.ok(mesh.stats.wrapped > 0, `member ids never wrapped: ${JSON.stringify(mesh.stats)}`);
    assert.ok(mesh.stats.collisions > 0, `no first choice was ever taken: ${JSON.stringify(mesh.stats)}`);
  });
});

describe("mesh allocation wrap-around in a /28", async () => {
  const cidr = parseMeshCidr("10.9.0.0/28");
  const fx = await setupCluster({ meshCidr: "10.9.0.0/28" });

  it("gives a free low address to a member whose first choice and every address above it are taken, instead of MeshFull", async () => {
    // Regression for the false MeshFull of small meshes: MeshAddress.allocate used to count the rest of
    // a 256-offset bitmap word as scanned, which exceeded the 14 hosts of a /28 (any of /25 to /28)
    // before the scan wrapped to offset 1, so a member whose first choice and everything above it were
    // taken got MeshFull with a lower address free.
    const mesh = meshModel(fx, cidr);
    const trackedByOffset = new Map<number, Tracked>();
    for (let i = 1; i <= 14; i++) {
      const tracked = mesh.newTracked();
      await mesh.register(tracked, `fill ${i}`);
      trackedByOffset.set(i, tracked);
    }
    await mesh.check("full");
    await mesh.leave(trackedByOffset.get(14)!); // offset 14 free
    await mesh.register(mesh.newTracked(), "member 15 (first choice 1 taken, takes 14)");
    await mesh.leave(trackedByOffset.get(1)!); // offset 1 free, the only one
    await mesh.check("one free address, below every first choice to come");
    await mesh.register(mesh.newTracked(), "member 16 (first choice 2 taken, must wrap to 1)");
    await mesh.check("full again");
    assert.equal(mesh.active.get(16n), 1);
  });
});

describe("mesh allocation invariants in a /16", async () => {
  const cidr = parseMeshCidr("10.77.0.0/16");
  const fx = await setupCluster({ meshCidr: "10.77.0.0/16" });

  it("keeps addresses unique, inside the CIDR and counted through 40 random steps", async () => {
    const seed = 0x16f00d;
    const random = prng(seed);
    const mesh = meshModel(fx, cidr);
    for (let i = 1; i <= 40; i++) {
      const context = `seed ${seed}, step ${i}`;
      await mesh.step(random, 30, context);
      await mesh.check(context);
    }
    assert.ok(mesh.stats.registered >= 15, `too few registrations: ${JSON.stringify(mesh.stats)}`);
    assert.ok(mesh.stats.left + mesh.stats.evicted > 0);
  });
});
