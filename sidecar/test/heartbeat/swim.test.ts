// SWIM liveness between three services over real UDP sockets (the loopback mesh mode): peers become
// live and the mesh converges; a stopped peer is suspected, then declared dead, and the rest converge
// without it; events keep the heartbeat service's order. Attackers try and fail: a datagram signed by
// the wrong key, a statement forged in a real member's datagram, an alive statement about someone else,
// and a real member's false verdict about another, which its subject refutes. (The simulator at scale:
// devnet/test/sim/liveness.test.ts.)
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Address, bytesToHex, getAddress } from "viem";
import type { HeartbeatEvent } from "../../src/heartbeat/service.ts";
import { createSwimService, type LivenessService } from "../../src/heartbeat/swim.ts";
import {
  encodeLiveness,
  type LivenessMessage,
  ProbeKind,
  type Statement,
  StatementKind,
  signStatement,
} from "../../src/heartbeat/swimCodec.ts";
import { loadSodium, randomBytes, type SigningKey, signingKeyFromSeed } from "../../src/meshnet/crypto.ts";
import { directoryFrom } from "../../src/meshnet/directory.ts";
import { type MeshSocket, openMeshSocket } from "../../src/meshnet/socket.ts";
import type { Member } from "../../src/model/member.ts";
import { freePort, TEST_CLUSTER, waitFor } from "../helpers.ts";

const IDS = [1n, 2n, 3n, 4n];

