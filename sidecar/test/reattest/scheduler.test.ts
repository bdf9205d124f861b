// The re-attestation schedule and its verdicts, on a clock the test moves: the first check when a peer
// first appears, then one verification per peer per period with the peers' re-checks spread over it;
// a refused peer (bad evidence) stays refused and is never fetched again while its keys are the same;
// a policy refusal is re-judged from the chain each period and lifted when the policy admits the peer;
// an unreachable peer or a PCCS outage is retried with a backoff and never refused; a policy change
// re-judges every peer's last evidence without a new quote.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { bytesToHex, type Hex } from "viem";
import type { Member } from "../../src/model/member.ts";
import {
  createReattestation,
  FIRST_CONTACT_RETRIES,
  phaseOf,
  type ReattestationOptions,
} from "../../src/reattest/scheduler.ts";
import type { Verdict, VerifiedEvidence } from "../../src/reattest/verdict.ts";
import { captureLogger, testMember, waitFor } from "../helpers.ts";

const PERIOD = 600_000;
const HASH = "ab".repeat(32);

const member = (id: bigint) => testMember(id);

const pass: Verdict = { ok: true, kind: "simulated", composeHash: HASH, detail: "ok" };
const verified: VerifiedEvidence = { kind: "simulated", composeHash: HASH };

function harness(peers: Member[], overrides: Partial<ReattestationOptions> = {}) {
  let clock = 1_000_000;
  const fetched: { id: bigint; at: number; nonce: string; firstContact: { failures: number } | undefined }[] =
    [];
  const rejudged: bigint[] = [];
  const passed: bigint[] = [];
  let refusalChanges = 0;
  let verdictFor: (m: Member) => Verdict = () => pass;
  let policyFor: (m: Member) => Verdict = () => pass;
  let unreachable = new Set<bigint>();
  let head: bigint | undefined = 100n;
  const log = captureLogger();
  const r = createReattestation({
    peers: () => peers,
    fetch: async (m, nonce, firstContact) => {
      if (unreachable.has(m.memberId)) throw new Error("connect ECONNREFUSED");
      fetched.push({ id: m.memberId, at: clock, nonce: Buffer.from(nonce).toString("hex"), firstContact });
      return { doc: true };
    },
    judge: async (m) => {
      const verdict = verdictFor(m);
      return verdict.ok ? { verdict, verified } : { verdict };
    },
    rejudge: async (m) => {
      rejudged.push(m.memberId);
      return policyFor(m);
    },
    head: async () => {
      if (head === undefined) throw new Error("no provider answers");
      return head;
    },
    periodMs: PERIOD,
    concurrency: 100,
    logger: log.logger,
    now: () => clock,
    onRefusalChange: () => {
      refusalChanges += 1;
    },
    onPassed: (m) => passed.push(m.memberId),
    ...overrides,
  });
  return {
    r,
    fetched,
    rejudged,
    passed,
    log,
    refusalChanges: () => refusalChanges,
    advance: async (ms: number, step = 1000) => {
      const end = clock + ms;
      while (clock < end) {
        clock = Math.min(end, clock + step);
        await r.tick();
      }
    },
    now: () => clock,
    setVerdict: (f: (m: Member) => Verdict) => {
      verdictFor = f;
    },
    setPolicy: (f: (m: Member) => Verdict) => {
      policyFor = f;
    },
    setUnreachable: (ids: bigint[]) => {
      unreachable = new Set(ids);
    },
    /** The chain head the fences read; undefined: the read fails. */
    setHead: (block: bigint | undefined) => {
      head = block;
    },
  };
}

