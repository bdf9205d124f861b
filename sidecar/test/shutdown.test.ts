import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { createShutdown, exitOnSignals } from "../src/shutdown.ts";
import { sleep } from "../src/sleep.ts";
import { captureLogger } from "./helpers.ts";

describe("shutdown registry", () => {
  test("aborts the signal first, then runs closers last-added-first, once", async () => {
    const { logger } = captureLogger();
    const shutdown = createShutdown({ logger });
    const order: string[] = [];
    shutdown.add("health server", () => {
      order.push(`health (aborted=${shutdown.signal.aborted})`);
    });
    shutdown.add("wireguard", async () => {
      await delay(5);
      order.push("wireguard");
    });
    const remove = shutdown.add("removed", () => {
      order.push("removed");
    });
    remove();
    const [first, second] = await Promise.all([shutdown.shutdown("test"), shutdown.shutdown("again")]);
    assert.equal(first, true);
    assert.equal(second, true);
    assert.deepEqual(order, ["wireguard", "health (aborted=true)"]);
    assert.equal(await shutdown.finished, true);
  });

  test("a hanging closer is cut off at the deadline and reported unclean; later closers still run", async () => {
    const { logger, lines } = captureLogger();
    const shutdown = createShutdown({ logger, deadlineMs: 50 });
    let ran = false;
    shutdown.add("after", () => {
      ran = true;
    });
    shutdown.add("hangs", () => new Promise<void>(() => {}));
    const started = Date.now();
    assert.equal(await shutdown.shutdown("test"), false);
    assert.ok(Date.now() - started < 1000);
    assert.equal(ran, true);
    assert.ok(lines().some((l) => l.closer === "hangs" && /deadline/.test(l.msg)));
  });

  test("a failing closer is logged and makes shutdown unclean", async () => {
    const { logger, lines } = captureLogger();
    const shutdown = createShutdown({ logger });
    shutdown.add("breaks", () => {
      throw new Error("boom");
    });
    assert.equal(await shutdown.shutdown("test"), false);
    assert.ok(lines().some((l) => l.closer === "breaks" && l.level === 50));
  });

  test("a closer added after shutdown began runs at once", async () => {
    const shutdown = createShutdown({ logger: captureLogger().logger });
    await shutdown.shutdown("test");
    let closed = false;
    shutdown.add("late", () => {
      closed = true;
    });
    await delay(1);
    assert.equal(closed, true);
  });

  test("SIGTERM shuts down and exits 0; a second signal exits 1", async () => {
    const { logger } = captureLogger();
    const shutdown = createShutdown({ logger });
    const exits: number[] = [];
    const remove = exitOnSignals(shutdown, {
      logger,
      exit: (code) => exits.push(code),
      signals: ["SIGUSR2"],
    });
    try {
      process.emit("SIGUSR2", "SIGUSR2");
      assert.equal(shutdown.signal.aborted, true);
      await shutdown.finished;
      await delay(1);
      assert.deepEqual(exits, [0]);
      process.emit("SIGUSR2", "SIGUSR2");
      assert.deepEqual(exits, [0, 1]);
    } finally {
      remove();
    }
  });

  test("sleep ends early on abort and never rejects", async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 10);
    await sleep(60_000, controller.signal);
    assert.ok(Date.now() - started < 1000);
    await sleep(10, controller.signal);
  });
});