describe("SWIM liveness over UDP", () => {
  let members = new Map<bigint, Member>();
  const directory = directoryFrom(() => members);
  const sockets: MeshSocket[] = [];
  const services = new Map<bigint, LivenessService>();
  const controllers = new Map<bigint, AbortController>();
  const events = new Map<bigint, HeartbeatEvent[]>();
  const keys = new Map<bigint, SigningKey>();
  const attacker = { key: undefined as unknown as SigningKey };
  let port: number;

  /** A datagram from `sender` (signed with `signer`, default its own key) to node 1. */
  const datagram = (
    sender: bigint,
    statements: Statement[],
    signer?: SigningKey,
    fields: Partial<LivenessMessage> = {},
  ) =>
    encodeLiveness(
      {
        ...TEST_CLUSTER,
        senderId: sender,
        kind: ProbeKind.Gossip,
        origin: 0n,
        target: 0n,
        seq: 0,
        incarnation: 1n,
        epoch: 0n,
        holdsCsk: false,
        digest: 0n,
        timestampMs: BigInt(Date.now()),
        statements,
        ...fields,
      },
      (signer ?? keys.get(sender)!).sign,
    );
  const from = (id: bigint) => ({ address: `10.98.0.${id}`, port });
  /** Every result node 1 reported (what the runtime turns into metrics and drop logs). */
  const reported: string[] = [];

  before(async () => {
    await loadSodium();
    port = await freePort();
    attacker.key = signingKeyFromSeed(randomBytes(32));
    for (const id of IDS) {
      const key = signingKeyFromSeed(randomBytes(32));
      keys.set(id, key);
      members.set(id, {
        memberId: id,
        appId: getAddress(`0x${id.toString(16).padStart(40, "0")}`) as Address,
        memberKey: getAddress(`0x${id.toString(16).padStart(40, "0")}`) as Address,
        wireguardKey: `0x${"22".repeat(32)}`,
        identityKey: bytesToHex(key.publicKey),
        meshIp: (10 << 24) + (98 << 16) + Number(id),
        status: "active",
        registeredAt: 0,
      });
    }
    // Member 4 is on chain but never runs: it is probed, never live, never suspected.
    for (const id of [1n, 2n, 3n]) {
      const socket = await openMeshSocket({ mode: "loopback", meshIp: `10.98.0.${id}`, port });
      sockets.push(socket);
      const service = createSwimService({
        self: id,
        cluster: TEST_CLUSTER,
        key: keys.get(id)!,
        directory,
        send: (d, ip, p) => socket.send(d, ip, p),
        port,
        intervalMs: 100,
        suspicionMs: 600,
        maxSkewMs: 5000,
        csk: () => ({ epoch: 0n, holds: id === 1n }),
        ...(id === 1n
          ? {
              onReceived: (r: { ok: boolean; reason?: string }) =>
                reported.push(r.ok ? "accepted" : r.reason!),
            }
          : {}),
      });
      socket.onMessage((d, f) => service.handle(d, f));
      const log: HeartbeatEvent[] = [];
      events.set(id, log);
      service.onEvent((e) => log.push(e));
      services.set(id, service);
    }
    for (const [id, service] of services) {
      const controller = new AbortController();
      controllers.set(id, controller);
      service.start(controller.signal);
    }
  });

  after(async () => {
    for (const c of controllers.values()) c.abort();
    for (const s of sockets) await s.close();
  });

  test("every node hears the others, the mesh converges, and what they say of the CSK is kept", async () => {
    await waitFor("all converged with two live peers", () =>
      [...services.values()].every((s) => s.converged() && s.live().length === 2),
    );
    assert.deepEqual(services.get(1n)!.live(), [2n, 3n]);
    await waitFor("node 2 to have heard node 1 directly", () => services.get(2n)!.report(1n) !== undefined);
    const peers = services.get(2n)!.peers();
    assert.deepEqual(
      peers.map((p) => [p.memberId, p.live]),
      [
        [1n, true],
        [3n, true],
        [4n, false],
      ],
    );
    assert.deepEqual(services.get(2n)!.report(1n), { epoch: 0n, holdsCsk: true });
    assert.equal(services.get(1n)!.stateOf(4n), undefined, "a member that never ran is not suspected");
    const log = events.get(1n)!;
    assert.ok(log.some((e) => e.type === "peer-live" && e.memberId === 2n));
    assert.ok(log.some((e) => e.type === "converged"));
  });

  /** Member 3's signed verdict that `subject` at `incarnation` is dead. */
  const deadVerdictBy3 = (subject: bigint, incarnation: bigint) =>
    signStatement(
      TEST_CLUSTER,
      { kind: StatementKind.Dead, subject, incarnation, reporter: 3n },
      keys.get(3n)!.sign,
    );

  test("a datagram signed by another key than the sender's on-chain one counts for nothing", () => {
    const node = services.get(1n)!;
    const before = node.incarnation();
    const dead = deadVerdictBy3(1n, before);
    const r = node.handle(datagram(3n, [dead], attacker.key), from(3n));
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, "bad-signature");
    assert.equal(reported.at(-1), "bad-signature", "the refusal is reported (metrics, drop log)");
    assert.ok(reported.includes("accepted"));
    assert.equal(node.incarnation(), before, "the statement inside was not applied");
    // From another address than the member's mesh IP: refused before the signature.
    const wrong = node.handle(datagram(3n, []), from(2n));
    assert.equal(!wrong.ok && wrong.reason, "wrong-source");
  });

  test("a datagram counts once: the same bytes again are a replay", () => {
    const node = services.get(1n)!;
    const bytes = datagram(3n, [], undefined, { incarnation: services.get(3n)!.incarnation() });
    const first = node.handle(bytes, from(3n));
    assert.equal(first.ok, true);
    const again = node.handle(bytes, from(3n));
    assert.equal(!again.ok && again.reason, "replay");
  });

  test("a statement forged inside a real member's datagram spoils the whole datagram", () => {
    const node = services.get(1n)!;
    const forged = signStatement(
      TEST_CLUSTER,
      { kind: StatementKind.Dead, subject: 2n, incarnation: 1n << 62n, reporter: 3n },
      attacker.key.sign,
    );
    const r = node.handle(datagram(3n, [forged]), from(3n));
    assert.equal(!r.ok && r.reason, "bad-signature");
    assert.equal(node.stateOf(2n), "alive");
    assert.ok(node.live().includes(2n));
  });

  test("nobody can say another member is alive: an alive statement about 4 by 3 does not parse", () => {
    const node = services.get(1n)!;
    const bytes = datagram(3n, [
      signStatement(
        TEST_CLUSTER,
        { kind: StatementKind.Suspect, subject: 4n, incarnation: 1n, reporter: 3n },
        keys.get(3n)!.sign,
      ),
    ]);
    bytes[93] = StatementKind.Alive; // the statement's kind byte: now "4 is alive, says 3"
    const r = node.handle(bytes, from(3n));
    assert.equal(!r.ok && r.reason, "malformed");
    assert.equal(node.stateOf(4n), undefined);
    assert.ok(!node.live().includes(4n));
  });

  test("a real member's false dead verdict is refuted by its subject, which stays live everywhere", async () => {
    const node = services.get(1n)!;
    const victim = services.get(2n)!;
    const inc = victim.incarnation();
    const verdict = deadVerdictBy3(2n, inc);
    const r = node.handle(datagram(3n, [verdict]), from(3n));
    assert.equal(r.ok, true);
    assert.equal(node.stateOf(2n), "dead", "a signed verdict by a member counts");
    await waitFor(
      "2 to refute with a higher incarnation and be live again at 1 and 3",
      () =>
        victim.incarnation() > inc &&
        node.stateOf(2n) === "alive" &&
        services.get(3n)!.stateOf(2n) === "alive",
    );
    // The old verdict, replayed, is below 2's new incarnation: nothing changes.
    const again = node.handle(datagram(3n, [verdict]), from(3n));
    assert.equal(again.ok, true);
    assert.equal(node.stateOf(2n), "alive");
    await waitFor("the mesh to converge again", () =>
      [...services.values()].every((s) => s.converged() && s.live().length === 2),
    );
  });

  test("a stopped peer is suspected, declared dead, and the rest converge without it", async () => {
    controllers.get(3n)!.abort();
    await waitFor("1 and 2 to lose 3 and converge again", () =>
      [1n, 2n].every((id) => {
        const s = services.get(id)!;
        return s.live().length === 1 && s.converged() && s.stateOf(3n) === "dead";
      }),
    );
    const log = events.get(1n)!;
    assert.ok(
      log.some((e) => e.type === "peer-lost" && e.memberId === 3n),
      "peer-lost published",
    );
    for (const id of [2n, 3n]) {
      const joined = log.findIndex((e) => e.type === "peer-joined" && e.peer.memberId === id);
      const live = log.findIndex((e) => e.type === "peer-live" && e.memberId === id);
      assert.ok(joined >= 0 && joined < live, `peer ${id} joined (${joined}) before it went live (${live})`);
    }
    // The stopped service let every peer go: lost first, then left.
    const stopped = events
      .get(3n)!
      .map((e) =>
        e.type === "peer-joined" || e.type === "peer-left"
          ? `${e.type}:${e.peer.memberId}:${e.peer.live}`
          : "memberId" in e
            ? `${e.type}:${e.memberId}`
            : e.type,
      );
    assert.deepEqual(stopped.slice(-5), [
      "peer-lost:1",
      "peer-lost:2",
      "peer-left:1:false",
      "peer-left:2:false",
      "peer-left:4:false",
    ]);
    const count = events.get(3n)!.length;
    services.get(3n)!.tick();
    assert.equal(events.get(3n)!.length, count, "a stopped service publishes nothing more");
  });

  test("an evicted member is forgotten at once", () => {
    const record = members.get(2n)!;
    members = new Map(members);
    members.set(2n, { ...record, status: "evicted" });
    const node = services.get(1n)!;
    node.tick();
    assert.deepEqual(node.live(), []);
    assert.deepEqual(
      node.peers().map((p) => p.memberId),
      [3n, 4n],
    );
    assert.ok(events.get(1n)!.some((e) => e.type === "peer-left" && e.peer.memberId === 2n));
    const r = node.handle(datagram(2n, []), from(2n));
    assert.equal(!r.ok && r.reason, "unknown-member");
  });
});
