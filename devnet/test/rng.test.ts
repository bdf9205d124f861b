// The soak's schedule is reproducible: one seed, one stream of choices.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { seededRng } from "../src/rng.ts";
import { FAULT_KINDS } from "../src/soak/fault.ts";

const draw = (seed: number) => {
  const rng = seededRng(seed);
  return [rng.shuffle(FAULT_KINDS), rng.int(3_000, 10_000), rng.pick(["node3", "node4", "node5"])];
};

describe("seededRng", () => {
  it("gives the same schedule for the same seed", () => {
    assert.deepEqual(draw(20261206), draw(20261206));
  });

  it("gives another schedule for another seed", () => {
    assert.notDeepEqual(draw(1), draw(2));
  });

  it("shuffles into a permutation and draws within bounds", () => {
    const rng = seededRng(7);
    const order = rng.shuffle(FAULT_KINDS);
    assert.deepEqual([...order].sort(), [...FAULT_KINDS].sort());
    for (let i = 0; i < 1000; i++) {
      const n = rng.int(3, 5);
      assert.ok(n >= 3 && n <= 5 && Number.isInteger(n));
    }
    assert.throws(() => rng.pick([]), /empty/);
  });
});
