// The mesh layer across memberships, on the in-memory backend (the mesh socket on loopback: mesh IP
// a.b.c.d is bound at 127.b.c.d) and a chain that does not answer (every CSK step fails and is retried),
// with a membership view of the test's own. Regressions: a mesh runtime that ended with an error
// (`stopped` rejected) left the layer holding it, so the next membership never started a runtime, and
// the membership's socket factory stayed open; and (issue 15) a newcomer started its socket factory
// and guarded its mesh port only once its member id was read back, a few hundred ms each under load,
// while its peers waited to judge it.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { createKmsRoot, createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { ipToNumber } from "@attestmesh/shared/mesh/cidr.ts";
import { Registry } from "prom-client";
import { bytesToHex, createPublicClient, custom } from "viem";
import { hardhat } from "viem/chains";
import type { ChainContext } from "../../src/chain/client.ts";
import { createClusterReader } from "../../src/chain/cluster.ts";
import type { MembershipFollower, MembershipSnapshot } from "../../src/chain/follower.ts";
import { parseConfig } from "../../src/config.ts";
import { deriveNodeKeys } from "../../src/keys.ts";
import { createMeshLayer, type MeshLayer } from "../../src/mesh/layer.ts";
import { createMeshMetrics } from "../../src/mesh/metrics.ts";
import { loadSodium, signingKeyFromSeed } from "../../src/meshnet/crypto.ts";
import { loopbackFor } from "../../src/meshnet/socket.ts";
import { createLocalSocketFactory, type SocketFactory } from "../../src/meshnet/socketFactory.ts";
import type { Member } from "../../src/model/member.ts";
import { createAttestedFollower } from "../../src/reattest/follower.ts";
import { createReattestMetrics } from "../../src/reattest/metrics.ts";
import { createStatusStore, type StatusStore } from "../../src/status.ts";
import { hexToWgBase64 } from "../../src/wireguard/keys.ts";
import {
  captureLogger,
  freePort,
  gossipHeartbeat,
  readsOver,
  simulatorKeySource,
  TEST_CLUSTER,
  TEST_SIDECAR_ENV,
  testMember,
  waitFor,
} from "../helpers.ts";

const MEMBER_ID = 5n;

/** 127.b.c.d (where loopback mode binds) → the mesh IP 10.b.c.d it stands for. */
const meshIpOf = (host: string) => `10.${host.split(".").slice(1).join(".")}`;

/** This member's record in the view, at `meshIp`. */
const ownRecord = (meshIp: string): Member => testMember(MEMBER_ID, { meshIp: ipToNumber(meshIp) });

/**
 * Peer re-attestation for a layer, so its runtime serves GET /attestation; nobody is peered, so nothing
 * is fetched or judged.
 */
const reattest = () => ({
  handler: async () => ({ status: 200, headers: {}, body: "{}\n" }),
  collateral: {
    describe: "none",
    get: async () => {
      throw new Error("no collateral in this test");
    },
  },
  metrics: createReattestMetrics(new Registry()),
});

type MeshLayerOptions = Parameters<typeof createMeshLayer>[0];

/** What one layer test shares: a sidecar's config and keys, a chain that is down, a view it sets. */
async function fixture() {
  const { logger, lines } = captureLogger();
  const config = parseConfig({
    ...TEST_SIDECAR_ENV,
    ATTESTMESH_RPC_URL: "http://127.0.0.1:1",
    ATTESTMESH_CLUSTER: TEST_CLUSTER.cluster,
    ATTESTMESH_MESH_PORT: String(await freePort()),
  });
  const keySource = simulatorKeySource(
    createSimulatedCvm({ kmsRoot: createKmsRoot(), appId: randomBytes(20) }),
  );
  const keys = await deriveNodeKeys(keySource);
  // A chain that does not answer: the runtime's CSK steps fail and are retried; its loops go on.
  const down = custom({
    request: async () => {
      throw new Error("the chain is down");
    },
  });
  const chain: ChainContext = {
    chainId: TEST_CLUSTER.chainId,
    chain: hardhat,
    cluster: TEST_CLUSTER.cluster,
    reads: readsOver(down),
    publicClient: createPublicClient({ chain: hardhat, transport: down }),
    wallet: undefined,
  };
  const reader = createClusterReader(chain.reads, chain.cluster);
  /** The membership view (certs/follower.ts), as the reconciler last synced it. */
  let view: MembershipSnapshot | undefined;
  const follower: MembershipFollower = {
    sync: async () => {
      if (view === undefined) throw new Error("no view");
      return view;
    },
    current: () => view,
    invalidate: () => {},
  };
  const setView = (members: readonly Member[] | undefined) => {
    view =
      members === undefined
        ? undefined
        : {
            block: 1n,
            blockHash: `0x${"00".repeat(32)}`,
            members: new Map(members.map((m) => [m.memberId, m])),
            changed: [],
            kind: "full",
          };
  };
  /** A layer over `status`, with this fixture's config, keys and logger. */
  const layerOf = (status: StatusStore, extra: Partial<MeshLayerOptions> = {}) =>
    createMeshLayer({
      config,
      keySource,
      status,
      metrics: createMeshMetrics(new Registry()),
      logger,
      ...extra,
    });
  /** Runs `layer`'s membership as MEMBER_ID until `signal` aborts; `attested`: with re-attestation's view. */
  const runIn = (layer: MeshLayer, signal: AbortSignal, attested = true) =>
    layer.runMembership({
      memberId: MEMBER_ID,
      chain,
      reader,
      follower,
      certified: async () => undefined,
      keys,
      signal,
      ...(attested
        ? {
            attested: createAttestedFollower(
              follower,
              () => layer.reattestation(),
              () => MEMBER_ID,
            ),
          }
        : {}),
    });
  return { logger, lines, config, keySource, keys, chain, reader, follower, setView, layerOf, runIn };
}

