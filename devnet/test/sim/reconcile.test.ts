// The reconcile simulator, short and seeded: the sidecar's real reconciler with an in-memory WireGuard
// backend on every member of the liveness simulator, driven by the chain view. A change reaches every
// interface well within the 5 s for a new member, at one WireGuard operation per member per
// change (work that does not grow with N); devnet/bench/reconcile-sim.ts measures N = 1,000.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { runReconcileScale } from "../../src/sim/reconcile.ts";

describe("reconcile simulator", () => {
  test("N=30 with indexer pushes: each join and eviction is in every interface within a second", async () => {
    const r = await runReconcileScale({ members: 30, seed: 4, joins: 2, evictions: 2 });
    assert.equal(r.configure.operationsPerMember, 28, "up, then one setPeer per other member");
    assert.equal(r.changes.length, 4);
    for (const c of r.changes) {
      assert.ok(c.allMs <= 1000, `${c.kind} of ${c.memberId} everywhere after ${c.allMs} ms`);
      assert.equal(c.operationsMax, 1, `${c.kind}: one WireGuard operation per member`);
      assert.equal(c.failures, 0);
    }
  });

  test("N=12, polling only: each change is in every interface within one poll and a read", async () => {
    const r = await runReconcileScale({
      members: 12,
      seed: 6,
      joins: 1,
      evictions: 1,
      options: { pollOnly: true, pollMs: 2000 },
    });
    for (const c of r.changes) {
      assert.ok(c.allMs <= 2000 + 100 + 50, `${c.kind} of ${c.memberId} everywhere after ${c.allMs} ms`);
      assert.equal(c.operationsMax, 1);
    }
  });
});
