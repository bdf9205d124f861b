// The application API's bounded queues, hubs and peer-event diffs.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Address } from "viem";
import { createHub } from "../../src/api/hub.ts";
import { diffPeerViews } from "../../src/api/peerEvents.ts";
import { handshakeLiveness, type PeerLivenessEntry } from "../../src/api/providers.ts";
import { createBoundedQueue } from "../../src/api/queue.ts";
import type { SidecarStatus } from "../../src/status.ts";

describe("bounded queue", () => {
  test("first in, first out while it has room", () => {
    const q = createBoundedQueue<number>(3);
    q.push(1);
    q.push(2);
    assert.equal(q.length, 2);
    assert.equal(q.shift(), 1);
    q.push(3);
    q.push(4);
    assert.deepEqual([q.shift(), q.shift(), q.shift(), q.shift()], [2, 3, 4, undefined]);
    assert.equal(q.takeLost(), 0);
  });

  test("when full, the oldest item is dropped and counted; takeLost resets the count", () => {
    const q = createBoundedQueue<number>(3);
    for (let i = 1; i <= 10; i++) q.push(i);
    assert.equal(q.length, 3);
    assert.equal(q.takeLost(), 7);
    assert.equal(q.takeLost(), 0);
    assert.deepEqual([q.shift(), q.shift(), q.shift()], [8, 9, 10]);
    q.push(11);
    q.push(12);
    assert.deepEqual([q.shift(), q.shift()], [11, 12]);
  });

  test("wraps around its ring many times without losing order", () => {
    const q = createBoundedQueue<number>(4);
    const out: number[] = [];
    for (let i = 0; i < 1000; i++) {
      q.push(i);
      if (i % 3 === 0) out.push(q.shift()!);
    }
    while (q.length > 0) out.push(q.shift()!);
    const lost = q.takeLost();
    assert.equal(out.length + lost, 1000);
    for (let i = 1; i < out.length; i++) assert.ok(out[i]! > out[i - 1]!);
  });

  test("a capacity below 1 is refused", () => {
    assert.throws(() => createBoundedQueue(0), RangeError);
    assert.throws(() => createBoundedQueue(1.5), RangeError);
  });
});

describe("hub", () => {
  test("numbers items, retains the last few and replays those after `since`", () => {
    const hub = createHub<string>({ retain: 3, queueLength: 10 });
    for (const item of ["a", "b", "c", "d"]) hub.publish(item);
    assert.equal(hub.lastSeq(), 4);
    const all = hub.subscribe({ since: 0 });
    assert.deepEqual(
      [all.queue.shift(), all.queue.shift(), all.queue.shift(), all.queue.shift()],
      [{ seq: 2, item: "b" }, { seq: 3, item: "c" }, { seq: 4, item: "d" }, undefined],
    );
    const tail = hub.subscribe({ since: 3 });
    assert.deepEqual(tail.queue.shift(), { seq: 4, item: "d" });
    const live = hub.subscribe();
    assert.equal(live.queue.length, 0);
    hub.publish("e");
    assert.deepEqual(live.queue.shift(), { seq: 5, item: "e" });
  });

  test("a slow subscriber loses its own oldest items; a fast one loses nothing; closed ones get nothing", () => {
    const hub = createHub<number>({ retain: 0, queueLength: 2 });
    const slow = hub.subscribe();
    const fast = hub.subscribe();
    const gone = hub.subscribe();
    gone.close();
    const seen: number[] = [];
    fast.onReady(() => {
      for (let e = fast.queue.shift(); e !== undefined; e = fast.queue.shift()) seen.push(e.item);
    });
    for (let i = 1; i <= 5; i++) hub.publish(i);
    assert.deepEqual(seen, [1, 2, 3, 4, 5]);
    assert.equal(slow.queue.takeLost(), 3);
    assert.deepEqual([slow.queue.shift()?.item, slow.queue.shift()?.item], [4, 5]);
    assert.equal(gone.queue.length, 0);
    assert.equal(hub.subscribers(), 2);
  });
});

const peer = (memberId: bigint, live: boolean): PeerLivenessEntry => ({
  memberId,
  appId: `0x${memberId.toString().padStart(40, "0")}` as Address,
  meshIp: `10.77.0.${memberId}`,
  live,
  lastHeartbeatMs: live ? 1000 : undefined,
});

describe("peer events", () => {
  test("joins, liveness changes and departures, as tagged events", () => {
    assert.deepEqual(diffPeerViews([], []), []);
    const events = diffPeerViews(
      [peer(1n, true), peer(2n, false), peer(3n, true)],
      [peer(1n, false), peer(2n, true), peer(4n, true), peer(5n, false)],
    );
    assert.deepEqual(
      events.map((e) => `${e.kind}:${e.peer.memberId}`),
      ["down:1", "up:2", "joined:4", "up:4", "joined:5", "down:3", "left:3"],
    );
    assert.equal(events.find((e) => e.kind === "left")!.peer.live, false);
    assert.deepEqual(diffPeerViews([peer(1n, true)], [peer(1n, true)]), []);
  });

  test("handshake liveness: live while the latest handshake is younger than the limit", () => {
    const nowMs = 1_000_000_000;
    const status = {
      peers: [
        {
          memberId: 3n,
          appId: "0x3",
          meshIp: "10.77.0.3",
          publicKey: "k3",
          endpoint: undefined,
          latestHandshake: 0,
        },
        {
          memberId: 2n,
          appId: "0x2",
          meshIp: "10.77.0.2",
          publicKey: "k2",
          endpoint: undefined,
          latestHandshake: nowMs / 1000 - 10,
        },
        {
          memberId: 4n,
          appId: "0x4",
          meshIp: "10.77.0.4",
          publicKey: "k4",
          endpoint: undefined,
          latestHandshake: nowMs / 1000 - 200,
        },
      ],
    } as unknown as SidecarStatus;
    const liveness = handshakeLiveness(() => status, { now: () => nowMs });
    assert.equal(liveness.source, "wireguard-handshake");
    assert.deepEqual(
      liveness.peers().map((p) => [p.memberId, p.live, p.lastHeartbeatMs]),
      [
        [2n, true, nowMs - 10_000],
        [3n, false, undefined],
        [4n, false, nowMs - 200_000],
      ],
    );
  });
});

describe("message metrics", () => {
  test("created once per registry, so a retried start does not register them twice", async () => {
    const { Registry } = await import("prom-client");
    const { createMessageMetrics } = await import("../../src/messages/metrics.ts");
    const registry = new Registry();
    assert.equal(createMessageMetrics(registry), createMessageMetrics(registry));
    assert.notEqual(createMessageMetrics(new Registry()), createMessageMetrics(registry));
  });
});
