// Backoff: capped doubling with jitter taken off the top; the retry loop retries what is retryable,
// stops on a fatal error, and gives up quietly when aborted.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, test } from "node:test";
import {
  type BackoffOptions,
  backoffDelay,
  raceAbort,
  retryWithBackoff,
} from "@attestmesh/shared/service/backoff.ts";
import { errorFactories } from "@attestmesh/shared/service/errors.ts";
import { createLogger } from "@attestmesh/shared/service/log.ts";

const { retryableError, fatalError } = errorFactories(["Down", "Broken"]);

/** A kit logger whose JSON lines the test can read. */
function captureLogger() {
  const chunks: string[] = [];
  const logger = createLogger({
    name: "kit-test",
    level: "debug",
    destination: new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk.toString());
        callback();
      },
    }),
  });
  const lines = () =>
    chunks
      .join("")
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line) as { msg: string });
  return { logger, lines };
}

/** Asserts the delay of each `[attempt, random draw, expected delay]` under `options`. */
function assertDelays(
  options: BackoffOptions,
  cases: ReadonlyArray<readonly [number, number, number]>,
): void {
  for (const [attempt, random, expected] of cases) {
    assert.equal(
      backoffDelay(attempt, options, () => random),
      expected,
      `attempt ${attempt}, random ${random}`,
    );
  }
}

describe("backoffDelay", () => {
  const options = { initialMs: 1000, maxMs: 30_000 };

  test("doubles from the initial delay and stops at the cap (no jitter at random = 0)", () => {
    const delays = Array.from({ length: 8 }, (_, attempt) => backoffDelay(attempt, options, () => 0));
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  test("without jitter the delay doubles up to the cap (the indexer's start schedule)", () => {
    const schedule = { initialMs: 1000, maxMs: 30_000, jitter: 0 };
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 1000].map((attempt) => backoffDelay(attempt, schedule)),
      [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000],
    );
    assertDelays({ initialMs: 100, maxMs: 10_000, jitter: 0.5 }, [[3, 0.999, 400]]);
  });

  test("jitter takes up to 20% off by default, never adds", () => {
    assertDelays(options, [
      [0, 0.999999, 800],
      [10, 0.5, 27000],
    ]);
    for (let i = 0; i < 200; i++) {
      const delay = backoffDelay(3, options);
      assert.ok(delay >= 6400 && delay <= 8000, `${delay} within [6400, 8000]`);
    }
  });

  test("custom factor and jitter; jitter is clamped to [0, 1]", () => {
    assertDelays({ initialMs: 100, maxMs: 10_000, factor: 3, jitter: 0 }, [[2, 0.9, 900]]);
    assertDelays({ initialMs: 100, maxMs: 10_000, jitter: 5 }, [[0, 0.5, 50]]);
    assertDelays({ initialMs: 100, maxMs: 10_000, jitter: -1 }, [[0, 0.5, 100]]);
  });

  test("huge or odd attempt numbers stay finite and capped", () => {
    assertDelays(options, [
      [1e9, 0, 30000],
      [-3, 0, 1000],
      [2.7, 0, 4000],
    ]);
  });

  test("an initial delay above the cap is capped", () => {
    assertDelays({ initialMs: 5000, maxMs: 100 }, [[0, 0, 100]]);
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
        if (calls < 3) throw retryableError("Down", "try again");
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
          throw fatalError("Broken", "no");
        },
        signal: new AbortController().signal,
        logger: captureLogger().logger,
        backoff,
      }),
      { code: "Broken", message: /no/ },
    );
    assert.equal(calls, 1);
  });

  test("resolves undefined when aborted while waiting", async () => {
    const controller = new AbortController();
    const pending = retryWithBackoff({
      what: "forever",
      fn: () => Promise.reject(retryableError("Down", "down")),
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
  });

  test("raceAbort answers the work's value while not aborted", async () => {
    assert.equal(await raceAbort(Promise.resolve(7), new AbortController().signal), 7);
  });
});
