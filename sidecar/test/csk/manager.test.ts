// The CSK state machine with a scripted chain and clock, the real dstack derivation (simulator library)
// and real custody: who commits an epoch and when (the lowest live member at once; rank r after r ×
// takeover; a dead or no-longer-active candidate is skipped), that a restart re-derives the committed
// key, that a lost race zeroes the key and pulls, and the order peers are asked in.
import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";
import { createKmsRoot, createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { type Address, getAddress, hexToBytes, keccak256 } from "viem";
import { randomAppId } from "../../../test/helpers/cluster.ts";
import type { CommitOutcome, CskChain, CskEpochState, ReopenOutcome } from "../../src/csk/chain.ts";
import type { FetchResult } from "../../src/csk/client.ts";
import { cskKeyPath, deriveCsk } from "../../src/csk/derive.ts";
import { type CskCustody, createCskCustody } from "../../src/csk/holder.ts";
import {
  CONFIRM_RETRY_MAX_MS,
  createCskManager,
  type HeardPeers,
  PULL_CANDIDATES_PER_TICK,
} from "../../src/csk/manager.ts";
import type { StandingCheck } from "../../src/csk/standing.ts";
import { directoryFrom } from "../../src/meshnet/directory.ts";
import type { Member } from "../../src/model/member.ts";
import { captureLogger, simulatorKeySource } from "../helpers.ts";

const CLUSTER = getAddress("0x5fbdb2315678afecb367f032d93f642f64180aa3");
const TAKEOVER = 10_000;
const HB_TIMEOUT = 6000;

function member(id: bigint): Member {
  return {
    memberId: id,
    appId: getAddress(`0x${id.toString(16).padStart(40, "0")}`) as Address,
    memberKey: getAddress(`0x${id.toString(16).padStart(40, "0")}`) as Address,
    wireguardKey: `0x${"11".repeat(32)}`,
    identityKey: `0x${id.toString(16).padStart(64, "0")}`,
    meshIp: 0x0a4d0000 + Number(id),
    status: "active",
    registeredAt: 0,
  };
}

/** The contract's re-open delay, in the fake chain's clock (the test's monotonic ms). */
const REOPEN_MS = 300_000;

/**
 * A scripted chain that keeps the contract's epoch rules: the first commitment is final, a barred
 * member may not commit, a confirmation by a non-committer is recorded once, and a member other than
 * the committer re-opens an unconfirmed epoch REOPEN_MS after its commitment (the chain's clock is
 * the test's `clock()`).
 */
function fakeChain(initial: CskEpochState, canCommit = true, clock: () => number = () => 0) {
  let state: CskEpochState = { confirmer: 0n, barred: 0n, ...initial };
  let committedAt = clock();
  const commits: Array<{ memberId: bigint; epoch: bigint; commitment: `0x${string}` }> = [];
  const confirms: Array<{ memberId: bigint; epoch: bigint; commitment: `0x${string}` }> = [];
  const reopens: Array<{ memberId: bigint; epoch: bigint; outcome: string }> = [];
  let next: CommitOutcome | undefined;
  const chain: CskChain = {
    canCommit,
    current: async () => state,
    async commit(memberId, epoch, commitment) {
      commits.push({ memberId, epoch, commitment });
      if (next !== undefined) return next;
      if (epoch !== state.epoch) return "epoch-moved";
      if (state.commitment !== undefined) return "already-committed";
      if (state.barred === memberId) return "barred";
      state = { ...state, commitment, committer: memberId };
      committedAt = clock();
      return "committed";
    },
    async confirm(memberId, epoch, commitment) {
      confirms.push({ memberId, epoch, commitment });
      if (epoch !== state.epoch) return "epoch-moved";
      assert.notEqual(memberId, state.committer, "the contract refuses a committer's confirmation");
      assert.equal(commitment, state.commitment, "the contract refuses another commitment");
      if (state.confirmer === 0n) state = { ...state, confirmer: memberId };
      return "confirmed";
    },
    async reopen(memberId, epoch) {
      const outcome = ((): ReopenOutcome => {
        if (epoch !== state.epoch) return "epoch-moved";
        assert.notEqual(state.commitment, undefined, "the contract refuses an uncommitted epoch");
        assert.notEqual(memberId, state.committer, "the contract refuses the committer's re-open");
        if (state.confirmer !== 0n) return "already-confirmed";
        if (clock() < committedAt + REOPEN_MS) return "too-early";
        state = {
          epoch: epoch + 1n,
          commitment: undefined,
          committer: 0n,
          confirmer: 0n,
          barred: state.committer,
        };
        return "reopened";
      })();
      reopens.push({ memberId, epoch, outcome });
      return outcome;
    },
  };
  return {
    chain,
    commits,
    confirms,
    reopens,
    state: () => state,
    set: (s: CskEpochState) => {
      state = { confirmer: 0n, barred: 0n, ...s };
      committedAt = clock();
    },
    failNextWith: (o: CommitOutcome) => {
      next = o;
    },
  };
}

/** A pull the first peer asked answers with (a copy of) `key`; the attempt names `peer`. */
function pulledFrom(key: Uint8Array, peer: bigint) {
  return (_epoch: bigint, order: readonly bigint[]): FetchResult => ({
    key: Uint8Array.from(key),
    from: order[0],
    attempts: [{ peer, outcome: "ok" }],
  });
}
describe("CSK manager", () => {
  const cvm = createSimulatedCvm({ kmsRoot: createKmsRoot(), appId: hexToBytes(randomAppId()) });
  const keySource = simulatorKeySource(cvm);
  const members = new Map<bigint, Member>();
  let now = 0;
  let live: bigint[] = [];
  let startedAt: number | undefined = 0;
  let reports = new Map<bigint, { epoch: bigint; holdsCsk: boolean }>();
  let custody: CskCustody;
  let fetches: Array<{ epoch: bigint; peers: readonly bigint[] }>;
  let fetchResult: (epoch: bigint, peers: readonly bigint[]) => FetchResult;
  let active: (id: bigint) => boolean;

  const peers: HeardPeers = {
    live: () => live,
    report: (id) => reports.get(id),
    startedAt: () => startedAt,
    timeoutMs: HB_TIMEOUT,
  };

  function manager(self: bigint, chain: CskChain, standing?: StandingCheck) {
    return createCskManager({
      ...(standing === undefined ? {} : { standing }),
      reopenAfterMs: REOPEN_MS,
      self,
      cluster: { chainId: 31337, cluster: CLUSTER },
      chain,
      keySource,
      custody,
      client: {
        fetch: async ({ epoch, peers: order }) => {
          fetches.push({ epoch, peers: order });
          return fetchResult(epoch, order);
        },
      },
      directory: directoryFrom(() => members),
      peers,
      takeoverMs: TAKEOVER,
      logger: captureLogger("silent").logger,
      monoMs: () => now,
      stillActive: async (id) => active(id),
    });
  }

  beforeEach(() => {
    members.clear();
    for (const id of [1n, 2n, 3n]) members.set(id, member(id));
    now = 100_000;
    live = [];
    startedAt = 0;
    reports = new Map();
    custody = createCskCustody();
    fetches = [];
    fetchResult = () => ({ key: undefined, from: undefined, attempts: [] });
    active = () => true;
  });

  test("the key is derived on a versioned path naming chain, cluster and epoch", async () => {
    assert.equal(cskKeyPath(31337, CLUSTER, 4n), `attestmesh/v1/csk/31337/${CLUSTER.toLowerCase()}/4`);
    const a = await deriveCsk(keySource, 31337, CLUSTER, 0n);
    assert.deepEqual(await deriveCsk(keySource, 31337, CLUSTER, 0n), a, "deterministic");
    assert.notDeepEqual(await deriveCsk(keySource, 31337, CLUSTER, 1n), a, "a new key per epoch");
    assert.notDeepEqual(await deriveCsk(keySource, 8453, CLUSTER, 0n), a, "bound to the chain");
    const raw = await keySource.getKey(cskKeyPath(31337, CLUSTER, 0n), "attestmesh-csk-v1", "secp256k1");
    assert.notDeepEqual(raw.key, a, "not the dstack-attested key itself");
  });

  test("a lone first member commits epoch 0 with its derived key and holds it", async () => {
    members.delete(2n);
    members.delete(3n);
    const fake = fakeChain({ epoch: 0n, commitment: undefined, committer: 0n });
    const m = manager(1n, fake.chain);
    assert.equal(await m.tick(), "committed");
    const expected = keccak256(await deriveCsk(keySource, 31337, CLUSTER, 0n));
    assert.deepEqual(fake.commits, [{ memberId: 1n, epoch: 0n, commitment: expected }]);
    assert.equal(custody.current()?.commitment, expected);
    assert.equal(m.acquired(), true);
    assert.equal(await m.tick(), "holding");
    assert.equal(fake.commits.length, 1);
  });

  test("revoked (stale at the head): zeroes its key, neither commits nor pulls, and resumes once admitted again", async () => {
    members.delete(2n);
    members.delete(3n);
    const fake = fakeChain({ epoch: 0n, commitment: undefined, committer: 0n });
    let verdict: "active" | "stale" = "active";
    const m = manager(1n, fake.chain, { of: async () => verdict });
    assert.equal(await m.tick(), "committed");
    assert.notEqual(custody.current(), undefined);
    // The owner revokes its device: the revocation opens epoch 1, and the head says it is stale.
    verdict = "stale";
    fake.set({ epoch: 1n, commitment: undefined, committer: 0n });
    assert.equal(await m.tick(), "not-standing");
    assert.equal(custody.current(), undefined, "the key is zeroed");
    assert.equal(await m.tick(), "not-standing");
    assert.equal(fake.commits.length, 1, "no commitment while stale");
    assert.equal(fetches.length, 0, "no pull while stale");
    // The owner allows it again: it commits the open epoch.
    verdict = "active";
    assert.equal(await m.tick(), "committed");
    assert.equal(custody.current()?.epoch, 1n);
  });

  test("after a restart the committer re-derives the same key instead of pulling it", async () => {
    const commitment = keccak256(await deriveCsk(keySource, 31337, CLUSTER, 0n));
    const fake = fakeChain({ epoch: 0n, commitment, committer: 1n });
    const m = manager(1n, fake.chain);
    assert.equal(await m.tick(), "re-derived");
    assert.equal(custody.current()?.commitment, commitment);
    assert.equal(fetches.length, 0);
  });

  test("a committer whose re-derived key does not match pulls it instead", async () => {
    const fake = fakeChain({ epoch: 0n, commitment: keccak256(new Uint8Array(32)), committer: 1n });
    live = [2n];
    assert.equal(await manager(1n, fake.chain).tick(), "pull-failed");
    assert.deepEqual(fetches[0]?.peers, [2n]);
  });

  test("rank 1 waits one takeover period, then commits (the lowest member is alive but silent on chain)", async () => {
    live = [1n];
    startedAt = now - 60_000;
    members.delete(3n);
    const fake = fakeChain({ epoch: 3n, commitment: undefined, committer: 0n });
    const m = manager(2n, fake.chain);
    assert.equal(await m.tick(), "waiting-turn");
    now += TAKEOVER - 1;
    assert.equal(await m.tick(), "waiting-turn");
    now += 1;
    assert.equal(await m.tick(), "committed");
    assert.equal(fake.commits[0]?.memberId, 2n);
    assert.equal(custody.current()?.epoch, 3n);
  });

  test("rank 2 waits two takeover periods", async () => {
    live = [1n, 2n];
    startedAt = now - 60_000;
    const fake = fakeChain({ epoch: 1n, commitment: undefined, committer: 0n });
    const m = manager(3n, fake.chain);
    assert.equal(await m.tick(), "waiting-turn");
    now += 2 * TAKEOVER - 1;
    assert.equal(await m.tick(), "waiting-turn");
    now += 1;
    assert.equal(await m.tick(), "committed");
  });

  test("issue 16: a member ranked far down reads the chain only for the candidates whose turn could have come", async () => {
    // Before: rank() asked the chain about every candidate ranked ahead, one read after another, so at
    // N = 100 the member with id 77 spent 76 sequential head reads (7.6 s in the simulator) before its
    // first pull of each new epoch, and CSK rotation grew linearly with N.
    for (let id = 4n; id <= 100n; id++) members.set(id, member(id));
    live = [...members.keys()].filter((id) => id !== 77n);
    startedAt = now - 60_000;
    const asked: bigint[] = [];
    active = (id) => {
      asked.push(id);
      return true;
    };
    const fake = fakeChain({ epoch: 1n, commitment: undefined, committer: 0n });
    const m = manager(77n, fake.chain);
    assert.equal(await m.tick(), "waiting-turn");
    assert.deepEqual(asked, [1n], "at once only rank 0's turn has come: one candidate ahead settles it");
    now += 2 * TAKEOVER;
    assert.equal(await m.tick(), "waiting-turn");
    assert.deepEqual(asked, [1n, 2n, 3n], "two takeovers later, three candidates ahead settle it");
    // Candidates no longer active still let it through once its turn has come.
    active = (id) => {
      asked.push(id);
      return id >= 77n;
    };
    const fresh = manager(77n, fakeChain({ epoch: 2n, commitment: undefined, committer: 0n }).chain);
    assert.equal(await fresh.tick(), "committed", "every candidate ahead is gone from the chain");
  });

  test("a dead chosen member (no counted heartbeat) is skipped: the next one commits at once", async () => {
    live = [3n];
    startedAt = now - HB_TIMEOUT;
    const fake = fakeChain({ epoch: 2n, commitment: undefined, committer: 0n });
    assert.equal(await manager(2n, fake.chain).tick(), "committed");
  });

  test("before it has listened for one heartbeat timeout, a node assumes every active member may be alive", async () => {
    live = [];
    startedAt = now - HB_TIMEOUT + 1;
    const fake = fakeChain({ epoch: 2n, commitment: undefined, committer: 0n });
    assert.equal(await manager(2n, fake.chain).tick(), "waiting-turn");
  });

  test("a candidate no longer active on chain (the view lags an eviction) is skipped", async () => {
    live = [1n, 3n];
    startedAt = now - 60_000;
    active = (id) => id !== 1n;
    const fake = fakeChain({ epoch: 1n, commitment: undefined, committer: 0n });
    assert.equal(await manager(2n, fake.chain).tick(), "committed");
  });

  test("a chain read that fails counts the candidate as active (this node waits), and is asked again", async () => {
    live = [1n, 3n];
    startedAt = now - 60_000;
    let calls = 0;
    active = () => {
      calls += 1;
      if (calls === 1) throw new Error("rpc down");
      return false;
    };
    const fake = fakeChain({ epoch: 1n, commitment: undefined, committer: 0n });
    const m = manager(2n, fake.chain);
    assert.equal(await m.tick(), "waiting-turn");
    assert.equal(await m.tick(), "committed", "the second read says member 1 is gone");
  });

  test("a lost race zeroes the generated key; the next tick pulls the winner's key", async () => {
    const fake = fakeChain({ epoch: 1n, commitment: undefined, committer: 0n });
    members.delete(2n);
    members.delete(3n);
    fake.failNextWith("already-committed");
    const m = manager(1n, fake.chain);
    assert.equal(await m.tick(), "lost-race");
    assert.equal(custody.current(), undefined, "nothing held");
    members.set(2n, member(2n));
    const winner = new Uint8Array(32).fill(5);
    fake.set({ epoch: 1n, commitment: keccak256(winner), committer: 2n });
    live = [2n];
    fetchResult = pulledFrom(winner, 2n);
    assert.equal(await m.tick(), "pulled");
    assert.equal(custody.current()?.commitment, keccak256(winner));
  });

  test("issue 13: a commitment nobody serves is re-opened after the delay; an honest member commits the next epoch", async () => {
    // Member 1 commits epoch 4 out of turn to a hash of nothing it will serve.
    const fake = fakeChain(
      { epoch: 4n, commitment: keccak256(new Uint8Array(32).fill(9)), committer: 1n },
      true,
      () => now,
    );
    live = [1n, 3n];
    reports = new Map([[1n, { epoch: 4n, holdsCsk: true }]]); // it even claims to hold it
    fetchResult = (_e, order) => ({
      key: undefined,
      from: undefined,
      attempts: order.map((peer) => ({ peer, outcome: peer === 1n ? "timeout" : "not-held" })),
    });
    const m = manager(2n, fake.chain);
    assert.equal(await m.tick(), "pull-failed");
    now += REOPEN_MS - 1;
    assert.equal(await m.tick(), "pull-failed", "not before the delay");
    assert.deepEqual(fake.reopens, [], "and no transaction tried early");
    now += 1;
    assert.equal(await m.tick(), "reopened");
    assert.deepEqual(fake.reopens, [{ memberId: 2n, epoch: 4n, outcome: "reopened" }]);
    assert.equal(fake.state().barred, 1n, "the griefer is barred from epoch 5");
    // Epoch 5: the griefer is skipped in the commit order, so member 2 (rank 0 now) commits at once.
    assert.equal(await m.tick(), "committed");
    assert.deepEqual(
      fake.commits.map((c) => [c.memberId, c.epoch]),
      [[2n, 5n]],
    );
    assert.equal(custody.current()?.epoch, 5n);
    assert.equal(m.acquired(), true);
  });

  test("the barred member does not try to commit", async () => {
    const fake = fakeChain({ epoch: 5n, commitment: undefined, committer: 0n, barred: 1n });
    live = [1n, 2n, 3n];
    assert.equal(await manager(1n, fake.chain).tick(), "waiting-turn");
    now += TAKEOVER * 10;
    assert.equal(await manager(1n, fake.chain).tick(), "waiting-turn");
    assert.deepEqual(fake.commits, []);
  });

  test("a puller confirms the epoch once; a confirmed epoch is never re-opened, however long pulls fail", async () => {
    const key = new Uint8Array(32).fill(7);
    const fake = fakeChain({ epoch: 2n, commitment: keccak256(key), committer: 1n }, true, () => now);
    live = [1n];
    fetchResult = pulledFrom(key, 1n);
    const m = manager(2n, fake.chain);
    assert.equal(await m.tick(), "pulled");
    assert.deepEqual(fake.confirms, [{ memberId: 2n, epoch: 2n, commitment: keccak256(key) }]);
    assert.equal(await m.tick(), "holding");
    assert.equal(fake.confirms.length, 1, "once");
    // Member 3 cannot pull (say its link to 1 is down), but the epoch is confirmed: it never re-opens.
    custody.clear();
    fetchResult = () => ({ key: undefined, from: undefined, attempts: [] });
    const other = manager(3n, fake.chain);
    assert.equal(await other.tick(), "pull-failed");
    now += REOPEN_MS * 3;
    assert.equal(await other.tick(), "pull-failed");
    assert.deepEqual(fake.reopens, []);
  });

  test("pullers confirm in id order, one takeover apart, so one transaction normally suffices", async () => {
    const key = new Uint8Array(32).fill(8);
    const fake = fakeChain({ epoch: 3n, commitment: keccak256(key), committer: 1n });
    live = [1n, 2n];
    fetchResult = pulledFrom(key, 1n);
    const m = manager(3n, fake.chain); // second among the non-committers 2 and 3
    assert.equal(await m.tick(), "pulled");
    assert.equal(fake.confirms.length, 0, "member 2 goes first");
    now += TAKEOVER;
    assert.equal(await m.tick(), "holding");
    assert.deepEqual(
      fake.confirms.map((c) => c.memberId),
      [3n],
      "member 2 did not: member 3 does",
    );
  });

  test("a confirmation that fails (the bundler is down) is tried again on a later tick", async () => {
    const key = new Uint8Array(32).fill(6);
    const fake = fakeChain({ epoch: 6n, commitment: keccak256(key), committer: 1n });
    const realConfirm = fake.chain.confirm;
    let failures = 1;
    fake.chain.confirm = async (...args) => {
      if (failures-- > 0) throw new Error("bundler unreachable");
      return realConfirm(...args);
    };
    live = [1n];
    fetchResult = pulledFrom(key, 1n);
    const m = manager(2n, fake.chain);
    assert.equal(await m.tick(), "pulled");
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(fake.state().confirmer, 0n, "the first attempt failed");
    assert.equal(await m.tick(), "holding");
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(fake.state().confirmer, 2n);
  });

  test("a confirmation refused again and again backs off to one attempt a minute", async () => {
    const key = new Uint8Array(32).fill(5);
    const fake = fakeChain({ epoch: 7n, commitment: keccak256(key), committer: 1n });
    const attempts: number[] = [];
    fake.chain.confirm = async () => {
      attempts.push(now);
      throw new Error("the sponsorship service refused to pay for confirmCsk");
    };
    live = [1n];
    fetchResult = pulledFrom(key, 1n);
    const m = manager(2n, fake.chain);
    const start = now;
    assert.equal(await m.tick(), "pulled");
    // Ten minutes of one tick a second (the runtime's cadence), the refusal settling between ticks.
    for (let second = 1; second <= 600; second++) {
      await new Promise((resolve) => setImmediate(resolve));
      now = start + second * 1000;
      assert.equal(await m.tick(), "holding");
    }
    const gaps = attempts.slice(1).map((at, i) => at - attempts[i]!);
    assert.equal(gaps[0], 1000, "the first failure is retried on the next tick");
    assert.deepEqual(gaps.slice(1, 6), [2000, 4000, 8000, 16_000, 32_000], "then twice as long each time");
    assert.ok(
      gaps.slice(6).every((gap) => gap === CONFIRM_RETRY_MAX_MS),
      "then once a minute",
    );
    assert.ok(attempts.length <= 17, `${attempts.length} attempts in ten minutes`);
    assert.equal(fake.state().confirmer, 0n);
    // A new epoch starts afresh: its first attempt is not held back by the old epoch's failures.
    const nextKey = new Uint8Array(32).fill(4);
    fake.set({ epoch: 8n, commitment: keccak256(nextKey), committer: 1n });
    fetchResult = pulledFrom(nextKey, 1n);
    fake.chain.confirm = async () => {
      attempts.push(now);
      return "confirmed";
    };
    const before = attempts.length;
    assert.equal(await m.tick(), "pulled");
    assert.equal(attempts.length, before + 1);
  });

  test("a node without a gas key never commits", async () => {
    members.delete(2n);
    members.delete(3n);
    const fake = fakeChain({ epoch: 0n, commitment: undefined, committer: 0n }, false);
    assert.equal(await manager(1n, fake.chain).tick(), "cannot-commit");
    assert.equal(fake.commits.length, 0);
  });

  test("peers are asked holders first, then other live peers; a peer that served a bogus key goes last", async () => {
    const key = new Uint8Array(32).fill(9);
    const fake = fakeChain({ epoch: 4n, commitment: keccak256(key), committer: 1n });
    members.set(4n, member(4n));
    live = [1n, 2n, 4n];
    reports = new Map([
      [1n, { epoch: 4n, holdsCsk: false }],
      [2n, { epoch: 3n, holdsCsk: true }],
      [4n, { epoch: 4n, holdsCsk: true }],
    ]);
    fetchResult = () => ({
      key: undefined,
      from: undefined,
      attempts: [
        { peer: 4n, outcome: "hash-mismatch" },
        { peer: 1n, outcome: "timeout" },
      ],
    });
    const m = manager(3n, fake.chain);
    assert.equal(await m.tick(), "pull-failed");
    // The holder first, then the other live peers in random order.
    assert.equal(fetches[0]?.peers[0], 4n);
    assert.deepEqual([...fetches[0]!.peers.slice(1)].sort(), [1n, 2n]);
    assert.equal(await m.tick(), "pull-failed");
    assert.equal(fetches[1]?.peers.at(-1), 4n, "the bogus peer is asked last");
    assert.deepEqual([...fetches[1]!.peers.slice(0, 2)].sort(), [1n, 2n]);
  });

  test("issue 14: 'not attested yet' means ask again soon: no suspicion, and the key once a verdict passed", async () => {
    const key = new Uint8Array(32).fill(7);
    const fake = fakeChain({ epoch: 4n, commitment: keccak256(key), committer: 1n });
    live = [1n, 2n];
    reports = new Map([
      [1n, { epoch: 4n, holdsCsk: true }],
      [2n, { epoch: 4n, holdsCsk: true }],
    ]);
    let attested = false;
    fetchResult = (_epoch, order) =>
      attested
        ? { key: Uint8Array.from(key), from: order[0], attempts: [{ peer: order[0]!, outcome: "ok" }] }
        : {
            key: undefined,
            from: undefined,
            attempts: order.map((peer) => ({ peer, outcome: "not-attested-yet" as const })),
          };
    const m = manager(3n, fake.chain);
    for (let i = 0; i < 3; i++) {
      assert.equal(await m.tick(), "awaiting-attestation");
      assert.equal(custody.current(), undefined);
      assert.equal(m.acquired(), false);
      // Both stay holders asked first in random order: nobody is pushed last as a suspect.
      assert.deepEqual([...fetches.at(-1)!.peers].sort(), [1n, 2n]);
    }
    attested = true;
    assert.equal(await m.tick(), "pulled");
    assert.deepEqual(custody.current()?.key.reveal(), key);
    assert.equal(fake.reopens.length, 0);
  });

  test("after a rotation in a large mesh, a tick asks a few random peers, not everyone nor the lowest ids", async () => {
    const key = new Uint8Array(32).fill(9);
    const fake = fakeChain({ epoch: 4n, commitment: keccak256(key), committer: 1n });
    for (let id = 4n; id <= 60n; id++) members.set(id, member(id));
    live = [...members.keys()].filter((id) => id !== 3n);
    reports = new Map([[42n, { epoch: 4n, holdsCsk: true }]]);
    fetchResult = () => ({ key: undefined, from: undefined, attempts: [] });
    const m = manager(3n, fake.chain);
    const firsts = new Set<bigint>();
    for (let i = 0; i < 6; i++) {
      assert.equal(await m.tick(), "pull-failed");
      const order = fetches.at(-1)!.peers;
      assert.equal(order.length, PULL_CANDIDATES_PER_TICK, "a bounded number of peers per tick");
      assert.equal(order[0], 42n, "the known holder first");
      assert.equal(new Set(order).size, order.length);
      firsts.add(order[1]!);
    }
    assert.ok(firsts.size > 1, "the other peers are drawn at random, so pullers spread");
  });

  test("with no live peer, every other active member is asked", async () => {
    const fake = fakeChain({ epoch: 0n, commitment: keccak256(new Uint8Array(32).fill(1)), committer: 1n });
    live = [];
    await manager(3n, fake.chain).tick();
    assert.deepEqual(fetches[0]?.peers, [1n, 2n]);
  });
});

describe("CSK custody", () => {
  test("replacing the key zeroes the old bytes; clearing zeroes and forgets", () => {
    const custody = createCskCustody();
    const changes: string[] = [];
    custody.onChange((c) => changes.push(c.type === "acquired" ? `acquired ${c.epoch}` : "cleared"));
    const first = new Uint8Array(32).fill(1);
    custody.set(0n, first);
    assert.equal(custody.current()?.commitment, keccak256(new Uint8Array(32).fill(1)));
    const second = new Uint8Array(32).fill(2);
    custody.set(1n, second);
    assert.deepEqual(first, new Uint8Array(32), "the replaced key was zeroed");
    assert.equal(custody.current()?.epoch, 1n);
    custody.clear();
    assert.deepEqual(second, new Uint8Array(32));
    assert.equal(custody.current(), undefined);
    assert.deepEqual(changes, ["acquired 0", "acquired 1", "cleared"]);
    assert.throws(() => custody.set(2n, new Uint8Array(31)));
  });

  test("the key never prints", () => {
    const custody = createCskCustody();
    custody.set(0n, new Uint8Array(32).fill(0xab));
    const held = custody.current()!;
    assert.ok(!JSON.stringify({ ...held, epoch: String(held.epoch) }).includes("abab"));
    assert.ok(!String(held.key).includes("171"));
  });
});
