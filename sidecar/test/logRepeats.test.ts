import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createRepeatLog, RUN_ENDS_AFTER_MS, repeatFields } from "../src/logRepeats.ts";

describe("repeat log", () => {
  test("logs the 1st, 2nd, 4th, 8th… failure of a run, each with how many went unlogged since the last", () => {
    const repeats = createRepeatLog(60_000);
    const logged = [];
    for (let i = 1; i <= 20; i++) {
      const verdict = repeats.failed(1_000 + i);
      assert.equal(verdict.failures, i);
      assert.equal(repeats.quiet(), !verdict.log, "what follows an unlogged failure is quiet");
      if (verdict.log) logged.push(repeatFields(verdict));
    }
    assert.deepEqual(logged, [
      { failures: 1 },
      { failures: 2 },
      { failures: 4, unlogged: 1 },
      { failures: 8, unlogged: 3 },
      { failures: 16, unlogged: 7 },
    ]);
  });

  test("a run that goes on is logged at least once every everyMs; recovery ends the run", () => {
    const repeats = createRepeatLog(60_000);
    for (let i = 1; i <= 8; i++) repeats.failed(i);
    assert.equal(repeats.failed(30_000).log, false, "the 9th, 30 s after the 8th");
    assert.deepEqual(repeats.failed(60_008), { log: true, failures: 10, unlogged: 1 });
    assert.equal(repeats.failed(60_009).log, false);
    assert.equal(repeats.quiet(), true, "the last failure went unlogged");
    assert.equal(repeats.recovered(), 11);
    assert.equal(repeats.quiet(), false);
    assert.equal(repeats.recovered(), 0, "no run since");
    assert.deepEqual(repeats.failed(60_010), { log: true, failures: 1, unlogged: 0 });
  });

  test("a process that ran RUN_ENDS_AFTER_MS before it ended begins a new run; a shorter one goes on with it", () => {
    const repeats = createRepeatLog(10 * 60_000);
    assert.deepEqual(repeats.ended(0, 100), { log: true, failures: 1, unlogged: 0 });
    assert.deepEqual(repeats.ended(200, 300), { log: true, failures: 2, unlogged: 0 });
    assert.deepEqual(repeats.ended(400, 500), { log: false, failures: 3, unlogged: 1 });
    const later = 500 + RUN_ENDS_AFTER_MS;
    assert.deepEqual(repeats.ended(later - RUN_ENDS_AFTER_MS + 1, later), {
      log: true,
      failures: 4,
      unlogged: 1,
    });
    assert.deepEqual(repeats.ended(later, later + RUN_ENDS_AFTER_MS), {
      log: true,
      failures: 1,
      unlogged: 0,
    });
  });
});