/**
 * The backend's port guard and a socket factory over loopback, watched together: the guard, like the
 * nftables table, covers one address once a call completes; every bind is checked against it, and so
 * is every guard that completes while sockets are open. A guard call completes when the test releases
 * it (`hold`) or at once.
 */
function watchedSockets() {
  const events: string[] = [];
  const violations: string[] = [];
  /** The address the guard covers now. */
  let guardedNow: string | undefined;
  /** Mesh IPs with a socket of this mesh open on them, and how many. */
  const open = new Map<string, number>();
  let holding = false;
  const held: Array<() => void> = [];
  /** When each connection (an attestation fetch) was asked for, ms since the epoch. */
  const connects: number[] = [];
  let created = 0;

  const opened = (meshIp: string, closed: (listener: () => void) => void) => {
    open.set(meshIp, (open.get(meshIp) ?? 0) + 1);
    closed(() => {
      const n = (open.get(meshIp) ?? 1) - 1;
      if (n === 0) open.delete(meshIp);
      else open.set(meshIp, n);
    });
  };
  const checkBind = (kind: string, host: string) => {
    const meshIp = meshIpOf(host);
    events.push(`${kind} ${meshIp}`);
    if (guardedNow !== meshIp) violations.push(`${kind} on ${meshIp} while the guard covers ${guardedNow}`);
    return meshIp;
  };

  const guardPort = async (meshIp: string) => {
    events.push(`guard ${meshIp}`);
    if (holding) await new Promise<void>((resolve) => held.push(resolve));
    for (const address of open.keys()) {
      if (address !== meshIp)
        violations.push(`guard moved to ${meshIp} while a socket is open on ${address}`);
    }
    guardedNow = meshIp;
    events.push(`guarded ${meshIp}`);
  };
  const socketFactory = (): SocketFactory => {
    created += 1;
    const id = created;
    events.push(`factory ${id}`);
    const local = createLocalSocketFactory();
    return {
      async udp(host, port) {
        const meshIp = checkBind("udp", host);
        const socket = await local.udp(host, port);
        opened(meshIp, (listener) => socket.once("close", listener));
        return socket;
      },
      async listen(host, port) {
        const meshIp = checkBind("listen", host);
        const server = await local.listen(host, port);
        opened(meshIp, (listener) => server.once("close", listener));
        return server;
      },
      connect: (host, port, timeoutMs) => {
        connects.push(Date.now());
        return local.connect(host, port, timeoutMs);
      },
      warm: () => void events.push(`warm ${id}`),
      close: async () => void events.push(`close ${id}`),
    };
  };
  return {
    events,
    violations,
    connects,
    guardPort,
    socketFactory,
    /** Guard calls from now on wait for `release`. */
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      for (const resolve of held.splice(0)) resolve();
    },
    binds: () => events.filter((e) => e.startsWith("udp ") || e.startsWith("listen ")),
  };
}

