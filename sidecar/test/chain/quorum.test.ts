// The agreement logic alone: a value counts only when `quorum` providers returned it; a liar among
// them is outvoted and reported, never returned; a provider that is down costs nothing but its own
// failed call, and is asked last for a while after.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createAgreement, type Disagreement, QuorumNotReached } from "../../src/chain/quorum.ts";

type Behaviour = string | "down" | "none";

/** Providers that answer as scripted, counting the calls each gets. */
function providers(behaviours: readonly Behaviour[]) {
  const calls = behaviours.map(() => 0);
  const ask = async (i: number) => {
    calls[i]! += 1;
    const b = behaviours[i]!;
    if (b === "down") throw new Error("ECONNREFUSED");
    if (b === "none") return undefined;
    return b;
  };
  return { ask, calls };
}

function agreement(n: number, quorum: number, now = () => 0) {
  const disagreements: Disagreement[] = [];
  const failures: number[] = [];
  const a = createAgreement({
    providers: n,
    quorum,
    onDisagreement: (d) => disagreements.push(d),
    onFailure: (p) => failures.push(p),
    now,
  });
  return { a, disagreements, failures };
}

const key = (v: string) => v;

describe("createAgreement", () => {
  test("honest providers: the first quorum are asked, no one else, nothing reported", async () => {
    const { a, disagreements } = agreement(3, 2);
    const p = providers(["x", "x", "x"]);
    const result = await a.agree({ read: "r", ask: p.ask, key });
    assert.equal(result.value, "x");
    assert.equal(result.agreeing.length, 2);
    assert.equal(
      p.calls.reduce((s, c) => s + c, 0),
      2,
    );
    assert.deepEqual(disagreements, []);
  });

  test("one liar among three (quorum 2): the honest value wins wherever the liar sits, and the lie is reported", async () => {
    for (let liar = 0; liar < 3; liar++) {
      for (let round = 0; round < 3; round++) {
        const { a, disagreements } = agreement(3, 2);
        for (let r = 0; r < round; r++) a.order(); // rotate the preference order
        const behaviours = ["honest", "honest", "honest"];
        behaviours[liar] = "lie";
        const result = await a.agree({ read: "eth_call members", ask: providers(behaviours).ask, key });
        assert.equal(result.value, "honest", `liar ${liar}, rotation ${round}`);
        assert.ok(!result.agreeing.includes(liar));
        if (disagreements.length > 0) {
          // Reported only when the liar was among those asked; then it is named as outvoted.
          assert.equal(disagreements.length, 1);
          assert.deepEqual(disagreements[0]!.outvoted, [liar]);
          assert.equal(disagreements[0]!.resolved, true);
          assert.equal(disagreements[0]!.read, "eth_call members");
        }
      }
    }
  });

  test("a liar that is asked is always caught: with two providers and quorum 2 the read fails instead of trusting either", async () => {
    const { a, disagreements } = agreement(2, 2);
    const p = providers(["honest", "lie"]);
    await assert.rejects(a.agree({ read: "r", ask: p.ask, key }), (error: unknown) => {
      assert.ok(error instanceof QuorumNotReached);
      assert.equal(error.disagreed, true);
      return true;
    });
    assert.equal(disagreements.length, 1);
    assert.equal(disagreements[0]!.resolved, false);
    assert.deepEqual([...disagreements[0]!.outvoted].sort(), [0, 1]);
  });

  test("two colluding liars among five (quorum 3): never returned", async () => {
    for (let round = 0; round < 5; round++) {
      const { a } = agreement(5, 3);
      for (let r = 0; r < round; r++) a.order();
      const result = await a.agree({
        read: "r",
        ask: providers(["lie", "honest", "lie", "honest", "honest"]).ask,
        key,
      });
      assert.equal(result.value, "honest");
    }
  });

  test("the answers of a liar and of honest providers split so no value has a quorum: the read fails, retryable", async () => {
    const { a } = agreement(3, 2);
    await assert.rejects(
      a.agree({ read: "r", ask: providers(["a", "b", "down"]).ask, key }),
      (error: unknown) => error instanceof QuorumNotReached && error.disagreed,
    );
  });

  test("one provider down: the next is asked instead, the read succeeds, and the failed one is asked last afterwards", async () => {
    let t = 1_000;
    const { a, failures, disagreements } = agreement(3, 2, () => t);
    const p = providers(["down", "x", "x"]);
    const first = await a.agree({ read: "r", ask: p.ask, key });
    assert.equal(first.value, "x");
    assert.deepEqual(failures, [0]);
    assert.deepEqual(disagreements, [], "a provider that is down is not a liar");
    // Within the cooldown the failed provider is not asked at all while two healthy ones answer.
    for (let i = 0; i < 5; i++) await a.agree({ read: "r", ask: p.ask, key });
    assert.equal(p.calls[0], 1, "the down provider cost one call, not one per read");
    t += 30_001;
    assert.equal(a.order()[0] !== undefined, true);
    assert.ok(a.order().includes(0), "after the cooldown it is asked again in its turn");
  });

  test("a provider without the block yet (no answer) is neither a liar nor enough: too few answers fail", async () => {
    const { a, disagreements } = agreement(3, 2);
    await assert.rejects(
      a.agree({ read: "block hash", ask: providers(["x", "none", "down"]).ask, key }),
      (error: unknown) => error instanceof QuorumNotReached && !error.disagreed && error.answered === 1,
    );
    assert.deepEqual(disagreements, []);
  });

  test("only the allowed providers are asked", async () => {
    const { a } = agreement(3, 2);
    const p = providers(["lie", "x", "x"]);
    const result = await a.agree({ read: "r", ask: p.ask, key, among: [1, 2] });
    assert.equal(result.value, "x");
    assert.equal(p.calls[0], 0);
  });

  test("a quorum outside 1..n is refused", () => {
    assert.throws(() => agreement(3, 0));
    assert.throws(() => agreement(3, 4));
  });
});
