// The CSK simulator, short and seeded: the sidecar's real CSK custody code on every member of the
// liveness simulator, against the modelled chain and (once, N = 10) a real Hardhat node holding the
// registered members. The bounds are the goal for N = 1,000 (every member holds a rotated CSK
// within 10 s of the commitment), with margin at small N; devnet/bench/csk-scale.ts measures N = 1,000.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createCskSim } from "../../src/sim/csk.ts";
import { runCskScale } from "../../src/sim/cskScale.ts";
import { CHAIN_ID, CLUSTER, createLivenessSim } from "../../src/sim/liveness.ts";
import { registerOnchain } from "../../src/sim/onchain.ts";

const GOAL_MS = 10_000;

describe("CSK simulator", () => {
  test("N=10: every member holds each rotated CSK within half the goal", async () => {
    const r = await runCskScale({ members: 10, seed: 3, rotations: 3, gapMs: 2_000 });
    assert.equal(r.rotations.length, 3);
    for (const x of r.rotations) {
      assert.equal(x.holders, 10);
      assert.equal(x.committer, 1n, "the lowest live member commits");
      assert.ok(x.commitToAllMs <= GOAL_MS / 2, `held by all ${x.commitToAllMs} ms after the commitment`);
      assert.equal(x.rejected, 0);
      assert.deepEqual(x.refused, {}, "no honest request was refused");
    }
  });

  test("N=10 on a real Hardhat chain: the contract takes each commitment, every member holds it within half the goal", async () => {
    const onchain = await registerOnchain(10);
    try {
      const r = await runCskScale({
        members: 10,
        seed: 3,
        rotations: 2,
        gapMs: 2_000,
        onchain,
        realChain: {},
      });
      assert.equal(r.rotations.length, 2);
      for (const x of r.rotations) {
        assert.equal(x.holders, 10);
        assert.equal(x.committer, 1n, "the contract recorded the lowest live member's commitment");
        assert.ok(x.openToCommitMs <= 4_000, `committed ${x.openToCommitMs} ms after the epoch opened`);
        assert.ok(x.commitToAllMs <= GOAL_MS / 2, `held by all ${x.commitToAllMs} ms after the commitment`);
        assert.equal(x.rejected, 0);
        assert.deepEqual(x.refused, {}, "no honest request was refused");
      }
      // Each epoch's commitment (and a confirmation) went to the chain as the members' own transactions.
      assert.ok(r.chain !== undefined && r.chain.transactions >= 2, `${r.chain?.transactions} transactions`);
    } finally {
      await onchain.close();
    }
  });

  test("N=60 at 5 % loss: every member holds the rotated CSK within the goal", async () => {
    const r = await runCskScale({ members: 60, seed: 5, rotations: 2, loss: 0.05, gapMs: 2_000 });
    for (const x of r.rotations) {
      assert.equal(x.holders, 60);
      assert.ok(x.commitToAllMs <= GOAL_MS, `held by all ${x.commitToAllMs} ms after the commitment`);
    }
    assert.ok(r.medianMs <= GOAL_MS / 2, `median ${r.medianMs} ms`);
  });

  test("members serving bogus keys are rejected and the rotation still completes", async () => {
    const n = 20;
    const sim = await createLivenessSim({ members: n, seed: 9 });
    sim.memoize(true);
    for (let i = 0; i < n; i++) sim.start(i);
    sim.warmStart();
    sim.run(10_000, () => sim.allLive());
    // Members 2 … 6 (ranked right after the committer) answer every pull with random bytes.
    const csk = await createCskSim(sim, { chainId: CHAIN_ID, cluster: CLUSTER, liars: [1, 2, 3, 4, 5] });
    await sim.runAsync(2_000);
    const r = await csk.rotate();
    await csk.stop();
    assert.equal(r.holders, n, "every member, liars included, holds the key the chain committed to");
    assert.ok(r.rejected > 0, "the bogus answers were seen and rejected");
    const committed = csk.state().commitment;
    assert.notEqual(committed, undefined);
    for (let i = 0; i < n; i++) assert.equal(csk.holds(i, r.epoch), true);
    assert.ok(r.commitToAllMs <= GOAL_MS, `held by all ${r.commitToAllMs} ms after the commitment`);
  });

  test("the same seed gives the same rotation", async () => {
    const once = async () =>
      (await runCskScale({ members: 12, seed: 11, rotations: 2, loss: 0.02, gapMs: 1_000 })).rotations.map(
        (x) =>
          `${x.epoch}:${x.committer}:${x.openToCommitMs.toFixed(3)}:${x.commitToAllMs.toFixed(3)}:${x.requests}`,
      );
    assert.deepEqual(await once(), await once());
  });
});
