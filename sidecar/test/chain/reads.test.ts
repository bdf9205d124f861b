// The quorum read interface against real JSON-RPC over HTTP: an in-process Hardhat chain served on a
// port, two pass-through proxies in front of it (the devnet's own), and the chain itself as a third
// provider. One proxy lies in each of the ways issue 12's review did; every read still returns the
// chain's truth, and the lie shows as an adversarial log line and a counted disagreement. With only one
// honest provider left (the other down) nothing is returned at all.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { FAKE_MEMBER } from "@attestmesh/devnet/rpc-proxy/lies.ts";
import { type RpcProxy, startRpcProxy } from "@attestmesh/devnet/rpc-proxy/proxy.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { MESSAGE_SENT_EVENT } from "@attestmesh/shared/contracts/events.ts";
import { custom, encodeEventTopics, getAbiItem, type Hex, keccak256, toHex } from "viem";
import { admit, type ClusterFixture, setupCluster, simulatedNode } from "../../../test/helpers/cluster.ts";
import { serveRpc } from "../../../test/helpers/rpcServer.ts";
import { createClusterReader } from "../../src/chain/cluster.ts";
import { MEMBERSHIP_EVENTS } from "../../src/chain/follower.ts";
import { jsonRpcHttp } from "../../src/chain/http.ts";
import {
  type ChainReads,
  createChainReads,
  HEAD_GATHER_MS,
  type ReadsTimers,
} from "../../src/chain/reads.ts";
import { countingTransport, createRpcTally } from "../../src/chain/transport.ts";
import { AttestmeshError } from "../../src/errors.ts";
import { captureLogger } from "../helpers.ts";

