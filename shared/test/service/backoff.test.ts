// Backoff: capped doubling with jitter taken off the top; the retry loop stops on a fatal error.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { backoffDelay, retryWithBackoff } from "@attestmesh/shared/service/backoff.ts";
import { errorFactories } from "@attestmesh/shared/service/errors.ts";
import { createLogger } from "@attestmesh/shared/service/log.ts";

const { retryableError, fatalError } = errorFactories(["Down", "Broken"]);
const logger = createLogger({
  name: "kit-test",
  level: "silent",
  destination: new Writable({ write: (_c, _e, cb) => cb() }),
});

test("without jitter the delay doubles up to the cap (the indexer's start schedule)", () => {
  const schedule = { initialMs: 1000, maxMs: 30_000, jitter: 0 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 1000].map((attempt) => backoffDelay(attempt, schedule)),
    [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000],
  );
  assert.equal(
    backoffDelay(3, { initialMs: 100, maxMs: 10_000, jitter: 0.5 }, () => 0.999),
    400,
  );
});

test("retryable failures are retried; a fatal one is rethrown at once", async () => {
  let calls = 0;
  const value = await retryWithBackoff({
    what: "flaky call",
    fn: async () => {
      calls++;
      if (calls < 3) throw retryableError("Down", "down");
      return "done";
    },
    signal: new AbortController().signal,
    logger,
    backoff: { initialMs: 1, maxMs: 2 },
  });
  assert.equal(value, "done");
  assert.equal(calls, 3);
  await assert.rejects(
    retryWithBackoff({
      what: "doomed call",
      fn: () => Promise.reject(fatalError("Broken", "no")),
      signal: new AbortController().signal,
      logger,
      backoff: { initialMs: 1, maxMs: 2 },
    }),
    /no/,
  );
});
