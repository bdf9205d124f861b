import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backoffDelay, raceAbort, retryWithBackoff } from "../src/backoff.ts";
import { fatalError, retryableError } from "../src/errors.ts";
import { captureLogger } from "./helpers.ts";

describe("backoffDelay", () => {
  const options = { initialMs: 1000, maxMs: 30_000 };

  test("doubles from the initial delay and stops at the cap (no jitter at random = 0)", () => {
    const delays = Array.from({ length: 8 }, (_, attempt) => backoffDelay(attempt, options, () => 0));
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  test("jitter takes up to 20% off by default, never adds", () => {
    assert.equal(
      backoffDelay(0, options, () => 0.999999),
      800,
    );
    assert.equal(
      backoffDelay(10, options, () => 0.5),
      27000,
    );
    for (let i = 0; i < 200; i++) {
      const delay = backoffDelay(3, options);
      assert.ok(delay >= 6400 && delay <= 8000, `${delay} within [6400, 8000]`);
    }
  });

  test("custom factor and jitter; jitter is clamped to [0, 1]", () => {
    assert.equal(
      backoffDelay(2, { initialMs: 100, maxMs: 10_000, factor: 3, jitter: 0 }, () => 0.9),
      900,
    );
    assert.equal(
      backoffDelay(0, { initialMs: 100, maxMs: 10_000, jitter: 5 }, () => 0.5),
      50,
    );
    assert.equal(
      backoffDelay(0, { initialMs: 100, maxMs: 10_000, jitter: -1 }, () => 0.5),
      100,
    );
  });

  test("huge or odd attempt numbers stay finite and capped", () => {
    assert.equal(
      backoffDelay(1e9, options, () => 0),
      30000,
    );
    assert.equal(
      backoffDelay(-3, options, () => 0),
      1000,
    );
    assert.equal(
      backoffDelay(2.7, options, () => 0),
      4000,
    );
  });

  test("an initial delay above the cap is capped", () => {
    assert.equal(
      backoffDelay(0, { initialMs: 5000, maxMs: 100 }, () => 0),
      100,
    );
  });
});

describe("retryWithBackoff", () => {
  const backoff = { initialMs: 1, maxMs: 5 };

  test("retries retryable errors until success", async () => {
    const { logger, lines } = captureLogger();
    let calls = 0;
    const result = await retryWithBackoff({
      what: "flaky thing",
      fn: async () => {
        calls++;
        if (calls < 3) throw retryableError("RpcUnavailable", "try again");
        return "ok";
      },
      signal: new AbortController().signal,
      logger,
      backoff,
    });
    assert.equal(result, "ok");
    assert.equal(calls, 3);
    assert.equal(lines().filter((l) => l.msg === "flaky thing failed; retrying").length, 2);
  });

  test("rethrows a fatal error at once", async () => {
    let calls = 0;
    await assert.rejects(
      retryWithBackoff({
        what: "doomed",
        fn: async () => {
          calls++;
          throw fatalError("InvalidConfig", "no");
        },
        signal: new AbortController().signal,
        logger: captureLogger().logger,
        backoff,
      }),
      { code: "InvalidConfig" },
    );
    assert.equal(calls, 1);
  });

  test("resolves undefined when aborted while waiting", async () => {
    const controller = new AbortController();
    const pending = retryWithBackoff({
      what: "forever",
      fn: () => Promise.reject(retryableError("RpcUnavailable", "down")),
      signal: controller.signal,
      logger: captureLogger().logger,
      backoff: { initialMs: 60_000, maxMs: 60_000 },
    });
    setTimeout(() => controller.abort(), 20);
    assert.equal(await pending, undefined);
  });

  test("raceAbort answers undefined on abort without waiting for the work", async () => {
    const controller = new AbortController();
    const never = new Promise<string>(() => {});
    const raced = raceAbort(never, controller.signal);
    controller.abort();
    assert.equal(await raced, undefined);
    assert.equal(await raceAbort(Promise.resolve(7), new AbortController().signal), 7);
  });
});