describe("quorum chain reads over real providers, one of them lying", () => {
  let fx: ClusterFixture;
  let served: Awaited<ReturnType<typeof serveRpc>>;
  let honest: RpcProxy;
  let liar: RpcProxy;
  const ids: bigint[] = [];

  function reads(quorum = 2) {
    const log = captureLogger("debug");
    const disagreements: string[] = [];
    const failures: string[] = [];
    const r: ChainReads = createChainReads({
      endpoints: [
        { origin: "hardhat", transport: custom(fx.connection.provider, { retryCount: 0 }) },
        { origin: "proxy-honest", transport: jsonRpcHttp(honest.url, { timeoutMs: 5_000 }) },
        { origin: "proxy-liar", transport: jsonRpcHttp(liar.url, { timeoutMs: 5_000 }) },
      ],
      quorum,
      logger: log.logger,
      observer: {
        disagreement: (read) => disagreements.push(read),
        providerFailure: (origin) => failures.push(origin),
      },
    });
    return { r, log, disagreements, failures };
  }

  before(async () => {
    fx = await setupCluster();
    for (let i = 0; i < 3; i++) ids.push(await admit(fx, simulatedNode(fx.kmsRoot)));
    await fx.owner.write.evict([ids[1]!, 7]);
    served = await serveRpc(fx.connection.provider);
    honest = await startRpcProxy({ upstream: served.url });
    liar = await startRpcProxy({ upstream: served.url });
  });

  after(async () => {
    await liar?.close();
    await honest?.close();
    await served?.close();
  });

  /** The truth, read straight from the chain through one provider. */
  async function truth() {
    const only = createChainReads({
      endpoints: [{ origin: "hardhat", transport: custom(fx.connection.provider, { retryCount: 0 }) }],
      quorum: 1,
      logger: captureLogger("silent").logger,
    });
    const at = await only.agreedBlock(0);
    return { at, members: await createClusterReader(only, fx.deployed.diamond).allMembers(at) };
  }

  test("all honest: the quorum agrees, nothing is reported, and two providers answer each read", async () => {
    liar.set({ behaviour: "honest" });
    const { r, disagreements } = reads();
    const t = await truth();
    const at = await r.agreedBlock(0);
    assert.deepEqual(at, t.at);
    const members = await createClusterReader(r, fx.deployed.diamond).allMembers(at);
    assert.deepEqual(members, t.members);
    assert.equal(await r.chainId(), fx.chainId);
    assert.deepEqual(disagreements, []);
  });

  for (const behaviour of ["inject-member", "hide-eviction", "other-chain"] as const) {
    test(`a provider that lies (${behaviour}) is outvoted on every read, logged as adversarial and counted`, async () => {
      liar.set({ behaviour });
      const { r, log, disagreements } = reads();
      const t = await truth();
      const reader = createClusterReader(r, fx.deployed.diamond);
      // Several rounds, so the liar's place in the rotating order covers every position.
      for (let round = 0; round < 3; round++) {
        const at = await r.agreedBlock(0);
        assert.deepEqual(at, t.at, "the agreed block is the chain's");
        const members = await reader.allMembers(at);
        assert.deepEqual(members, t.members, "membership is the chain's");
        assert.ok(!members.has(FAKE_MEMBER.memberId), "no injected member");
        assert.equal(members.get(ids[1]!)?.status, "evicted", "the eviction is not hidden");
        assert.equal((await reader.member(ids[1]!, at))?.status, "evicted");
        assert.equal(await reader.member(FAKE_MEMBER.memberId, at), undefined);
        const logs = await r.getLogs({
          address: fx.deployed.diamond,
          events: MEMBERSHIP_EVENTS,
          fromBlock: 0n,
          to: at,
        });
        assert.ok(
          logs.some((l) => l.eventName === "MemberEvicted"),
          "the MemberEvicted log is there",
        );
        assert.ok(!logs.some((l) => l.args.memberId === FAKE_MEMBER.memberId), "no forged registration");
        assert.equal(await r.chainId(), fx.chainId);
      }
      assert.ok(disagreements.length > 0, "the lie was seen");
      assert.ok(liar.stats().rewritten > 0, "the proxy did lie");
      const warned = log.lines().filter((l) => l.adversarial === true);
      assert.ok(warned.length > 0, "an adversarial line was logged");
      assert.ok(
        warned.every((l) => l.level === 40 && JSON.stringify(l.outvoted).includes("proxy-liar")),
        "the liar is named as outvoted",
      );
      assert.ok(warned.length <= new Set(disagreements).size, "rate-limited: one line per read kind");
    });
  }

  test("a forged MessageSent log is outvoted: the getLogs answer is the chain's", async () => {
    const recipient = ids[0]!;
    const event = getAbiItem({ abi: clusterAbi, name: "MessageSent" });
    const topics = encodeEventTopics({
      abi: [event],
      eventName: "MessageSent",
      args: { recipientId: recipient, senderId: ids[2]!, envelopeId: keccak256(toHex("forged")) },
    }) as Hex[];
    liar.set({
      behaviour: "forge-message",
      forgedLog: { address: fx.deployed.diamond, topics, data: "0x" },
    });
    const { r, disagreements } = reads();
    for (let round = 0; round < 3; round++) {
      const at = await r.agreedBlock(0);
      const logs = await r.getLogs({
        address: fx.deployed.diamond,
        events: [MESSAGE_SENT_EVENT],
        args: { recipientId: recipient },
        fromBlock: 0n,
        to: at,
      });
      assert.deepEqual(logs, [], "no message was ever sent on chain");
    }
    assert.ok(disagreements.includes("eth_getLogs"));
  });

  test("one honest provider down: reads keep working, with no disagreement", async () => {
    liar.set({ behaviour: "honest" });
    honest.set({ behaviour: "down" });
    try {
      const { r, disagreements, failures } = reads();
      const t = await truth();
      for (let round = 0; round < 3; round++) {
        const at = await r.agreedBlock(0);
        assert.deepEqual(await createClusterReader(r, fx.deployed.diamond).allMembers(at), t.members);
      }
      assert.deepEqual(disagreements, []);
      assert.ok(failures.includes("proxy-honest"));
    } finally {
      honest.set({ behaviour: "honest" });
    }
  });

  test("one provider rate-limited (HTTP 429): reads keep working", async () => {
    liar.set({ behaviour: "rate-limited" });
    const { r, disagreements } = reads();
    const t = await truth();
    const at = await r.agreedBlock(0);
    assert.deepEqual(await createClusterReader(r, fx.deployed.diamond).allMembers(at), t.members);
    assert.deepEqual(disagreements, []);
  });

  test("a liar and a provider down leave one honest answer: the read fails, retryable, and never returns the lie", async () => {
    liar.set({ behaviour: "inject-member" });
    honest.set({ behaviour: "down" });
    try {
      const { r } = reads();
      const at = await r.agreedBlock(0).catch(() => undefined);
      // The block hash itself agrees (the liar does not lie about it); the membership read cannot.
      assert.ok(at !== undefined);
      for (let round = 0; round < 3; round++) {
        await assert.rejects(createClusterReader(r, fx.deployed.diamond).allMembers(at), (error: unknown) => {
          assert.ok(error instanceof AttestmeshError);
          assert.equal(error.code, "RpcError");
          assert.equal(error.retryable, true);
          return true;
        });
      }
    } finally {
      honest.set({ behaviour: "honest" });
    }
  });

  test("a provider lying about the head (far ahead, or stale) moves nothing; a stale quorum cannot rewind", async () => {
    const t = await truth();
    for (const behaviour of ["far-head", "stale-head"] as const) {
      liar.set({ behaviour });
      const { r } = reads();
      for (let round = 0; round < 3; round++) assert.deepEqual(await r.agreedBlock(0), t.at, behaviour);
    }
    // Once the truth was agreed, a stale head can no longer pull the view back, even when the liar's
    // stale answer is the quorum-th highest (the other honest provider down).
    liar.set({ behaviour: "stale-head" });
    const { r } = reads();
    assert.deepEqual(await r.agreedBlock(0), t.at);
    honest.set({ behaviour: "down" });
    try {
      for (let round = 0; round < 3; round++) assert.equal((await r.agreedBlock(0)).number, t.at.number);
    } finally {
      honest.set({ behaviour: "honest" });
      liar.set({ behaviour: "honest" });
    }
  });

  /** Reads over the three providers with every call counted, and a clock the test moves. */
  function countedReads(timers?: ReadsTimers) {
    const tally = createRpcTally();
    const clock = { ms: 1_000_000 };
    const counted = (t: Parameters<typeof countingTransport>[0]) => countingTransport(t, tally.record);
    const disagreements: string[] = [];
    const r = createChainReads({
      endpoints: [
        { origin: "hardhat", transport: counted(custom(fx.connection.provider, { retryCount: 0 })) },
        { origin: "proxy-honest", transport: counted(jsonRpcHttp(honest.url, { timeoutMs: 5_000 })) },
        { origin: "proxy-liar", transport: counted(jsonRpcHttp(liar.url, { timeoutMs: 5_000 })) },
      ],
      quorum: 2,
      logger: captureLogger("silent").logger,
      observer: { disagreement: (read) => disagreements.push(read) },
      now: () => clock.ms,
      ...(timers === undefined ? {} : { timers }),
    });
    return { r, tally, clock, disagreements };
  }

  test("at rest: an unchanged head reuses its agreed hash, and answers at one block hash are agreed once", async () => {
    liar.set({ behaviour: "honest" });
    const { r, tally, clock } = countedReads();
    const reader = createClusterReader(r, fx.deployed.diamond);
    const at = await r.agreedBlock(0);
    const members = await reader.allMembers(at);
    const logs = await r.getLogs({
      address: fx.deployed.diamond,
      events: MEMBERSHIP_EVENTS,
      fromBlock: 0n,
      to: at,
    });
    tally.reset();
    for (let round = 0; round < 3; round++) {
      clock.ms += 1_000;
      const again = await r.agreedBlock(0);
      assert.deepEqual(again, at);
      assert.deepEqual(await reader.allMembers(again), members, "the same answer, decoded afresh");
      assert.deepEqual(
        await r.getLogs({
          address: fx.deployed.diamond,
          events: MEMBERSHIP_EVENTS,
          fromBlock: 0n,
          to: again,
        }),
        logs,
      );
    }
    // Each round asked every provider for its head, and nothing else.
    assert.deepEqual(tally.byMethod(), { eth_blockNumber: 9 });
    // After the reuse window the hash is agreed again (the answers at it are still known).
    clock.ms += 15_000;
    tally.reset();
    assert.deepEqual(await r.agreedBlock(0), at);
    assert.deepEqual(tally.byMethod(), { eth_blockNumber: 3, eth_getBlockByNumber: 2 });
    // A new block: a new hash, and every read at it is agreed again.
    await fx.connection.provider.request({ method: "evm_mine", params: [] });
    tally.reset();
    const next = await r.agreedBlock(0);
    assert.equal(next.number, at.number + 1n);
    assert.deepEqual(await reader.allMembers(next), members);
    const calls = tally.byMethod();
    assert.equal(calls.eth_getBlockByNumber, 2);
    assert.ok((calls.eth_call ?? 0) >= 2, "the records were read again at the new block");
  });

  test("pollers on one beat share one head request; a call after it went out gets its own, and sees a new block", async () => {
    liar.set({ behaviour: "honest" });
    const { r, tally } = countedReads();
    await r.agreedBlock(0);
    tally.reset();
    // Three pollers (CSK tick, membership, messages) asking at once: one eth_blockNumber per provider.
    const [a, b, c] = await Promise.all([r.agreedBlock(0), r.agreedBlock(1), r.agreedBlock(0)]);
    assert.deepEqual(a, c);
    assert.equal(b.number, a.number - 1n);
    assert.equal(tally.byMethod().eth_blockNumber, 3);
    // A call made once the request went out is not answered by it: a block mined after that call is seen.
    // The gather is released by hand, so the order of request, mining and answer does not depend on load.
    const held: Array<() => void> = [];
    const gate: ReadsTimers = {
      setTimeout: (fn, ms) => (ms === HEAD_GATHER_MS ? held.push(fn) : setTimeout(fn, ms)),
      clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
    };
    const gated = countedReads(gate);
    const release = async () => {
      await new Promise(setImmediate);
      assert.equal(held.length, 1, "one head request gathering");
      held.shift()!();
      await new Promise(setImmediate);
    };
    const first = gated.r.agreedBlock(0);
    await release();
    const second = gated.r.agreedBlock(0);
    assert.equal((await first).number, a.number);
    await fx.connection.provider.request({ method: "evm_mine", params: [] });
    await release();
    assert.equal(
      (await second).number,
      a.number + 1n,
      "the later call saw the block mined after the first asked",
    );
    assert.equal(gated.tally.byMethod().eth_blockNumber, 6);
  });

  test("with confirmations, the head's and the confirmed block's hashes are both kept: polls at rest ask only for heads", async () => {
    liar.set({ behaviour: "honest" });
    const { r, tally, clock } = countedReads();
    const head = await r.agreedBlock(0);
    const confirmed = await r.agreedBlock(1);
    tally.reset();
    for (let round = 0; round < 3; round++) {
      clock.ms += 1_000;
      assert.deepEqual(await r.agreedBlock(0), head);
      assert.deepEqual(await r.agreedBlock(1), confirmed);
    }
    assert.deepEqual(tally.byMethod(), { eth_blockNumber: 18 });
    // The next block: its hash is agreed once; the confirmed block is the old head, already agreed.
    await fx.connection.provider.request({ method: "evm_mine", params: [] });
    tally.reset();
    const next = await r.agreedBlock(0);
    assert.deepEqual(await r.agreedBlock(1), head);
    assert.equal(next.number, head.number + 1n);
    assert.deepEqual(tally.byMethod(), { eth_blockNumber: 6, eth_getBlockByNumber: 2 });
  });

  test("a lie is never remembered: a read that failed its quorum is asked again, and the truth is then kept", async () => {
    liar.set({ behaviour: "inject-member" });
    const { r, disagreements } = countedReads();
    const t = await truth();
    const reader = createClusterReader(r, fx.deployed.diamond);
    const at = await r.agreedBlock(0);
    honest.set({ behaviour: "down" });
    try {
      for (let round = 0; round < 2; round++) {
        await assert.rejects(
          reader.allMembers(at),
          (e: unknown) => e instanceof AttestmeshError && e.retryable,
        );
      }
    } finally {
      honest.set({ behaviour: "honest" });
    }
    // The same reads at the same hash: the honest quorum is asked now, and its answer is the chain's.
    for (let round = 0; round < 3; round++) {
      const members = await reader.allMembers(at);
      assert.deepEqual(members, t.members);
      assert.ok(!members.has(FAKE_MEMBER.memberId), "no injected member");
    }
    assert.ok(disagreements.length > 0, "the lie was seen");
    liar.set({ behaviour: "honest" });
  });

  test("a block replaced at the same height: reads at the old hash fail once, then the new hash is agreed", async () => {
    liar.set({ behaviour: "honest" });
    const rpc = (method: string, params: unknown[] = []) =>
      fx.connection.provider.request({ method, params });
    const { r } = countedReads();
    const reader = createClusterReader(r, fx.deployed.diamond);
    const snapshot = await rpc("evm_snapshot");
    await rpc("evm_mine");
    const old = await r.agreedBlock(0);
    await reader.allMembers(old);
    await rpc("evm_revert", [snapshot]);
    // Another block at the same height (a later timestamp, so another hash).
    const latest = (await rpc("eth_getBlockByNumber", ["latest", false])) as { timestamp: Hex };
    await rpc("evm_mine", [Number(BigInt(latest.timestamp)) + 1_000]);
    const replaced = await r.agreedBlock(0);
    assert.equal(replaced.number, old.number, "the head is at the same height");
    // The old hash is remembered until a read at it fails (it is no longer canonical).
    await assert.rejects(
      r.readContract({
        address: fx.deployed.diamond,
        abi: clusterAbi,
        functionName: "currentCsk",
        at: replaced,
      }),
      (e: unknown) => e instanceof AttestmeshError && e.retryable,
    );
    const fresh = await r.agreedBlock(0);
    assert.equal(fresh.number, old.number);
    assert.notEqual(fresh.hash, old.hash, "the replaced block's hash is agreed afresh");
    await reader.allMembers(fresh);
  });

  test("agreedBlock(confirmations) is the agreed head − confirmations", async () => {
    liar.set({ behaviour: "honest" });
    const { r } = reads();
    const t = await truth();
    assert.deepEqual(await r.agreedBlock(0), t.at);
    const lagging = await r.agreedBlock(1);
    assert.equal(lagging.number, t.at.number - 1n);
  });
});

describe("quorum chain reads on a given clock", () => {
  test("the head gather waits on the timers it is given (the simulator's, devnet/src/sim), not Node's", async () => {
    const asked: string[] = [];
    const due: (() => void)[] = [];
    const hash = `0x${"ab".repeat(32)}` as Hex;
    const r = createChainReads({
      endpoints: [
        {
          origin: "fake",
          transport: custom({
            async request({ method }: { method: string }) {
              asked.push(method);
              return method === "eth_blockNumber" ? "0x5" : { number: "0x5", hash };
            },
          }),
        },
      ],
      quorum: 1,
      logger: captureLogger("debug").logger,
      timers: {
        setTimeout(fn, ms) {
          assert.equal(ms, HEAD_GATHER_MS);
          due.push(fn);
          return due.length;
        },
        clearTimeout() {},
      },
    });
    const block = r.agreedBlock(0);
    await new Promise((resolve) => setTimeout(resolve, 5 * HEAD_GATHER_MS));
    assert.deepEqual(asked, [], "no head request before the given timer fires");
    assert.equal(due.length, 1);
    due[0]!();
    assert.deepEqual(await block, { number: 5n, hash });
    assert.deepEqual(asked, ["eth_blockNumber", "eth_getBlockByNumber"]);
  });
});
