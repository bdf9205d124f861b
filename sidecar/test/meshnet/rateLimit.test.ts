// Per-source token buckets and the drop-log throttle, on a scripted clock.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createLogThrottle, createRateLimiter } from "../../src/meshnet/rateLimit.ts";

describe("per-source rate limit", () => {
  test("a source gets its burst, then its rate; another source is not affected", () => {
    let now = 0;
    const limit = createRateLimiter({ perSecond: 5, burst: 3, now: () => now });
    const flood = Array.from({ length: 10 }, () => limit.take("10.77.0.9"));
    assert.deepEqual(flood, [true, true, true, false, false, false, false, false, false, false]);
    assert.equal(limit.take("10.77.0.2"), true, "an honest peer still gets through");
    now = 200;
    assert.equal(limit.take("10.77.0.9"), true, "one token back after 1/5 s");
    assert.equal(limit.take("10.77.0.9"), false);
    now = 60_000;
    assert.deepEqual(
      Array.from({ length: 4 }, () => limit.take("10.77.0.9")),
      [true, true, true, false],
      "refills to the burst, never above",
    );
  });

  test("the table of sources is bounded: the oldest source is forgotten first", () => {
    const limit = createRateLimiter({ perSecond: 1, burst: 1, maxSources: 2, now: () => 0 });
    assert.equal(limit.take("a"), true);
    assert.equal(limit.take("a"), false);
    limit.take("b");
    limit.take("c");
    assert.equal(limit.take("a"), true, "a was forgotten, so it starts with a fresh bucket");
  });

  test("bad settings are refused", () => {
    assert.throws(() => createRateLimiter({ perSecond: 0, burst: 1 }), /perSecond > 0/);
    assert.throws(() => createRateLimiter({ perSecond: 1, burst: 0 }), /burst >= 1/);
  });
});

describe("drop-log throttle", () => {
  test("one line per reason per period, saying how many were suppressed", () => {
    let now = 0;
    const throttle = createLogThrottle(10_000, () => now);
    const logged: Array<[string, number]> = [];
    for (let i = 0; i < 500; i++) throttle.maybe("csk-request:not-a-member", (n) => logged.push(["a", n]));
    throttle.maybe("heartbeat:rate-limited", (n) => logged.push(["b", n]));
    now = 10_000;
    throttle.maybe("csk-request:not-a-member", (n) => logged.push(["a", n]));
    assert.deepEqual(logged, [
      ["a", 0],
      ["b", 0],
      ["a", 499],
    ]);
  });
});
