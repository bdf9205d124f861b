import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createPollCadence, REST_AFTER_MS, REST_FACTOR, untilBeat } from "../src/sleep.ts";

describe("pollers' beat", () => {
  test("the next multiple of the interval since the process started", () => {
    assert.equal(untilBeat(1000, 0), 1000);
    assert.equal(untilBeat(1000, 1200), 800);
    assert.equal(untilBeat(1000, 4500), 500);
  });

  test("a beat less than half an interval away is skipped, so a late or woken poll does not run twice at once", () => {
    assert.equal(untilBeat(1000, 1600), 1400);
    assert.equal(untilBeat(1000, 1999), 1001);
  });

  test("pollers wake on the beat whenever their last pass ended, and a 2 s poller's beats are 1 s beats too", () => {
    for (const ended of [0, 130, 999, 1740, 20_020, 123_456.7]) {
      const csk = ended + untilBeat(1000, ended);
      const membership = ended + untilBeat(2000, ended);
      assert.equal(csk % 1000, 0, `after ${ended}`);
      assert.equal(membership % 2000, 0, `after ${ended}`);
      assert.ok(csk - ended >= 500 && csk - ended <= 1500);
    }
  });
});

describe("pollers' cadence", () => {
  function cadence() {
    const clock = { ms: 0 };
    const source = { healthy: false };
    const c = createPollCadence({ wakeUpsHealthy: () => source.healthy, now: () => clock.ms });
    return { c, clock, source };
  }

  test("full cadence until a verified indexer subscription is up and nothing woke the sidecar for a while", () => {
    const { c, clock, source } = cadence();
    assert.equal(c.interval(1000), 1000, "at start");
    clock.ms += REST_AFTER_MS;
    assert.equal(c.interval(1000), 1000, "no healthy source of wake-ups: polling alone, at its interval");
    source.healthy = true;
    assert.equal(c.interval(1000), 1000 * REST_FACTOR);
    assert.equal(c.interval(2000), 2000 * REST_FACTOR);
    assert.ok(c.atRest());
  });

  test("a wake-up restores the full cadence for the next quiet period", () => {
    const { c, clock, source } = cadence();
    source.healthy = true;
    clock.ms += REST_AFTER_MS;
    assert.ok(c.atRest());
    c.stir();
    assert.equal(c.interval(1000), 1000);
    clock.ms += REST_AFTER_MS - 1;
    assert.equal(c.interval(1000), 1000);
    clock.ms += 1;
    assert.equal(c.interval(1000), 1000 * REST_FACTOR);
  });

  test("an indexer that goes silent or lags cannot stop polling: at most REST_FACTOR intervals, then the full cadence once flagged", () => {
    const { c, clock, source } = cadence();
    source.healthy = true;
    // The indexer pushes nothing at all (silent, or withholding every log) for an hour.
    for (let t = 0; t < 3_600_000; t += 1000) {
      clock.ms = t;
      assert.ok(c.interval(1000) <= 1000 * REST_FACTOR, "polling never stretches past the bound");
    }
    // Its lag check flags it (or the subscription drops): the very next interval is the configured one.
    source.healthy = false;
    assert.equal(c.interval(1000), 1000);
    assert.ok(!c.atRest());
  });

  test("the rest interval is a whole number of intervals, so resting pollers still wake on one beat", () => {
    assert.ok(Number.isInteger(REST_FACTOR) && REST_FACTOR >= 1);
    for (const ended of [7_321, 12_000.5, 99_999]) {
      const csk = ended + untilBeat(1000 * REST_FACTOR, ended);
      const membership = ended + untilBeat(2000 * REST_FACTOR, ended);
      assert.equal(csk % (1000 * REST_FACTOR), 0);
      assert.equal(membership % (1000 * REST_FACTOR), 0, "a membership poll is also a CSK tick's instant");
    }
  });
});