describe("the mesh layer", () => {
  test("a runtime that ended with an error is logged and let go: the next membership starts its own", async () => {
    const { logger, lines, setView, layerOf, runIn } = await fixture();
    setView([ownRecord("10.77.0.5")]);
    // The real status store behind a consumer that fails while `broken`: the runtime's loop publishes
    // through it, so a failure there ends the loop and rejects the runtime's `stopped`.
    const store = createStatusStore({ logger });
    let broken = false;
    const status: StatusStore = {
      get: () => store.get(),
      update(patch) {
        if (broken) throw new Error("a status consumer failed");
        store.update(patch);
      },
    };
    status.update({ memberId: MEMBER_ID, meshIp: "10.77.0.5", interfaceUp: true });
    const layer = layerOf(status);
    const membership = (signal: AbortSignal) => runIn(layer, signal, false);
    const socketsOpened = () => lines().filter((l) => l.msg === "mesh socket open").length;

    const first = new AbortController();
    const firstRun = membership(first.signal);
    await waitFor("the first runtime", () => status.get().meshRunning);
    assert.equal(socketsOpened(), 1);
    broken = true;
    layer.wake();
    // The runtime's loop meets the failing consumer on this tick and ends with its error; the layer's
    // last publish meets it too, so the first membership ends with it.
    await assert.rejects(firstRun, /a status consumer failed/);
    broken = false;
    const logged = lines().find((l) => l.msg.startsWith("mesh runtime ended with an error"));
    assert.ok(logged !== undefined, "the runtime's error is logged");
    assert.equal(logged.level, 50, "at error level");
    assert.match(
      String((logged.err as { message?: string } | undefined)?.message),
      /a status consumer failed/,
    );
    first.abort();

    const second = new AbortController();
    let secondSettled = false;
    const secondRun = membership(second.signal).finally(() => {
      secondSettled = true;
    });
    await waitFor("the second membership's own runtime", () => socketsOpened() === 2);
    assert.equal(status.get().meshRunning, true);
    assert.equal(secondSettled, false, "the second membership runs until its signal aborts");
    second.abort();
    await secondRun;
    assert.equal(status.get().meshRunning, false, "the layer lets the stopped runtime go");
  });

  test("before the member id: the membership's socket factory is warm and the claimed address guarded; the runtime binds only once the view confirms the address, never an unguarded one", async () => {
    const { logger, setView, layerOf, runIn } = await fixture();
    const watch = watchedSockets();
    const status = createStatusStore({ logger });
    const layer = layerOf(status, {
      guardPort: watch.guardPort,
      socketFactory: watch.socketFactory,
      reattest: reattest(),
    });
    // The registration is submitted: the factory starts. It is included: the interface comes up with
    // the address the receipt claims, and the mesh port is guarded there, all before the member id.
    layer.prepare();
    layer.prepare();
    assert.deepEqual(watch.events, ["factory 1", "warm 1"], "one factory, warm, before the member id");
    status.update({ interfaceUp: true, meshIp: "10.77.0.66" });
    layer.interfaceUp("10.77.0.66");
    await waitFor("the claimed address guarded", () => watch.events.includes("guarded 10.77.0.66"));

    // Attacker: the receipt lied (the chain gave this member 10.77.0.9). The member id is read back and
    // the interface still carries the claim: neither a view without this member's record, nor one that
    // holds it at another address, lets the runtime bind or serve on the claimed address.
    status.update({ memberId: MEMBER_ID });
    const membership = new AbortController();
    const run = runIn(layer, membership.signal);
    await delay(150);
    setView([testMember(2n), ownRecord("10.77.0.9")]);
    await delay(150);
    assert.deepEqual(watch.binds(), [], "nothing bound on the claimed address");
    assert.equal(status.get().meshRunning, false);

    // The reconciler moves the interface to the view's address: the guard follows it (held back for a
    // while), and the runtime binds only once that guard is in place, through the warm factory.
    watch.hold();
    status.update({ meshIp: "10.77.0.9" });
    layer.interfaceUp("10.77.0.9");
    await delay(150);
    assert.deepEqual(watch.binds(), [], "nothing bound while the guard is being moved");
    watch.release();
    await waitFor("the runtime", () => status.get().meshRunning);
    const bindsAt = watch.events.indexOf("guarded 10.77.0.9");
    assert.ok(bindsAt >= 0);
    assert.deepEqual(
      watch.events.slice(bindsAt + 1).sort(),
      ["listen 10.77.0.9", "udp 10.77.0.9"],
      "the mesh socket and the attestation server, after the guard, on the confirmed address",
    );
    assert.equal(watch.events.filter((e) => e.startsWith("factory")).length, 1, "the prepared factory");

    // The interface comes up again at another address while the runtime holds its sockets (no chain
    // does this within a membership; a bug might): the guard stays where the sockets are.
    status.update({ meshIp: "10.77.0.10" });
    layer.interfaceUp("10.77.0.10");
    await delay(50);
    assert.ok(!watch.events.includes("guard 10.77.0.10"), "the guard stays on the bound address");

    membership.abort();
    await run;
    assert.deepEqual(watch.violations, [], "never a socket on an unguarded address");
    assert.equal(watch.events.at(-1), "close 1", "the membership's factory closes with it");
    // The runtime's sockets are closed: the guard follows the interface again.
    layer.interfaceUp("10.77.0.10");
    await waitFor("the guard moved", () => watch.events.includes("guarded 10.77.0.10"));
    assert.deepEqual(watch.violations, []);
  });

  test("a runtime never starts without this member id read back, even with the interface up at the view's address", async () => {
    const { logger, setView, layerOf, runIn } = await fixture();
    const watch = watchedSockets();
    const status = createStatusStore({ logger });
    const layer = layerOf(status, {
      guardPort: watch.guardPort,
      socketFactory: watch.socketFactory,
      reattest: reattest(),
    });
    setView([ownRecord("10.77.0.9")]);
    status.update({ interfaceUp: true, meshIp: "10.77.0.9" });
    layer.interfaceUp("10.77.0.9");
    // The layer runs a membership under an id the status does not hold (the cycle's was not read back,
    // or is another membership's): nothing binds.
    const membership = new AbortController();
    const run = runIn(layer, membership.signal);
    status.update({ memberId: MEMBER_ID + 1n });
    await delay(300);
    assert.deepEqual(watch.binds(), []);
    status.update({ memberId: MEMBER_ID });
    await waitFor("the runtime", () => status.get().meshRunning);
    assert.deepEqual(watch.binds().sort(), ["listen 10.77.0.9", "udp 10.77.0.9"]);
    membership.abort();
    await run;
    assert.deepEqual(watch.violations, []);
  });

  test("a socket factory started ahead that no membership took closes at shutdown", async () => {
    const { logger, layerOf } = await fixture();
    const watch = watchedSockets();
    const layer = layerOf(createStatusStore({ logger }), { socketFactory: watch.socketFactory });
    layer.prepare();
    await layer.close();
    assert.deepEqual(watch.events, ["factory 1", "warm 1", "close 1"]);
    // The next registration starts one of its own.
    layer.prepare();
    assert.deepEqual(watch.events.slice(3), ["factory 2", "warm 2"]);
    await layer.close();
  });

  test("a never-judged peer's signed liveness hurries its first attestation check: no wait for the 250 ms retry", async () => {
    // Issue 15: a newcomer's peers found its server not up yet and tried again 250 ms later, though its
    // heartbeats said it was up well before.
    const { logger, config, setView, layerOf, runIn } = await fixture();
    await loadSodium();
    const key = signingKeyFromSeed(randomBytes(32));
    const newcomer = testMember(2n, {
      meshIp: ipToNumber("10.77.0.2"),
      identityKey: bytesToHex(key.publicKey),
    });
    setView([ownRecord("10.77.0.5"), newcomer]);
    const watch = watchedSockets();
    const status = createStatusStore({ logger });
    // The newcomer is a WireGuard peer (scheduler.ts `peered`): it is checked at once, and nothing
    // listens on its address, so the check fails.
    status.update({
      memberId: MEMBER_ID,
      interfaceUp: true,
      meshIp: "10.77.0.5",
      peers: [
        {
          memberId: 2n,
          appId: newcomer.appId,
          meshIp: "10.77.0.2",
          publicKey: hexToWgBase64(newcomer.wireguardKey),
          endpoint: undefined,
          latestHandshake: 0,
        },
      ],
    });
    const layer = layerOf(status, {
      guardPort: watch.guardPort,
      socketFactory: watch.socketFactory,
      reattest: reattest(),
    });
    layer.interfaceUp("10.77.0.5");
    const membership = new AbortController();
    const run = runIn(layer, membership.signal);
    await waitFor(
      "the first check failed",
      () => layer.reattestation()?.get(2n)?.status === "unreachable",
      20_000,
      2,
    );
    const failedAt = Date.now();
    assert.equal(watch.connects.length, 1);
    // The newcomer's server comes up, and its heartbeat arrives from its mesh address.
    const socket = createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, loopbackFor("10.77.0.2"), resolve));
    const heartbeat = gossipHeartbeat(
      { ...TEST_CLUSTER, senderId: 2n, incarnation: 1n, epoch: 0n, holdsCsk: false },
      key.sign,
    );
    socket.send(heartbeat, config.meshPort, loopbackFor("10.77.0.5"));
    await waitFor("the check tried again", () => watch.connects.length >= 2, 2_000, 2);
    const [, again] = watch.connects;
    assert.ok(
      again !== undefined && again - failedAt < 150,
      `tried again ${again === undefined ? "never" : again - failedAt} ms after the failure; the retry alone waits 250 ms`,
    );
    socket.close();
    membership.abort();
    await run;
    key.destroy();
  });
});
