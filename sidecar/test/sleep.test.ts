import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { untilBeat } from "../src/sleep.ts";

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
