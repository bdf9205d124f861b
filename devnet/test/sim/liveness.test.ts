// The liveness simulator, short and seeded: N = 10 members starting cold (each learns the others by
// probing and syncing) and N = 100 from a running cluster's state, over a simulated network. The bounds
// are the goals for N = 1,000 (devnet/bench/liveness-scale.ts measures that): traffic and CPU per
// member, a joined member live everywhere, a killed one dead everywhere, no false dead under 1 % loss.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createLivenessSim, median, runScale } from "../../src/sim/liveness.ts";

const GOALS = {
  bytesPerSecond: 2048,
  cpuShare: 0.02,
  joinMs: 5000,
  rotationMs: 10_000,
  deadMedianMs: 10_000,
};

describe("liveness simulator", () => {
  for (const [n, warm] of [
    [10, false],
    [100, true],
  ] as const) {
    test(`N=${n} (${warm ? "warm" : "cold"} start) stays within the liveness goals`, async () => {
      const r = await runScale({
        members: n,
        seed: 7,
        warm,
        kills: 2,
        steadyMs: 10_000,
        lossRates: [0.01, 0.05],
        lossWindowMs: 20_000,
      });
      assert.ok(r.maxBytesPerSecond <= GOALS.bytesPerSecond, `${r.maxBytesPerSecond} B/s`);
      assert.ok(r.cpuShare <= GOALS.cpuShare, `${(r.cpuShare * 100).toFixed(2)} % of a core`);
      assert.ok(r.joinMs <= GOALS.joinMs, `join took ${r.joinMs} ms`);
      assert.ok(r.rotationMs <= GOALS.rotationMs, `rotation took ${r.rotationMs} ms`);
      assert.ok(median(r.deadMs) <= GOALS.deadMedianMs, `dead after ${r.deadMs.join(", ")} ms`);
      const onePercent = r.loss.find((l) => l.rate === 0.01)!;
      assert.equal(onePercent.falseDead, 0, "no member still running was declared dead at 1 % loss");
      const fivePercent = r.loss.find((l) => l.rate === 0.05)!;
      assert.equal(fivePercent.falseDead, 0, "nor at 5 % loss");
    });
  }

  test("the same seed gives the same run", async () => {
    const once = async () => {
      const sim = await createLivenessSim({ members: 8, seed: 11, loss: 0.05 });
      for (let i = 0; i < 8; i++) sim.start(i);
      sim.run(15_000);
      sim.kill(3);
      sim.run(10_000);
      return sim.verdicts.map((v) => `${v.kind}:${v.subject}@${v.at.toFixed(3)}by${v.by}`);
    };
    const a = await once();
    assert.ok(
      a.some((v) => v.startsWith("dead:4")),
      "the killed member was declared dead",
    );
    assert.deepEqual(await once(), a);
  });
});
