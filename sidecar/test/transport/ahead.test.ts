import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import pino from "pino";
import { createLocalSocketFactory } from "../../src/meshnet/socketFactory.ts";
import { AHEAD_MAX, createAheadFactory } from "../../src/transport/ahead.ts";

const logger = pino({ level: "silent" });

/** A loopback TCP server standing in for the gateway: counts connections and the bytes each sent. */
async function gateway(): Promise<{
  server: Server;
  port: number;
  accepted: Socket[];
  bytes: () => number;
  close: () => Promise<void>;
}> {
  const accepted: Socket[] = [];
  let bytes = 0;
  const server = createServer((socket) => {
    accepted.push(socket);
    socket.on("data", (d) => {
      bytes += d.length;
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    accepted,
    bytes: () => bytes,
    close: async () => {
      for (const s of accepted) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function until(what: string, check: () => boolean, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(5);
  }
}

describe("sockets opened ahead of a registration's inclusion", () => {
  test("connections open ahead, send nothing, and are what the next connects take", async () => {
    const gw = await gateway();
    const factory = createAheadFactory(createLocalSocketFactory(), { logger });
    try {
      const target = { host: "127.0.0.1", port: gw.port };
      factory.openAhead({ connects: [target, target, target], udpHost: "127.0.0.1", udp: 0 });
      await until("three held", () => factory.held().connects === 3);
      await until("three accepted", () => gw.accepted.length === 3);
      factory.openAhead({ connects: [target, target, target], udpHost: "127.0.0.1", udp: 0 });
      await sleep(50);
      assert.equal(gw.accepted.length, 3, "asked again: none opened twice");
      assert.equal(gw.bytes(), 0, "nothing is sent ahead: no ClientHello, no hello");
      const socket = await factory.connect("127.0.0.1", gw.port, 1_000);
      await sleep(50);
      assert.equal(gw.accepted.length, 3, "the connect took a connection opened ahead");
      assert.equal(factory.held().connects, 2);
      socket.write("hello");
      await until("the bytes arrive", () => gw.bytes() === 5);
      socket.destroy();
      const other = await createAheadFactory(createLocalSocketFactory(), { logger }).connect(
        "127.0.0.1",
        gw.port,
        1_000,
      );
      other.destroy();
      await until("without one ahead, a connect connects", () => gw.accepted.length === 4);
    } finally {
      await factory.close();
      await gw.close();
    }
  });

  test("a connection the gateway closed while it waited is not handed out; the connect connects anew", async () => {
    const gw = await gateway();
    const factory = createAheadFactory(createLocalSocketFactory(), { logger });
    try {
      factory.openAhead({ connects: [{ host: "127.0.0.1", port: gw.port }], udpHost: "127.0.0.1", udp: 0 });
      await until("held", () => factory.held().connects === 1 && gw.accepted.length === 1);
      gw.accepted[0]!.destroy();
      await sleep(50);
      const socket = await factory.connect("127.0.0.1", gw.port, 1_000);
      await until("a fresh connection", () => gw.accepted.length === 2);
      assert.equal(socket.destroyed, false);
      socket.destroy();
    } finally {
      await factory.close();
      await gw.close();
    }
  });

  test("unused connections and UDP sockets close after their lifetime, and on close", async () => {
    const gw = await gateway();
    const factory = createAheadFactory(createLocalSocketFactory(), { logger, lifetimeMs: 150 });
    try {
      factory.openAhead({ connects: [{ host: "127.0.0.1", port: gw.port }], udpHost: "127.0.0.1", udp: 2 });
      await until(
        "held",
        () => factory.held().connects === 1 && factory.held().udp === 2 && gw.accepted.length === 1,
      );
      const closedAtGateway = new Promise((resolve) => gw.accepted[0]!.once("close", resolve));
      await until("dropped", () => factory.held().connects === 0 && factory.held().udp === 0, 1_000);
      await closedAtGateway;
    } finally {
      await factory.close();
    }
    const again = createAheadFactory(createLocalSocketFactory(), { logger });
    again.openAhead({ connects: [{ host: "127.0.0.1", port: gw.port }], udpHost: "127.0.0.1", udp: 0 });
    await until("held", () => again.held().connects === 1 && gw.accepted.length === 2);
    const closed = new Promise((resolve) => gw.accepted.at(-1)!.once("close", resolve));
    await again.close();
    await closed;
    assert.deepEqual(again.held(), { connects: 0, udp: 0 });
    await gw.close();
  });

  test("UDP sockets opened ahead go to port-0 requests on their host only", async () => {
    const factory = createAheadFactory(createLocalSocketFactory(), { logger });
    try {
      factory.openAhead({ connects: [], udpHost: "127.0.0.1", udp: 2 });
      await until("held", () => factory.held().udp === 2);
      const a = await factory.udp("127.0.0.1", 0);
      const b = await factory.udp("127.0.0.1", 0);
      assert.equal(factory.held().udp, 0);
      assert.notEqual(a.address().port, b.address().port);
      const c = await factory.udp("127.0.0.1", 0);
      assert.ok(c.address().port > 0, "none left: a new one");
      for (const s of [a, b, c]) s.close();
    } finally {
      await factory.close();
    }
  });

  test(`attacker: a view of many members opens at most ${AHEAD_MAX} connections ahead`, async () => {
    const gw = await gateway();
    const factory = createAheadFactory(createLocalSocketFactory(), { logger });
    try {
      const target = { host: "127.0.0.1", port: gw.port };
      factory.openAhead({
        connects: Array.from({ length: 500 }, () => target),
        udpHost: "127.0.0.1",
        udp: 500,
      });
      await until(
        "the bound held",
        () => factory.held().connects === AHEAD_MAX && factory.held().udp === AHEAD_MAX,
      );
      await until("all accepted", () => gw.accepted.length >= AHEAD_MAX);
      factory.openAhead({
        connects: Array.from({ length: 500 }, () => target),
        udpHost: "127.0.0.1",
        udp: 500,
      });
      await sleep(100);
      assert.equal(gw.accepted.length, AHEAD_MAX);
      assert.deepEqual(factory.held(), { connects: AHEAD_MAX, udp: AHEAD_MAX });
    } finally {
      await factory.close();
      await gw.close();
    }
  });
});
