// New-head wake-ups. The watcher against a real `ws` server speaking eth_subscribe (one that can lie,
// flood, refuse and die on cue), then whole indexers against a real `hardhat node` process: woken by
// the node's own newHeads, a push leaves well inside the poll interval; flooded with fake heads, the
// follow steps stay bounded and nothing false is pushed; with the socket dead, polling keeps pushing;
// and the URL's credential never reaches a log line. While real heads wake it, the poll slows to the
// subscribed interval and is back at full cadence once the socket is killed; a silent socket's blocks
// are still pushed within the subscribed interval. The first Hardhat test is the short, seeded version
// of devnet/bench/push-latency.ts.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Socket, connect as tcpConnect } from "node:net";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { seededRng } from "@attestmesh/devnet/rng.ts";
import type { LogEnvelope } from "@attestmesh/shared/indexer/envelope.ts";
import { waitFor } from "@attestmesh/sidecar/testing/helpers.ts";
import { custom, http, keccak256, toHex } from "viem";
import { type WebSocket, WebSocketServer } from "ws";
import { watchHeads } from "../src/heads.ts";
import { createLogger } from "../src/log.ts";
import { createMetrics } from "../src/metrics.ts";
import { type HardhatChain, median, pushLatencies, startHardhatChain } from "./hardhatChain.ts";

const CREDENTIAL = "sk-live-4f1c9e27b8d0";
const SUBSCRIPTION = "0x5ec0a1";

/** The indexer's own logger (its redaction included), writing to a string the test reads. */
function capturedLogs() {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const text = () => chunks.join("");
  return {
    logger: createLogger({ level: "debug", destination }),
    text,
    lines: () =>
      text()
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as { level: number; msg: string; endpoint?: string }),
  };
}

/**
 * A WebSocket JSON-RPC endpoint that answers eth_subscribe("newHeads") and sends whatever heads the
 * test makes up. `refuse` answers the subscription with an error; `close` drops every socket and stops
 * listening; `restart` listens on the same port again.
 */
