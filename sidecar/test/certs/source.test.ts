// The chain certificate source on an in-process Hardhat chain whose provider refuses wide eth_getLogs
// ranges, as Base's providers do: thousands of blocks lie between a member app's creation and its
// registration, and the certificate is still found, in a bounded number of RPC calls; a provider that
// lies gets the member refused or left unavailable, never verified.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { verifyMemberCertificate } from "@attestmesh/shared/certs/certificate.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { Registry } from "prom-client";
import {
  type Address,
  custom,
  type EIP1193RequestFn,
  encodeEventTopics,
  getAbiItem,
  type Hex,
  type Transport,
} from "viem";
import { createMemberApp, fixtureTrust } from "../../../test/helpers/certs.ts";
import {
  admit,
  type ClusterFixture,
  leave,
  setupCluster,
  simulatedNode,
} from "../../../test/helpers/cluster.ts";
import { createMemberCertifier } from "../../src/certs/certifier.ts";
import { createChainCertificateSource } from "../../src/certs/source.ts";
import { connectChain } from "../../src/chain/client.ts";
import { createClusterReader } from "../../src/chain/cluster.ts";
import type { RegistrationLocation } from "../../src/chain/follower.ts";
import { countingTransport, createRpcTally } from "../../src/chain/transport.ts";
import type { Member } from "../../src/model/member.ts";
import { captureLogger } from "../helpers.ts";

/** Blocks mined between a member app's creation and its registration. */
const GAP = 3000;

type Request = { method: string; params?: unknown };
type Rewrite = (request: Request, answer: unknown) => unknown;

/**
 * A transport over the Hardhat provider that refuses eth_getLogs spanning more than `maxSpan` blocks
 * with `refusal` (a provider's own wording), and passes every answer through `rewrite` (a liar).
 */
function providerTransport(
  fx: ClusterFixture,
  maxSpan: bigint,
  refusal: { code: number; message: string },
  rewrite: Rewrite = (_, answer) => answer,
): Transport {
  const inner = custom(fx.connection.provider, { retryCount: 0 });
  return ((params) => {
    const transport = inner(params);
    const request = (async (args: Request, options: unknown) => {
      if (args.method === "eth_getLogs") {
        const [filter] = args.params as [{ fromBlock?: Hex; toBlock?: Hex }];
        const head = BigInt((await transport.request({ method: "eth_blockNumber" })) as Hex);
        const at = (tag: Hex | undefined) => (tag?.startsWith("0x") ? BigInt(tag) : head);
        if (at(filter.toBlock) - at(filter.fromBlock) + 1n > maxSpan) {
          throw Object.assign(new Error(refusal.message), { code: refusal.code });
        }
      }
      return rewrite(args, await transport.request(args as never, options as never));
    }) as EIP1193RequestFn;
    return { ...transport, request };
  }) as Transport;
}

