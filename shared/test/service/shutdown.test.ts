// The shutdown registry: one signal, closers last-added-first within one deadline, late closers run.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger } from "@attestmesh/shared/service/log.ts";
import { createShutdown, sleep } from "@attestmesh/shared/service/shutdown.ts";

const logger = createLogger({
  name: "kit-test",
  level: "silent",
  destination: new Writable({ write: (_c, _e, cb) => cb() }),
});

test("closers run in reverse order once, the signal aborts, and the result is clean", async () => {
  const shutdown = createShutdown({ logger, deadlineMs: 1000 });
  const order: string[] = [];
  shutdown.add("first", () => {
    order.push("first");
  });
  const remove = shutdown.add("removed", () => {
    order.push("removed");
  });
  shutdown.add("second", async () => {
    order.push("second");
  });
  remove();
  const waiting = sleep(60_000, shutdown.signal);
  assert.equal(await shutdown.shutdown("test"), true);
  await waiting;
  assert.equal(await shutdown.shutdown("again"), true);
  assert.deepEqual(order, ["second", "first"]);
  assert.ok(shutdown.signal.aborted);
  assert.equal(await shutdown.finished, true);
  let late = false;
  shutdown.add("late", () => {
    late = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(late, "a closer added after shutdown runs at once");
});

test("a closer that outlives the deadline makes the shutdown unclean", async () => {
  const shutdown = createShutdown({ logger, deadlineMs: 20 });
  shutdown.add("stuck", () => new Promise(() => {}));
  assert.equal(await shutdown.shutdown("test"), false);
});