async function startFakeHeads(options: { refuse?: boolean } = {}) {
  let server: WebSocketServer;
  const sockets = new Set<WebSocket>();
  let subscribes = 0;
  let port = 0;
  let listening = false;
  const listen = async () => {
    server = new WebSocketServer({ host: "127.0.0.1", port });
    await once(server, "listening");
    listening = true;
    port = (server.address() as { port: number }).port;
    server.on("connection", (ws) => {
      sockets.add(ws);
      ws.on("close", () => sockets.delete(ws));
      ws.on("message", (data) => {
        const request = JSON.parse(data.toString()) as { id: number; method: string };
        if (request.method !== "eth_subscribe") return;
        subscribes += 1;
        ws.send(
          JSON.stringify(
            options.refuse === true
              ? { jsonrpc: "2.0", id: request.id, error: { code: -32601, message: "not supported" } }
              : { jsonrpc: "2.0", id: request.id, result: SUBSCRIPTION },
          ),
        );
      });
    });
  };
  await listen();
  const send = (message: unknown) => {
    const frame = JSON.stringify(message);
    for (const ws of sockets) ws.send(frame);
  };
  return {
    port: () => port,
    subscribes: () => subscribes,
    connected: () => sockets.size,
    /** A made-up head: any number, any hash; only a wake-up to the indexer. */
    head(subscription = SUBSCRIPTION) {
      send({
        jsonrpc: "2.0",
        method: "eth_subscription",
        params: {
          subscription,
          result: { number: "0xffffffff", hash: keccak256(toHex(String(Math.random()))) },
        },
      });
    },
    send,
    async close() {
      if (!listening) return;
      listening = false;
      for (const ws of sockets) ws.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    restart: listen,
  };
}

const FAST_REDIAL = { initialMs: 50, maxMs: 200, jitter: 0 } as const;

/** A TCP relay to the node's port for the WebSocket alone, so the test can kill the socket and keep the RPC. */
async function startRelay(port: number) {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = tcpConnect(port, "127.0.0.1");
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as { port: number }).port,
    async kill() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

/** The node's HTTP JSON-RPC, counting each method called through it. */
function countedRpc(port: number) {
  const calls = new Map<string, number>();
  const inner = http(`http://127.0.0.1:${port}`, { retryCount: 0 });
  return {
    transport: custom({
      async request(args: { method: string; params?: unknown }) {
        calls.set(args.method, (calls.get(args.method) ?? 0) + 1);
        return inner({}).request(args as never);
      },
    }),
    count: (method: string) => calls.get(method) ?? 0,
  };
}

const subscriptionUp = async (metrics: { registry: { metrics(): Promise<string> } }, up: 0 | 1) =>
  new RegExp(`^attestmesh_indexer_head_subscription_up ${up}$`, "m").test(await metrics.registry.metrics());

describe("the new-heads watcher against a real eth_subscribe server", () => {
  test("every head of its subscription is a wake-up; other subscriptions' and malformed frames are not", async () => {
    const server = await startFakeHeads();
    const metrics = createMetrics();
    let heads = 0;
    const watcher = watchHeads({
      url: `ws://127.0.0.1:${server.port()}`,
      onHead: () => heads++,
      logger: capturedLogs().logger,
      metrics,
    });
    try {
      await waitFor("subscribed", () => watcher.subscribed());
      server.head();
      server.head();
      server.head("0xother");
      server.send({ jsonrpc: "2.0", method: "eth_subscription", params: null });
      server.send("not json-rpc");
      server.send({ jsonrpc: "2.0", id: 1, result: "0xhijack" });
      server.head();
      await waitFor("three wake-ups", () => heads === 3);
      await delay(100);
      assert.equal(heads, 3);
      assert.match(await metrics.registry.metrics(), /^attestmesh_indexer_heads_total 3$/m);
      assert.match(await metrics.registry.metrics(), /^attestmesh_indexer_head_subscription_up 1$/m);
    } finally {
      await watcher.stop();
      await server.close();
    }
  });

  test("a dead endpoint is redialled with backoff: one warning and one count per outage, the credential never logged", async () => {
    const server = await startFakeHeads();
    const logs = capturedLogs();
    const metrics = createMetrics();
    let heads = 0;
    const url = `ws://user:${CREDENTIAL}@127.0.0.1:${server.port()}/v3/${CREDENTIAL}?apikey=${CREDENTIAL}`;
    const watcher = watchHeads({
      url,
      onHead: () => heads++,
      logger: logs.logger,
      metrics,
      backoff: FAST_REDIAL,
    });
    try {
      await waitFor("subscribed", () => watcher.subscribed());
      await server.close();
      await waitFor("down", () => !watcher.subscribed());
      await delay(1_000); // several redials fail meanwhile (every 200 ms at most)
      const warnings = logs.lines().filter((l) => l.level === 40);
      assert.equal(warnings.length, 1, "one warning for the whole outage");
      assert.equal(warnings[0]!.endpoint, `ws://127.0.0.1:${server.port()}`);
      assert.match(
        await metrics.registry.metrics(),
        /^attestmesh_indexer_head_subscription_outages_total 1$/m,
      );
      assert.match(await metrics.registry.metrics(), /^attestmesh_indexer_head_subscription_up 0$/m);

      await server.restart();
      await waitFor("subscribed again", () => watcher.subscribed());
      server.head();
      await waitFor("a wake-up after the outage", () => heads === 1);
      assert.ok(logs.lines().some((l) => l.msg === "new-heads subscription back"));

      await server.close(); // a second outage is counted and logged again
      await waitFor("down again", () => !watcher.subscribed());
      await waitFor("second warning", () => logs.lines().filter((l) => l.level === 40).length === 2);
      assert.match(
        await metrics.registry.metrics(),
        /^attestmesh_indexer_head_subscription_outages_total 2$/m,
      );
      assert.ok(server.subscribes() >= 1);
      assert.ok(!logs.text().includes(CREDENTIAL), "the URL's credential is in a log line");
    } finally {
      await watcher.stop();
      await server.close();
    }
  });

  test("a refused eth_subscribe is an outage, not a subscription", async () => {
    const server = await startFakeHeads({ refuse: true });
    const logs = capturedLogs();
    const metrics = createMetrics();
    const watcher = watchHeads({
      url: `ws://127.0.0.1:${server.port()}`,
      onHead: () => assert.fail("no wake-up without a subscription"),
      logger: logs.logger,
      metrics,
      backoff: FAST_REDIAL,
    });
    try {
      await waitFor("two refusals", () => server.subscribes() >= 2);
      server.head();
      await delay(100);
      assert.equal(watcher.subscribed(), false);
      assert.equal(logs.lines().filter((l) => l.level === 40).length, 1);
    } finally {
      await watcher.stop();
      await server.close();
    }
  });
});

describe("indexers against a real hardhat node", { timeout: 300_000 }, () => {
  let chain: HardhatChain;
  before(async () => {
    chain = await startHardhatChain();
  });
  after(() => chain?.stop());

  test("woken by the node's newHeads, each push leaves inside a 5 s poll interval without any poll; the credential never logged", async (t) => {
    const logs = capturedLogs();
    // Hardhat's WebSocket server takes any path and userinfo: a provider-style credential rides along.
    // No poll fires during the test, so every push was woken by a head, whatever the machine's load;
    // how fast is measured by devnet/bench/push-latency.ts, not asserted here.
    const indexer = await chain.indexer(
      {
        ATTESTMESH_INDEXER_WS_URL: `ws://key:${CREDENTIAL}@127.0.0.1:${chain.rpcPort}/v2/${CREDENTIAL}?apikey=${CREDENTIAL}`,
        ATTESTMESH_INDEXER_POLL_INTERVAL_MS: "3600000",
      },
      { logger: logs.logger },
    );
    await waitFor("subscribed", () => logs.lines().some((l) => l.msg === "new-heads subscription up"));
    const [latencies] = (await pushLatencies(chain, [indexer], 6, seededRng(1))) as [number[]];
    t.diagnostic(
      `block → push, ms: ${latencies.map((l) => l.toFixed(0)).join(", ")} (median ${median(latencies).toFixed(0)})`,
    );
    assert.ok(Math.max(...latencies) < 5_000, `every push inside 5 s: ${latencies.join(", ")}`);
    const health = (await (await fetch(`${indexer.url.replace("ws://", "http://")}/healthz`)).json()) as {
      ok: boolean;
      headSubscription: string;
    };
    assert.deepEqual([health.ok, health.headSubscription], [true, "up"]);
    assert.ok(logs.text().length > 0);
    assert.ok(!logs.text().includes(CREDENTIAL), "the URL's credential is in a log line");
    assert.ok(logs.text().includes(`"ws://127.0.0.1:${chain.rpcPort}"`), "the endpoint is logged by host");
  });

  test("a flood of fake heads costs a bounded number of follow steps and pushes nothing false", async (t) => {
    const fake = await startFakeHeads();
    const rpc = countedRpc(chain.rpcPort);
    const indexer = await chain.indexer(
      {
        ATTESTMESH_INDEXER_WS_URL: `ws://127.0.0.1:${fake.port()}`,
        ATTESTMESH_INDEXER_POLL_INTERVAL_MS: "3600000",
      },
      { transport: rpc.transport },
    );
    // The fake counting the eth_subscribe is not the indexer holding its answer: wait for the indexer's
    // own view, then let its start-up follow steps settle before counting.
    await waitFor("subscribed", async () =>
      /^attestmesh_indexer_head_subscription_up 1$/m.test(await indexer.metrics.registry.metrics()),
    );
    await indexer.tick();
    const stream = indexer.streams.get(chain.cluster.toLowerCase())!;
    const before = { steps: rpc.count("eth_blockNumber"), seq: stream.lastSeq() };
    for (let i = 0; i < 5_000; i++) fake.head();
    await waitFor(
      "every head received",
      async () => /heads_total 5000/.test(await indexer.metrics.registry.metrics()),
      15_000,
    );
    await indexer.tick(); // settles behind whatever the flood queued
    const floodSteps = rpc.count("eth_blockNumber") - before.steps;
    t.diagnostic(`5000 fake heads: ${floodSteps} follow steps`);
    assert.ok(floodSteps >= 1, "the flood woke the indexer");
    assert.ok(floodSteps <= 50, `5000 heads cost ${floodSteps} follow steps`);
    assert.equal(stream.lastSeq(), before.seq, "fake heads push nothing: no block of theirs has a log");

    // A real block after the flood is still pushed at once.
    const hash = await chain.event();
    fake.head();
    await waitFor("the real event pushed", () =>
      stream.lastSeq() > before.seq
        ? (stream.get(stream.lastSeq())!.envelope as LogEnvelope).txHash === hash
        : false,
    );
    await fake.close();
  });

  test("with the subscription dead, polling keeps pushing and /healthz stays ok; it resubscribes when the endpoint is back", async () => {
    const fake = await startFakeHeads();
    const logs = capturedLogs();
    const indexer = await chain.indexer(
      {
        ATTESTMESH_INDEXER_WS_URL: `ws://127.0.0.1:${fake.port()}`,
        ATTESTMESH_INDEXER_POLL_INTERVAL_MS: "500",
      },
      { logger: logs.logger, headBackoff: FAST_REDIAL },
    );
    await waitFor("subscribed", () => fake.subscribes() === 1);
    await fake.close();
    await waitFor("the outage logged", () => logs.lines().some((l) => l.level === 40));
    const stream = indexer.streams.get(chain.cluster.toLowerCase())!;
    for (let i = 0; i < 3; i++) {
      const hash = await chain.event();
      await waitFor(
        "the event pushed by polling",
        () => (stream.get(stream.lastSeq())?.envelope as LogEnvelope | undefined)?.txHash === hash,
        20_000,
      );
    }
    const base = indexer.url.replace("ws://", "http://");
    const health = (await (await fetch(`${base}/healthz`)).json()) as {
      ok: boolean;
      headSubscription: string;
    };
    assert.deepEqual([health.ok, health.headSubscription], [true, "down"]);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^attestmesh_indexer_head_subscription_outages_total 1$/m);
    assert.equal(logs.lines().filter((l) => l.level === 40).length, 1, "one warning per outage");

    await fake.restart();
    await waitFor("resubscribed", () => fake.subscribes() === 2, 20_000);
    // The fake counts the request; the indexer is subscribed once the answer is back.
    await waitFor("the indexer to hold the subscription again", async () =>
      /^attestmesh_indexer_head_subscription_up 1$/m.test(await indexer.metrics.registry.metrics()),
    );
    await fake.close();
  });

  test("while the node's heads wake it, the poll slows to the subscribed interval; with the socket killed, the full cadence is back at once", async (t) => {
    const relay = await startRelay(chain.rpcPort);
    t.after(() => relay.kill());
    const rpc = countedRpc(chain.rpcPort);
    const indexer = await chain.indexer(
      {
        ATTESTMESH_INDEXER_WS_URL: `ws://127.0.0.1:${relay.port}`,
        ATTESTMESH_INDEXER_POLL_INTERVAL_MS: "200",
        ATTESTMESH_INDEXER_SUBSCRIBED_POLL_INTERVAL_MS: "5000",
      },
      { transport: rpc.transport, headBackoff: FAST_REDIAL },
    );
    t.after(() => indexer.stop());
    await waitFor("subscribed", () => subscriptionUp(indexer.metrics, 1));
    await delay(400); // the poll scheduled before the subscription came up has run
    const window = async () => {
      const from = rpc.count("eth_blockNumber");
      await delay(2_000);
      return rpc.count("eth_blockNumber") - from;
    };
    const subscribed = await window(); // the chain is idle: no head, so every step is a poll

    // A block is still pushed at once: its head wakes a step.
    const stream = indexer.streams.get(chain.cluster.toLowerCase())!;
    const hash = await chain.event();
    const mined = performance.now();
    await waitFor(
      "the event pushed on its head, well before the 5 s safety poll",
      () => (stream.get(stream.lastSeq())?.envelope as LogEnvelope | undefined)?.txHash === hash,
      3_000,
      5,
    );
    const pushedMs = performance.now() - mined;

    await relay.kill();
    await waitFor("down", () => subscriptionUp(indexer.metrics, 0));
    const killed = await window();
    t.diagnostic(
      `RPC polls in 2 s: ${subscribed} subscribed (5 s interval), ${killed} after the socket was killed (200 ms); push on a head ${pushedMs.toFixed(0)} ms`,
    );
    assert.ok(subscribed <= 1, `${subscribed} polls in 2 s while subscribed, at a 5 s safety interval`);
    assert.ok(killed >= 6, `${killed} polls in 2 s after the socket was killed, at a 200 ms interval`);
    assert.match(await indexer.metrics.registry.metrics(), /^attestmesh_indexer_polls_total \d+$/m);
  });

  test("a silent subscription (up, answering pings, no head) costs at most the subscribed interval: the safety poll pushes the block", async (t) => {
    const fake = await startFakeHeads();
    t.after(() => fake.close());
    const indexer = await chain.indexer({
      ATTESTMESH_INDEXER_WS_URL: `ws://127.0.0.1:${fake.port()}`,
      ATTESTMESH_INDEXER_POLL_INTERVAL_MS: "200",
      ATTESTMESH_INDEXER_SUBSCRIBED_POLL_INTERVAL_MS: "1500",
    });
    t.after(() => indexer.stop());
    await waitFor("subscribed", () => subscriptionUp(indexer.metrics, 1));
    await delay(400); // past the full-cadence poll scheduled before the subscription came up
    const stream = indexer.streams.get(chain.cluster.toLowerCase())!;
    const hash = await chain.event();
    const mined = performance.now();
    await waitFor(
      "the event pushed by the safety poll",
      () => (stream.get(stream.lastSeq())?.envelope as LogEnvelope | undefined)?.txHash === hash,
      // The 1.5 s interval plus a loaded machine's step: bounded, where an unbounded interval never pushes.
      1_500 + 3_000,
      5,
    );
    t.diagnostic(`pushed ${(performance.now() - mined).toFixed(0)} ms after its block, no head sent`);
    assert.match(await indexer.metrics.registry.metrics(), /^attestmesh_indexer_heads_total 0$/m);
  });
});