describe("chain certificate source", () => {
  let fx: ClusterFixture;
  const nodes: { member: Member; salt: Hex; txHash?: Hex }[] = [];

  const rpc = (method: string, params: unknown[] = []) => fx.connection.provider.request({ method, params });
  /** One block at a time: EDR's OP chain type panics on a multi-block hardhat_mine. */
  const mine = async (blocks: number) => {
    for (let i = 0; i < blocks; i++) await rpc("evm_mine");
  };

  async function connect(maxSpan: bigint, refusal = RANGE_TOO_LARGE, rewrite?: Rewrite) {
    const tally = createRpcTally();
    const chain = await connectChain({
      transport: countingTransport(providerTransport(fx, maxSpan, refusal, rewrite), tally.record),
      cluster: fx.deployed.diamond,
      expectedChainId: fx.chainId,
    });
    return { chain, tally };
  }

  const RANGE_TOO_LARGE = { code: -32602, message: "query exceeds max block range 1000" };

  async function memberRecord(memberId: bigint): Promise<Member> {
    const { chain } = await connect(1_000_000n);
    const member = await createClusterReader(chain.reads, chain.cluster).member(
      memberId,
      await chain.reads.agreedBlock(0),
    );
    assert.ok(member);
    return member;
  }

  before(async () => {
    fx = await setupCluster();
    for (let i = 0; i < 2; i++) {
      const { appId, salt } = await createMemberApp(fx);
      // Empty blocks between the app's creation and its registration (a node booting days later).
      await mine(GAP);
      const memberId = await admit(fx, simulatedNode(fx.kmsRoot, appId));
      nodes.push({ member: await memberRecord(memberId), salt });
    }
    await mine(GAP);
  });

  async function source(
    options: { maxSpan: bigint; maxLogBlocks?: bigint; nearCalls?: number; refusal?: typeof RANGE_TOO_LARGE },
    rewrite?: Rewrite,
  ) {
    const { chain, tally } = await connect(options.maxSpan, options.refusal, rewrite);
    const log = captureLogger();
    const fetch = createChainCertificateSource({
      client: chain.publicClient,
      reads: chain.reads,
      cluster: chain.cluster,
      logger: log.logger,
      ...(options.maxLogBlocks === undefined ? {} : { maxLogBlocks: options.maxLogBlocks }),
      ...(options.nearCalls === undefined ? {} : { nearCalls: options.nearCalls }),
    });
    tally.reset();
    return { fetch, tally, log, chain };
  }

  async function verifies(member: Member, fetch: (m: Member) => Promise<unknown>): Promise<void> {
    const certificate = (await fetch(member)) as Parameters<typeof verifyMemberCertificate>[0];
    const verified = await verifyMemberCertificate(certificate, await fixtureTrust(fx), member);
    assert.equal(verified.memberKey, member.memberKey);
  }

  test("a provider capped at 1,000 blocks: found and verified, in a bounded number of calls", async (t) => {
    const { fetch, tally } = await source({ maxSpan: 1000n, maxLogBlocks: 1000n });
    const [first, second] = nodes;
    await verifies(first!.member, fetch);
    const calls = tally.byMethod();
    t.diagnostic(`first member, cold: ${JSON.stringify(calls)}`);
    // The app was created GAP blocks (plus a few) before it registered: 4 backward spans of 1,000.
    assert.equal(calls.eth_getLogs, 1 + Math.ceil((GAP + 10) / 1000));
    assert.ok(
      (calls.eth_getBlockByNumber ?? 0) <= 16,
      `registration block found in few headers: ${JSON.stringify(calls)}`,
    );
    assert.ok(tally.total() <= 30, `bounded: ${JSON.stringify(calls)}`);
    tally.reset();
    await verifies(second!.member, fetch);
    assert.ok(tally.total() <= 30, `bounded: ${JSON.stringify(tally.byMethod())}`);
    // The salt is kept: the same member again costs no salt search (at most its registration log, which
    // the quorum reads may even remember for the same block hash).
    tally.reset();
    await verifies(first!.member, fetch);
    assert.ok((tally.byMethod().eth_getLogs ?? 0) <= 1, JSON.stringify(tally.byMethod()));
  });

  test("a provider that refuses the default 10,000-block span: the source halves it and succeeds", async (t) => {
    for (const refusal of [
      RANGE_TOO_LARGE,
      { code: -32005, message: "query returned more than 10000 results" },
      {
        code: -32000,
        message: "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range",
      },
    ]) {
      const { fetch, tally, log } = await source({ maxSpan: 700n, refusal });
      await verifies(nodes[0]!.member, fetch);
      assert.match(log.text(), /narrowing it/);
      // The span halves at most log2(10,000 / 700) + 1 = 5 times (each refusal tried twice where viem
      // retries the code, -32005), then spans of at least 350 reach back to the app's creation.
      const refusals = refusal.code === -32005 ? 10 : 5;
      const spans = Math.ceil((GAP + 10) / 350) + 1;
      t.diagnostic(`${refusal.message}: ${JSON.stringify(tally.byMethod())}`);
      assert.ok(
        (tally.byMethod().eth_getLogs ?? 0) <= 1 + refusals + spans,
        `${refusal.message}: ${JSON.stringify(tally.byMethod())}`,
      );
    }
  });

  test("an app created long before it registered: its creation block is bisected, not scanned", async (t) => {
    const { fetch, tally } = await source({ maxSpan: 100n, maxLogBlocks: 100n, nearCalls: 2 });
    await verifies(nodes[1]!.member, fetch);
    const calls = tally.byMethod();
    t.diagnostic(`bisected: ${JSON.stringify(calls)}`);
    // Two near spans, the registration, the creation block: no walk through GAP / 100 spans.
    assert.equal(calls.eth_getLogs, 2 + 1 + 1);
    assert.ok((calls.eth_getCode ?? 0) <= 16, JSON.stringify(calls));
  });

  test("an app id admitted twice (it left and came back): each record's certificate has its nonce", async () => {
    const { appId } = await createMemberApp(fx);
    const node = simulatedNode(fx.kmsRoot, appId);
    const first = await admit(fx, node);
    await leave(fx, node, first);
    await mine(1500);
    const second = await admit(fx, node);
    const { fetch } = await source({ maxSpan: 1000n, maxLogBlocks: 1000n });
    for (const [memberId, nonce] of [
      [second, 1n],
      [first, 0n],
    ] as const) {
      const member = await memberRecord(memberId);
      const certificate = await fetch(member);
      assert.equal(certificate.nonce, nonce);
      await verifies(member, fetch);
    }
  });

  test("a provider that refuses every range still fails cleanly (retryable, nothing certified)", async () => {
    const { fetch } = await source({ maxSpan: 0n });
    await assert.rejects(fetch(nodes[0]!.member));
  });

  /** Where the member's MemberRegistered log is, as the membership follower reads it. */
  async function registrationOf(memberId: bigint): Promise<RegistrationLocation> {
    const [log] = await fx.publicClient.getLogs({
      address: fx.deployed.diamond,
      event: getAbiItem({ abi: clusterAbi, name: "MemberRegistered" }),
      args: { memberId },
      fromBlock: 0n,
      strict: true,
    });
    assert.ok(log);
    return { blockNumber: log.blockNumber, transactionHash: log.transactionHash };
  }

  describe("a registration hint (where the follower read the member's MemberRegistered log)", () => {
    test("the same certificate as the full search, with no header search, no log read for it, in fewer calls", async (t) => {
      const member = nodes[0]!.member;
      const searched = await source({ maxSpan: 10_000n });
      const full = await searched.fetch(member);
      const fullCalls = searched.tally.byMethod();
      const hinted = await source({ maxSpan: 10_000n });
      const fromHint = await hinted.fetch(member, await registrationOf(member.memberId));
      const hintCalls = hinted.tally.byMethod();
      t.diagnostic(`full search: ${JSON.stringify(fullCalls)}; hinted: ${JSON.stringify(hintCalls)}`);
      assert.deepEqual(fromHint, full);
      await verifies(member, async () => fromHint);
      // The transaction and its receipt, isMemberApp and registrationNonce, one span for the salt.
      assert.deepEqual(hintCalls, {
        eth_getTransactionByHash: 1,
        eth_getTransactionReceipt: 1,
        eth_call: 2,
        eth_getLogs: 1,
      });
      assert.doesNotMatch(hinted.log.text(), /leads nowhere/);
    });

    test("a hint that leads elsewhere falls back to the full search, which verifies", async () => {
      const member = nodes[0]!.member;
      const own = await registrationOf(member.memberId);
      const other = await registrationOf(nodes[1]!.member.memberId);
      const { chain } = await connect(1_000_000n);
      // A transaction of the cluster with no register call: the member app's creation.
      const [created] = await chain.publicClient.getLogs({
        address: chain.cluster,
        event: getAbiItem({ abi: clusterAbi, name: "MemberAppCreated" }),
        args: { app: member.appId },
        fromBlock: 0n,
        strict: true,
      });
      assert.ok(created);
      const wrong: [string, RegistrationLocation, RegExp][] = [
        ["another member's registration", other, /registered no member by this id/],
        [
          "a transaction with no register call",
          { blockNumber: created.blockNumber, transactionHash: created.transactionHash },
          /registered no member by this id/,
        ],
        ["the right transaction, a wrong block", { ...own, blockNumber: own.blockNumber - 1n }, /not \d+/],
        ["no such transaction", { ...own, transactionHash: `0x${"0d".repeat(32)}` }, /cannot read/],
      ];
      for (const [what, hint, problem] of wrong) {
        const { fetch, log, tally } = await source({ maxSpan: 10_000n });
        await verifies(member, (m) => fetch(m, hint));
        const line = log.lines().find((l) => l.msg.startsWith("the registration hint leads nowhere"));
        assert.ok(line, `${what}: logged`);
        assert.equal(line.level, 20, `${what}: at debug`);
        assert.match(String(line.problem), problem, what);
        assert.ok((tally.byMethod().eth_getBlockByNumber ?? 0) > 0, `${what}: searched`);
      }
    });

    test("a hint never makes an uncertifiable record count", async () => {
      const [a, b] = nodes;
      const hint = await registrationOf(a!.member.memberId);
      const pinned = await fixtureTrust(fx);
      const forgeries: [string, Member][] = [
        // Another id carrying A's genuine keys: its certificate would verify, but no log names this id.
        ["A's keys under another id", { ...a!.member, memberId: 900n }],
        ["A's id with B's WireGuard key", { ...a!.member, wireguardKey: b!.member.wireguardKey }],
        ["A's id with B's identity key", { ...a!.member, identityKey: b!.member.identityKey }],
        ["A's id with a stranger's member key", { ...a!.member, memberKey: fx.strangerAddress as Address }],
        ["A's id with B's app id", { ...a!.member, appId: b!.member.appId }],
      ];
      for (const [what, forged] of forgeries) {
        const { fetch } = await source({ maxSpan: 10_000n });
        const certifier = createMemberCertifier({
          pinned,
          source: fetch,
          logger: captureLogger().logger,
          registry: new Registry(),
        });
        const result = await certifier.certify(forged, hint);
        assert.equal(result.ok, false, what);
        assert.equal(certifier.cached(forged), undefined, what);
      }
    });

    /** A provider `ms` away that records when each answer began its wait and when it arrived. */
    function timed(ms: number) {
      const spans: { start: number; end: number; method: string }[] = [];
      const rewrite: Rewrite = async (request, answer) => {
        const start = performance.now();
        await delay(ms);
        spans.push({ start, end: performance.now(), method: request.method });
        return answer;
      };
      /** The longest run of requests each sent after the one before it was answered. */
      const roundTrips = () => {
        const sorted = [...spans].sort((a, b) => a.start - b.start);
        const depth: number[] = [];
        sorted.forEach((s, i) => {
          depth[i] = 1 + Math.max(0, ...sorted.slice(0, i).map((p, j) => (p.end <= s.start ? depth[j]! : 0)));
        });
        return Math.max(0, ...depth);
      };
      return { rewrite, spans, roundTrips };
    }

    // Issue 15: a newcomer's certificate stood between its record and every existing node's WireGuard
    // diff, isMemberApp before the salt's span and both after the record.
    test("a hinted fetch reads side by side: one round trip to a provider 100 ms away", async () => {
      const member = nodes[0]!.member;
      const hint = await registrationOf(member.memberId);
      const provider = timed(100);
      const { fetch } = await source({ maxSpan: 10_000n }, provider.rewrite);
      provider.spans.length = 0; // connecting read the chain id
      await verifies(member, (m) => fetch(m, hint));
      assert.equal(provider.roundTrips(), 1, JSON.stringify(provider.spans.map((s) => s.method)));
    });

    test("prefetched from the registration log: the fetch after the record reads nothing more", async () => {
      const member = nodes[0]!.member;
      const hint = await registrationOf(member.memberId);
      const provider = timed(20);
      const { fetch, tally } = await source({ maxSpan: 10_000n }, provider.rewrite);
      fetch.prefetch?.({ memberId: member.memberId, appId: member.appId, location: hint });
      await delay(300);
      const prefetchCalls = tally.total();
      tally.reset();
      await verifies(member, (m) => fetch(m, hint));
      assert.ok(prefetchCalls > 0, "the prefetch read");
      assert.equal(tally.total(), 0, JSON.stringify(tally.byMethod()));
      // Used once: a second fetch reads again.
      await fetch(member, hint);
      assert.ok(tally.total() > 0);
    });

    test("a prefetch for another location or app id is not taken, and proves nothing", async () => {
      const [a, b] = nodes;
      const own = await registrationOf(a!.member.memberId);
      const other = await registrationOf(b!.member.memberId);
      const pinned = await fixtureTrust(fx);
      // B's registration prefetched under A's app id, and A's under B's: A is still certified from its
      // own hint; a forged record is still refused whatever was prefetched for it.
      const { fetch, log } = await source({ maxSpan: 10_000n });
      fetch.prefetch?.({ memberId: a!.member.memberId, appId: a!.member.appId, location: other });
      fetch.prefetch?.({ memberId: b!.member.memberId, appId: b!.member.appId, location: own });
      await verifies(a!.member, (m) => fetch(m, own));
      const certifier = createMemberCertifier({
        pinned,
        source: fetch,
        logger: captureLogger().logger,
        registry: new Registry(),
      });
      fetch.prefetch?.({ memberId: a!.member.memberId, appId: a!.member.appId, location: own });
      const forged = { ...a!.member, wireguardKey: b!.member.wireguardKey };
      const result = await certifier.certify(forged, own);
      assert.equal(result.ok, false);
      assert.equal(certifier.cached(forged), undefined);
      assert.doesNotMatch(log.text(), /unhandled/i);
    });

    test("certifying one newly registered member: RPC calls and time, searched and hinted", async (t) => {
      const member = nodes[0]!.member;
      const hint = await registrationOf(member.memberId);
      // The call counts are asserted (the same every run); the times are a printed median, so a few
      // runs do: 20 cost 15 s of the suite for the same figures.
      const RUNS = 5;
      const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
      for (const latencyMs of [0, 20]) {
        // A provider `latencyMs` away (each request waits that long before Hardhat answers it).
        const slow: Rewrite = async (_, answer) => {
          if (latencyMs > 0) await delay(latencyMs);
          return answer;
        };
        const times: Record<"searched" | "hinted", number[]> = { searched: [], hinted: [] };
        const calls: Record<"searched" | "hinted", number> = { searched: 0, hinted: 0 };
        for (let run = 0; run < RUNS; run++) {
          for (const mode of ["searched", "hinted"] as const) {
            // A running sidecar's source: another member certified before (the search's floor read).
            const { fetch, tally } = await source({ maxSpan: 10_000n }, slow);
            await fetch(nodes[1]!.member);
            tally.reset();
            const start = performance.now();
            await fetch(member, mode === "hinted" ? hint : undefined);
            times[mode].push(performance.now() - start);
            calls[mode] = tally.total();
          }
        }
        t.diagnostic(
          `provider latency ${latencyMs} ms, ${RUNS} runs: searched ${calls.searched} requests, median ${median(times.searched).toFixed(1)} ms; hinted ${calls.hinted} requests, median ${median(times.hinted).toFixed(1)} ms`,
        );
        assert.ok(calls.hinted < calls.searched, JSON.stringify(calls));
      }
    });
  });

  describe("a lying provider: the member is left unverifiable, never verified", () => {
    const created = encodeEventTopics({ abi: clusterAbi, eventName: "MemberAppCreated" })[0];

    async function certify(rewrite: Rewrite) {
      const { fetch } = await source({ maxSpan: 10_000n }, rewrite);
      const certifier = createMemberCertifier({
        pinned: await fixtureTrust(fx),
        source: fetch,
        logger: captureLogger().logger,
        registry: new Registry(),
      });
      return certifier.certify(nodes[0]!.member);
    }

    test("another member app's salt for this app: refused (AppIdNotMemberApp)", async () => {
      const result = await certify((request, answer) =>
        request.method === "eth_getLogs" && Array.isArray(answer)
          ? answer.map((l: { topics: Hex[] }) =>
              l.topics[0] === created ? { ...l, topics: [l.topics[0], l.topics[1], nodes[1]!.salt] } : l,
            )
          : answer,
      );
      assert.equal(result.ok, false);
      assert.equal(!result.ok && result.reason, "AppIdNotMemberApp");
    });

    /** Member B's registration transaction hash. */
    async function otherRegistration(): Promise<Hex> {
      const { chain } = await connect(1_000_000n);
      const [log] = await chain.publicClient.getLogs({
        address: chain.cluster,
        event: getAbiItem({ abi: clusterAbi, name: "MemberRegistered" }),
        args: { memberId: nodes[1]!.member.memberId },
        fromBlock: 0n,
        strict: true,
      });
      return log!.transactionHash;
    }

    test("another member's registration transaction: unavailable", async () => {
      const other = await rpc("eth_getTransactionByHash", [await otherRegistration()]);
      const result = await certify((request, answer) =>
        request.method === "eth_getTransactionByHash"
          ? { ...(other as object), hash: (answer as { hash: Hex }).hash }
          : answer,
      );
      assert.equal(result.ok, false);
      assert.equal(!result.ok && result.reason, "CertificateUnavailable");
    });

    test("this member's registration log pointing at another member's transaction: unavailable", async () => {
      const other = await otherRegistration();
      const registered = encodeEventTopics({ abi: clusterAbi, eventName: "MemberRegistered" })[0];
      let lied = 0;
      const result = await certify((request, answer) =>
        request.method === "eth_getLogs" && Array.isArray(answer)
          ? answer.map((l: { topics: Hex[] }) => {
              if (l.topics[0] !== registered) return l;
              lied += 1;
              return { ...l, transactionHash: other };
            })
          : answer,
      );
      assert.ok(lied > 0, "the lie was served");
      assert.equal(result.ok, false);
      assert.equal(!result.ok && result.reason, "CertificateUnavailable");
    });

    test("a member record whose key is not the registration's signer: unavailable", async () => {
      const { fetch } = await source({ maxSpan: 10_000n });
      const forged: Member = { ...nodes[0]!.member, memberKey: fx.strangerAddress as Address };
      await assert.rejects(fetch(forged), /CertificateUnavailable|unavailable/);
    });
  });
});
