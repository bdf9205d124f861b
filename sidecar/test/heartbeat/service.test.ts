// Heartbeats between three services over real UDP sockets (the loopback mesh mode): peers become live,
// the mesh converges, a stopped peer is lost after the timeout and the others converge again without
// it; events are published in that order. (Which phase the node is in: test/phase.test.ts.)
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Address, bytesToHex, getAddress } from "viem";
import {
  createHeartbeatService,
  type HeartbeatEvent,
  type HeartbeatService,
} from "../../src/heartbeat/service.ts";
import { loadSodium, randomBytes, type SigningKey, signingKeyFromSeed } from "../../src/meshnet/crypto.ts";
import { directoryFrom } from "../../src/meshnet/directory.ts";
import { type MeshSocket, openMeshSocket } from "../../src/meshnet/socket.ts";
import type { Member } from "../../src/model/member.ts";
import { freePort, waitFor } from "../helpers.ts";

const CLUSTER = getAddress("0x5fbdb2315678afecb367f032d93f642f64180aa3");

describe("heartbeat service over UDP", () => {
  let members = new Map<bigint, Member>();
  // The follower hands out a new map on every change; the directory re-reads when the map changes.
  const directory = directoryFrom(() => members);
  const sockets: MeshSocket[] = [];
  const services = new Map<bigint, HeartbeatService>();
  const controllers = new Map<bigint, AbortController>();
  const events = new Map<bigint, HeartbeatEvent[]>();
  const keys = new Map<bigint, SigningKey>();
  let port: number;

  before(async () => {
    await loadSodium();
    port = await freePort();
    for (const id of [1n, 2n, 3n]) {
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
    for (const id of [1n, 2n, 3n]) {
      const socket = await openMeshSocket({ mode: "loopback", meshIp: `10.98.0.${id}`, port });
      sockets.push(socket);
      const service = createHeartbeatService({
        self: id,
        cluster: { chainId: 31337, cluster: CLUSTER },
        key: keys.get(id)!,
        directory,
        send: (d, ip, p) => socket.send(d, ip, p),
        port,
        intervalMs: 100,
        timeoutMs: 500,
        maxSkewMs: 500,
        csk: () => ({ epoch: 0n, holds: id === 1n }),
      });
      socket.onMessage((d, from) => service.handle(d, from));
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

  test("every node hears the others and the mesh converges", async () => {
    await waitFor("all converged with two live peers", () =>
      [...services.values()].every((s) => s.converged() && s.live().length === 2),
    );
    assert.deepEqual(services.get(1n)!.live(), [2n, 3n]);
    const peers = services.get(2n)!.peers();
    assert.deepEqual(
      peers.map((p) => [p.memberId, p.live, p.holdsCsk]),
      [
        [1n, true, true],
        [3n, true, false],
      ],
    );
    assert.ok(peers[0]!.lastHeartbeatMs! > Date.now() - 1000);
    const log = events.get(1n)!;
    assert.ok(log.some((e) => e.type === "peer-live" && e.memberId === 2n));
    await waitFor("a converged event", () => log.some((e) => e.type === "converged"));
  });

  test("a stopped peer is lost after the timeout; the rest converge without it", async () => {
    controllers.get(3n)!.abort();
    await waitFor("1 and 2 to lose 3 and converge again", () =>
      [1n, 2n].every((id) => {
        const s = services.get(id)!;
        return s.live().length === 1 && s.converged();
      }),
    );
    const log = events.get(1n)!;
    const lost = log.findIndex((e) => e.type === "peer-lost" && e.memberId === 3n);
    assert.ok(lost >= 0, "peer-lost published");
    // Events follow the state within one interval.
    await waitFor("the last convergence event to say converged", () => {
      const last = [...log].reverse().find((e) => e.type === "converged" || e.type === "diverged");
      return last?.type === "converged";
    });
  });

  test("an evicted member is forgotten at once and no longer sent to", async () => {
    const record = members.get(2n)!;
    members = new Map(members);
    members.set(2n, { ...record, status: "evicted" });
    services.get(1n)!.beat();
    assert.deepEqual(services.get(1n)!.live(), []);
    assert.deepEqual(
      services
        .get(1n)!
        .peers()
        .map((p) => p.memberId),
      [3n],
    );
  });
});
