import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { createReconcileLoop, type PassOutcome } from "../../src/reconcile/loop.ts";
import { captureLogger } from "../helpers.ts";

/** A pass that blocks until released, recording when each pass started. */
function gatedPass() {
  let release: (() => void) | undefined;
  const starts: number[] = [];
  let running = 0;
  let maxConcurrent = 0;
  return {
    starts,
    get maxConcurrent() {
      return maxConcurrent;
    },
    get waiting() {
      return release !== undefined;
    },
    release() {
      const r = release;
      release = undefined;
      r?.();
    },
    pass: async () => {
      starts.push(Date.now());
      running++;
      maxConcurrent = Math.max(maxConcurrent, running);
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      running--;
    },
  };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await delay(5);
  assert.ok(check(), "condition not reached");
}

/** A loop whose passes wait on a gate, with a timer too slow to fire during a test. */
function gatedLoop() {
  const controller = new AbortController();
  const gate = gatedPass();
  const loop = createReconcileLoop({
    pass: gate.pass,
    intervalMs: 60_000,
    signal: controller.signal,
    logger: captureLogger().logger,
  });
  return { controller, gate, loop };
}

/** A loop on a timer every `intervalMs` whose first `failures` passes throw, run until one more succeeded. */
async function failingPasses(failures: number, intervalMs: number) {
  const controller = new AbortController();
  const { logger, lines } = captureLogger();
  const outcomes: PassOutcome[] = [];
  let calls = 0;
  const loop = createReconcileLoop({
    pass: async () => {
      calls++;
      if (calls <= failures) throw new Error("RPC down");
    },
    intervalMs,
    signal: controller.signal,
    logger,
    observe: (outcome, seconds) => {
      assert.ok(seconds >= 0);
      outcomes.push(outcome);
    },
  });
  loop.start();
  await until(() => outcomes.length > failures);
  controller.abort();
  await loop.stopped;
  return { outcomes, lines };
}

describe("reconcile loop", () => {
  test("wake-ups during a pass coalesce into exactly one more pass; all callers are answered after it", async () => {
    const { controller, gate, loop } = gatedLoop();
    const first = loop.wake("first");
    await until(() => gate.waiting);
    let answered = 0;
    const during = Array.from({ length: 5 }, (_, i) => loop.wake(`during-${i}`).then(() => answered++));
    await delay(10);
    assert.equal(gate.starts.length, 1, "no second pass while the first runs");
    gate.release();
    await first;
    assert.equal(answered, 0, "callers that woke during pass 1 wait for pass 2");
    await until(() => gate.waiting);
    assert.equal(gate.starts.length, 2);
    gate.release();
    await Promise.all(during);
    assert.equal(answered, 5);
    await delay(20);
    assert.equal(gate.starts.length, 2, "exactly one extra pass for five wake-ups");
    assert.equal(gate.maxConcurrent, 1);
    controller.abort();
    await loop.stopped;
  });

  test("runs on its timer after start, never overlapping", async () => {
    const controller = new AbortController();
    let passes = 0;
    const loop = createReconcileLoop({
      pass: async () => {
        passes++;
        await delay(5);
      },
      intervalMs: 20,
      signal: controller.signal,
      logger: captureLogger().logger,
    });
    await delay(30);
    assert.equal(passes, 0, "nothing before start");
    loop.start();
    loop.start();
    await until(() => passes >= 4);
    controller.abort();
    await loop.stopped;
    const stoppedAt = passes;
    await delay(60);
    assert.equal(passes, stoppedAt, "no pass after stop");
  });

  test("a failing pass is logged and counted, and the loop keeps going", async () => {
    const { outcomes, lines } = await failingPasses(1, 10);
    assert.deepEqual(outcomes.slice(0, 2), ["error", "ok"]);
    assert.ok(lines().some((l) => /reconcile pass failed/.test(l.msg)));
  });

  // Regression: a pass that kept failing (the RPC providers down, an interface that would not come up)
  // logged the same warning on every tick.
  test("failures in a row are logged thinned, each counted; the pass that succeeds says how many there were", async () => {
    const { outcomes, lines } = await failingPasses(20, 1);
    assert.deepEqual(
      outcomes.slice(0, 21),
      [...Array<PassOutcome>(20).fill("error"), "ok"],
      "every pass counted",
    );
    const warned = lines().filter((l) => /^reconcile pass failed/.test(l.msg));
    // Each as failures/unlogged.
    assert.deepEqual(
      warned.map((l) => `${l.failures}/${l.unlogged ?? 0}`),
      ["1/0", "2/0", "4/1", "8/3", "16/7"],
    );
    assert.ok(warned.every((l) => /RPC down/.test(String((l.err as { message?: string }).message))));
    const recovered = lines().filter((l) => /reconcile pass succeeded again/.test(l.msg));
    assert.deepEqual(
      recovered.map((l) => l.failures),
      [20],
    );
  });

  test("stop waits for the pass in flight; wake after stop resolves at once", async () => {
    const { controller, gate, loop } = gatedLoop();
    loop.start();
    await until(() => gate.waiting);
    const queued = loop.wake("queued");
    controller.abort();
    await queued;
    let stopped = false;
    void loop.stopped.then(() => {
      stopped = true;
    });
    await delay(10);
    assert.equal(stopped, false, "the pass in flight is still running");
    gate.release();
    await loop.stopped;
    await loop.wake("late");
    assert.equal(gate.starts.length, 1, "the queued pass never ran");
  });
});