describe("peer re-attestation schedule", () => {
  test("first check at once, then one verification per peer per period, re-checks spread", async () => {
    const peers = [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n].map(member);
    const h = harness(peers);
    const start = h.now();
    await h.r.tick();
    assert.equal(h.fetched.length, 8, "every peer is attested when it first appears");
    assert.ok(h.r.report().every((a) => a.status === "passed"));
    const nonces = new Set(h.fetched.map((f) => f.nonce));
    assert.equal(nonces.size, 8, "a fresh nonce for every fetch");
    // Their next checks land at distinct phases inside the second period.
    const next = h.r.report().map((a) => a.nextAt - start);
    assert.equal(new Set(next).size, 8);
    for (const [i, n] of next.entries()) {
      assert.ok(n >= PERIOD && n < 2 * PERIOD, `peer ${i + 1} next at ${n}`);
      assert.equal(n, Math.round(PERIOD * (1 + phaseOf(peers[i]!.memberId))));
    }
    // Over ten periods: at most one verification per peer per period, and none starved.
    await h.advance(10 * PERIOD, 5_000);
    for (const p of peers) {
      const times = h.fetched.filter((f) => f.id === p.memberId).map((f) => f.at);
      assert.ok(times.length >= 10 && times.length <= 11, `peer ${p.memberId}: ${times.length} checks`);
      for (let i = 1; i < times.length; i++) {
        assert.ok(times[i]! - times[i - 1]! >= PERIOD, `peer ${p.memberId} re-checked within a period`);
      }
    }
  });

  test("attacker: bad evidence refuses the peer once; it is never fetched again with the same keys", async () => {
    const bad = member(2n);
    const peers = [member(1n), bad];
    const h = harness(peers);
    h.setVerdict((m) =>
      m.memberId === 2n
        ? { ok: false, cause: "evidence", reason: "ReportDataMismatch", detail: "bound to other keys" }
        : pass,
    );
    await h.r.tick();
    assert.equal(h.r.refused(bad), true);
    assert.equal(h.r.refused(peers[0]!), false);
    assert.equal(h.refusalChanges(), 1);
    assert.equal(h.r.get(2n)?.reason, "ReportDataMismatch");
    assert.ok(h.log.lines().some((l) => /peer attestation refused/.test(String(l.msg))));
    await h.advance(3 * PERIOD, 10_000);
    assert.equal(h.fetched.filter((f) => f.id === 2n).length, 1, "refused: not fetched again");
    assert.equal(h.r.refused(bad), true);
    // New keys on chain (it re-registered): a new peer to attest.
    peers[1] = { ...bad, wireguardKey: bytesToHex(randomBytes(32)) as Hex };
    h.setVerdict(() => pass);
    await h.r.tick();
    assert.equal(h.r.refused(peers[1]), false);
    assert.equal(h.r.get(2n)?.status, "passed");
  });

  test("a policy refusal is re-judged each period and lifted when the owner allows the peer again", async () => {
    const peer = member(3n);
    const h = harness([peer]);
    await h.r.tick();
    assert.equal(h.r.get(3n)?.status, "passed");
    // The owner withdraws its compose hash: the next policy change re-judges without a new quote.
    const withdrawn: Verdict = {
      ok: false,
      cause: "policy",
      reason: "ComposeHashNotAllowed",
      detail: "withdrawn",
    };
    h.setPolicy(() => withdrawn);
    h.r.policyChanged();
    await h.r.tick();
    assert.equal(h.fetched.length, 1, "no new quote for a policy change");
    assert.deepEqual(h.rejudged, [3n]);
    assert.equal(h.r.refused(peer), true);
    assert.equal(h.r.get(3n)?.reason, "ComposeHashNotAllowed");
    // Still withdrawn a period later; then allowed again: pending, and fetched afresh.
    await h.advance(PERIOD, 10_000);
    assert.equal(h.r.refused(peer), true);
    h.setPolicy(() => pass);
    await h.advance(PERIOD + 20_000, 10_000);
    assert.equal(h.r.refused(peer), false);
    assert.equal(h.fetched.length, 2, "fetched anew once admitted again");
    assert.equal(h.r.get(3n)?.status, "passed");
  });

  test("an unreachable peer or a PCCS outage is retried with a backoff, never refused", async () => {
    const peer = member(4n);
    const h = harness([peer], { retryMs: 5_000 });
    await h.r.tick();
    assert.equal(h.r.get(4n)?.status, "passed");
    // It passed once: a re-check that cannot reach it backs off from retryMs.
    h.setUnreachable([4n]);
    await h.advance(h.r.get(4n)!.nextAt - h.now(), 60_000);
    assert.equal(h.r.get(4n)?.status, "unreachable");
    assert.equal(h.r.refused(peer), false);
    const first = h.r.get(4n)!.nextAt - h.now();
    assert.equal(first, 5_000);
    await h.advance(5_000);
    assert.equal(h.r.get(4n)!.nextAt - h.now(), 10_000, "the backoff doubles");
    h.setUnreachable([]);
    await h.advance(10_000);
    assert.equal(h.r.get(4n)?.status, "passed");
    // No collateral (judge throws): not the peer's fault.
    const outage = harness([member(5n)], {
      judge: async () => {
        throw new Error("cannot fetch collateral from the PCCS");
      },
    });
    await outage.r.tick();
    assert.equal(outage.r.get(5n)?.status, "unreachable");
    assert.equal(outage.r.refused(member(5n)), false);
  });

  test("messages: a refused member's are refused at every block; an ended refusal fences the blocks up to the head then, failing closed until that head is read", async () => {
    const peer = member(3n);
    const h = harness([peer]);
    await h.r.tick();
    assert.equal(h.r.messagesRefused(3n, 1n), false, "a passed peer's messages are delivered");
    assert.equal(h.r.messagesRefused(9n, 1n), false, "a member never refused is not fenced");
    h.setPolicy(() => ({ ok: false, cause: "policy", reason: "DeviceRevoked", detail: "revoked" }));
    h.r.policyChanged();
    await h.r.tick();
    for (const block of [0n, 100n, 10n ** 12n]) assert.equal(h.r.messagesRefused(3n, block), true);
    // The owner allows it again, but the head cannot be read: still refused for every block.
    h.setPolicy(() => pass);
    h.setHead(undefined);
    await h.advance(PERIOD + 20_000, 10_000);
    assert.equal(h.r.refused(peer), false, "admitted again: back in the view");
    assert.equal(h.r.get(3n)?.status, "passed");
    assert.equal(h.r.messagesRefused(3n, 10n ** 12n), true, "fence unread: fail closed");
    assert.ok(h.log.lines().some((l) => /message fence/.test(String(l.msg)) && l.level === 40));
    h.setHead(250n);
    await h.r.tick();
    assert.equal(h.r.messagesRefused(3n, 250n), true, "mined at the head when the refusal ended");
    assert.equal(h.r.messagesRefused(3n, 251n), false, "mined after it");
    // A record refused for bad evidence that is replaced (new keys) keeps its old messages fenced.
    const bad = member(4n);
    const peers = [bad];
    const g = harness(peers);
    g.setVerdict(() => ({
      ok: false,
      cause: "evidence",
      reason: "ReportDataMismatch",
      detail: "other keys",
    }));
    await g.r.tick();
    assert.equal(g.r.messagesRefused(4n, 1n), true);
    peers[0] = { ...bad, identityKey: bytesToHex(randomBytes(32)) as Hex };
    g.setVerdict(() => pass);
    g.setHead(300n);
    await g.r.tick();
    assert.equal(g.r.get(4n)?.status, "passed", "the new record is another peer to attest");
    assert.equal(g.r.messagesRefused(4n, 300n), true, "the old record's refusal fenced at the head");
    assert.equal(g.r.messagesRefused(4n, 301n), false);
  });

  test("a peer never judged yet (a newcomer being peered) is retried fast: every 250 ms for 10 s, then doubling up to the period", async () => {
    const peer = member(4n);
    const h = harness([peer], { retryMs: 5_000 });
    h.setUnreachable([4n]);
    await h.r.tick();
    assert.equal(h.r.get(4n)?.status, "unreachable");
    assert.equal(h.r.refused(peer), false);
    const delays: number[] = [];
    for (let i = 0; i < FIRST_CONTACT_RETRIES + 15; i++) {
      const delay = h.r.get(4n)!.nextAt - h.now();
      delays.push(delay);
      await h.advance(delay, delay);
    }
    assert.equal(FIRST_CONTACT_RETRIES, 40);
    assert.deepEqual(delays, [
      ...Array.from({ length: FIRST_CONTACT_RETRIES }, () => 250),
      500,
      1000,
      2000,
      4000,
      8000,
      16_000,
      32_000,
      64_000,
      128_000,
      256_000,
      512_000,
      PERIOD,
      PERIOD,
      PERIOD,
      PERIOD,
    ]);
    h.setUnreachable([]);
    await h.advance(PERIOD, PERIOD);
    assert.equal(h.r.get(4n)?.status, "passed");
  });

  test("the fetch is told whether the peer was ever judged, and how many first tries failed", async () => {
    const contacts: Array<{ failures: number } | undefined> = [];
    let reachable = false;
    const h = harness([member(4n)], {
      fetch: async (_m, _nonce, firstContact) => {
        contacts.push(firstContact);
        if (!reachable) throw new Error("connect ECONNREFUSED");
        return {};
      },
    });
    await h.r.tick();
    await h.advance(500, 250);
    reachable = true;
    await h.advance(250, 250);
    assert.equal(h.r.get(4n)?.status, "passed");
    await h.advance(2 * PERIOD, PERIOD / 4);
    assert.ok(contacts.length >= 5);
    assert.deepEqual(contacts.slice(0, 4), [
      { failures: 0 },
      { failures: 1 },
      { failures: 2 },
      { failures: 3 },
    ]);
    assert.ok(
      contacts.slice(4).every((c) => c === undefined),
      "judged: an ordinary fetch",
    );
  });

  test("hurry: a never-judged peer that showed it is reachable is checked now, at most every 250 ms; never a judged or refused one", async () => {
    const peers = [member(4n), member(5n), member(6n)];
    const h = harness(peers, { firstRetryMs: 250 });
    h.setUnreachable([4n, 5n, 6n]);
    await h.r.tick();
    h.setVerdict((m) =>
      m.memberId === 6n
        ? { ok: false, cause: "evidence", reason: "ReportDataMismatch", detail: "other keys" }
        : pass,
    );
    h.setUnreachable([4n]);
    await h.advance(250, 250);
    assert.equal(h.r.get(5n)?.status, "passed");
    assert.equal(h.r.get(6n)?.status, "failed");
    // 4 is still unreachable; its next try is 250 ms away.
    await h.advance(100, 100);
    const due = h.r.get(4n)!.nextAt;
    assert.ok(due > h.now());
    h.r.hurry(peers[0]!);
    assert.equal(h.r.get(4n)!.nextAt, h.now(), "moved forward to now");
    h.setUnreachable([]);
    await h.r.tick();
    assert.equal(h.r.get(4n)?.status, "passed");
    // Judged now: hurry changes nothing for it, nor for a passed or refused peer.
    const before = h.r.report().map((a) => a.nextAt);
    for (const p of peers) h.r.hurry(p);
    assert.deepEqual(
      h.r.report().map((a) => a.nextAt),
      before,
    );
    // At most once per firstRetryMs for a never-judged peer.
    const later = member(7n);
    peers.push(later);
    h.setUnreachable([7n]);
    await h.r.tick();
    await h.advance(10, 10);
    h.r.hurry(later);
    assert.equal(h.r.get(7n)!.nextAt, h.now());
    await h.r.tick();
    const next = h.r.get(7n)!.nextAt;
    assert.ok(next > h.now());
    h.r.hurry(later);
    assert.equal(h.r.get(7n)!.nextAt, next, "a second hurry within 250 ms is ignored");
    await h.advance(250, 250);
    h.setUnreachable([]);
    await h.advance(0);
    h.r.hurry(later);
    await h.r.tick();
    assert.equal(h.r.get(7n)?.status, "passed");
  });

  test("onPassed: after each passing verification only, never on a failure, an unreachable peer or a re-judgement", async () => {
    const peers = [member(4n), member(5n), member(6n)];
    const h = harness(peers);
    h.setUnreachable([6n]);
    h.setVerdict((m) =>
      m.memberId === 5n
        ? { ok: false, cause: "evidence", reason: "ReportDataMismatch", detail: "other keys" }
        : pass,
    );
    await h.r.tick();
    assert.deepEqual(h.passed, [4n]);
    h.r.policyChanged();
    await h.r.tick();
    assert.ok(h.rejudged.includes(4n));
    assert.deepEqual(h.passed, [4n], "a re-judgement is not a verification");
    await h.advance(2 * PERIOD, PERIOD / 2);
    assert.ok(h.passed.length >= 2 && h.passed.every((id) => id === 4n), h.passed.join());
  });

  describe("the CSK gate (admits)", () => {
    const evidence: Verdict = {
      ok: false,
      cause: "evidence",
      reason: "ReportDataMismatch",
      detail: "bound to other keys",
    };
    const withdrawn: Verdict = { ok: false, cause: "policy", reason: "ComposeHashNotAllowed", detail: "w" };

    test("pending before the first verdict (and while it is unreachable), passed once it passes", async () => {
      const peer = member(1n);
      const h = harness([peer]);
      assert.equal(h.r.admits(peer), "pending", "never seen: no verdict");
      assert.equal(h.r.admits(member(9n)), "pending", "a member it does not track");
      h.setUnreachable([1n]);
      await h.r.tick();
      assert.equal(h.r.admits(peer), "pending", "unreachable is no verdict");
      h.setUnreachable([]);
      await h.advance(250, 250);
      assert.equal(h.r.admits(peer), "passed");
      // Another record (new keys) of the same member is another peer: no verdict yet.
      assert.equal(h.r.admits({ ...peer, identityKey: bytesToHex(randomBytes(32)) as Hex }), "pending");
    });

    test("attacker: bad evidence is refused, and stays refused at every moment with the same keys", async () => {
      const bad = member(2n);
      const h = harness([bad]);
      h.setVerdict(() => evidence);
      await h.r.tick();
      assert.equal(h.r.admits(bad), "refused");
      h.setVerdict(() => pass);
      for (let i = 0; i < 30; i++) {
        await h.advance(PERIOD / 10, PERIOD / 10);
        assert.equal(h.r.admits(bad), "refused");
      }
    });

    test("a policy refusal: refused; lifted: pending until fresh evidence passes, never passed before", async () => {
      const peer = member(3n);
      const h = harness([peer]);
      await h.r.tick();
      assert.equal(h.r.admits(peer), "passed");
      h.setPolicy(() => withdrawn);
      h.r.policyChanged();
      await h.r.tick();
      assert.equal(h.r.admits(peer), "refused");
      // Allowed again by the policy, but the peer does not answer: no verdict, so no key.
      h.setPolicy(() => pass);
      h.setUnreachable([3n]);
      await h.advance(PERIOD + 20_000, 10_000);
      assert.equal(h.r.refused(peer), false, "admitted by the policy again");
      assert.equal(h.r.admits(peer), "pending", "the old verdict does not come back");
      h.setUnreachable([]);
      await h.advance(PERIOD, 5_000);
      assert.equal(h.r.admits(peer), "passed", "fresh evidence passed");
    });

    test("a passing verdict expires when re-checks keep failing to reach the peer", async () => {
      const peer = member(5n);
      const h = harness([peer], { maxAgeMs: 3 * PERIOD });
      await h.r.tick();
      const passedAt = h.now();
      h.setUnreachable([5n]);
      while (h.now() - passedAt <= 3 * PERIOD) {
        assert.equal(h.r.admits(peer), "passed");
        await h.advance(60_000, 60_000);
      }
      assert.equal(h.r.admits(peer), "pending", "expired");
      h.setUnreachable([]);
      await h.advance(PERIOD, 60_000);
      assert.equal(h.r.admits(peer), "passed");
    });

    test("the run loop keeps a never-judged peer's 250 ms retries, not its 1 s tick (real clock)", async () => {
      let tries = 0;
      const h = harness([member(1n)], {
        now: Date.now,
        fetch: async () => {
          tries += 1;
          throw new Error("connect ECONNREFUSED");
        },
      });
      const abort = new AbortController();
      const began = Date.now();
      const running = h.r.run(abort.signal, 3_600_000);
      // At 0, 250, 500, 750 ms. Waited for rather than counted after a fixed sleep, which a loaded
      // machine's late timers cut short; the proof is the rate: more tries than a 1 s tick could make in
      // the time taken, and none faster than every 250 ms.
      try {
        await waitFor("four tries", () => tries >= 4, 10_000, 10);
      } finally {
        abort.abort();
        await running;
      }
      const elapsed = Date.now() - began;
      assert.ok(
        tries > Math.floor(elapsed / 1000) + 1 && tries <= Math.floor(elapsed / 250) + 1,
        `${tries} tries in ${elapsed} ms`,
      );
      assert.equal(h.r.get(1n)?.status, "unreachable");
    });

    test("a retry that falls due while the tick runs is made at once, not a whole tick later (a stalled loop)", async () => {
      // A loaded machine: the event loop stalls for a second after each failed try, so the 250 ms retry
      // is already overdue when the loop picks its pause. It used to skip over due checks and sleep the
      // whole tick (an hour here; 1 s in the sidecar).
      let skew = 0;
      let tries = 0;
      const h = harness([member(1n)], {
        now: () => Date.now() + skew,
        fetch: async () => {
          tries += 1;
          throw new Error("connect ECONNREFUSED");
        },
        observe: () => {
          skew += 1_000;
        },
      });
      const abort = new AbortController();
      const running = h.r.run(abort.signal, 3_600_000);
      try {
        await waitFor("three tries", () => tries >= 3, 5_000, 10);
      } finally {
        abort.abort();
        await running;
      }
      assert.equal(h.r.get(1n)?.status, "unreachable");
    });

    test("wake (and a view change) starts a newcomer's first check at once, not at the next tick", async () => {
      const peers = [member(1n)];
      const h = harness(peers);
      const abort = new AbortController();
      const running = h.r.run(abort.signal, 3_600_000);
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(h.fetched.length, 1);
      peers.push(member(2n));
      h.r.wake();
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(
        h.fetched.map((f) => f.id),
        [1n, 2n],
      );
      assert.equal(h.r.admits(peers[1]!), "passed");
      peers.push(member(3n));
      h.r.policyChanged();
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(h.r.admits(peers[2]!), "passed");
      abort.abort();
      await running;
    });
  });

  test("peered: a never-judged peer is first fetched once it is a WireGuard peer; a judged one is re-checked whatever it says", async () => {
    const peered = new Set<bigint>([1n]);
    const [one, two] = [member(1n), member(2n)];
    const h = harness([one!, two!], { peered: (m) => peered.has(m.memberId) });
    await h.r.tick();
    assert.deepEqual(
      h.fetched.map((f) => f.id),
      [1n],
      "peer 2 is in the view, not yet in WireGuard: no connection that would lose its SYN",
    );
    await h.advance(5_000, 250);
    assert.deepEqual(
      h.fetched.map((f) => f.id),
      [1n],
      "still not peered: never fetched, and never counted unreachable",
    );
    assert.equal(h.r.admits(two!), "pending");
    peered.add(2n);
    await h.r.tick();
    assert.deepEqual(
      h.fetched.map((f) => f.id),
      [1n, 2n],
      "fetched at the first wake after the reconciler peered it",
    );
    assert.deepEqual(h.fetched[1]!.firstContact, { failures: 0 });
    assert.equal(h.r.admits(two!), "passed");
    // Judged peers are re-checked each period even when the reconciler no longer lists them.
    peered.clear();
    await h.advance(2 * PERIOD, 5_000);
    for (const id of [1n, 2n]) {
      assert.ok(h.fetched.filter((f) => f.id === id).length >= 2, `peer ${id} re-checked`);
    }
  });

  test("a peer that left is forgotten", async () => {
    const peers = [member(6n), member(7n)];
    const h = harness(peers);
    await h.r.tick();
    peers.pop();
    await h.r.tick();
    assert.deepEqual(
      h.r.report().map((a) => a.memberId),
      [6n],
    );
  });
});
