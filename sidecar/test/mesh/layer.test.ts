// The mesh layer across memberships, on the in-memory backend (the mesh socket on loopback) and a chain
// that does not answer (every CSK step fails and is retried). Regression: a mesh runtime that ended with
// an error (`stopped` rejected) left the layer holding it, so the next membership never started a
// runtime, and the membership's socket factory stayed open.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { createKmsRoot, createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { Registry } from "prom-client";
import { createPublicClient, custom } from "viem";
import { hardhat } from "viem/chains";
import type { ChainContext } from "../../src/chain/client.ts";
import { createClusterReader } from "../../src/chain/cluster.ts";
import { createMembershipFollower } from "../../src/chain/follower.ts";
import { parseConfig } from "../../src/config.ts";
import { deriveNodeKeys } from "../../src/keys.ts";
import { createMeshLayer } from "../../src/mesh/layer.ts";
import { createMeshMetrics } from "../../src/mesh/metrics.ts";
import { createStatusStore, type StatusStore } from "../../src/status.ts";
import {
  captureLogger,
  freePort,
  readsOver,
  simulatorKeySource,
  TEST_CLUSTER,
  TEST_SIDECAR_ENV,
  waitFor,
} from "../helpers.ts";

const MEMBER_ID = 5n;

describe("the mesh layer", () => {
  test("a runtime that ended with an error is logged and let go: the next membership starts its own", async () => {
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
    const follower = createMembershipFollower({
      reads: chain.reads,
      cluster: chain.cluster,
      reader,
      confirmations: 0,
      logger,
    });
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
    const layer = createMeshLayer({
      config,
      keySource,
      status,
      metrics: createMeshMetrics(new Registry()),
      logger,
    });
    const membership = (signal: AbortSignal) =>
      layer.runMembership({
        memberId: MEMBER_ID,
        chain,
        reader,
        follower,
        certified: async () => undefined,
        keys,
        signal,
      });
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
});
