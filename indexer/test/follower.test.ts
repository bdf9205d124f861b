// The cluster follower against a provider that caps eth_getLogs ranges, as hosted Base providers do
// (10,000 blocks at most, some 2,000 or fewer): the follower narrows its batches until the provider
// accepts them and emits exactly the logs a follower reading the same chain without a cap emits —
// nothing skipped, nothing twice. A real cluster on an in-process Hardhat node.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { pino } from "pino";
import { createPublicClient, custom } from "viem";
import { type ClusterFixture, setupCluster } from "../../test/helpers/cluster.ts";
import { createClusterFollower, type FollowerEvent } from "../src/follower.ts";

/** Blocks one eth_getLogs call may span at the capped provider. */
const CAP = 2n;

describe("the cluster follower over a provider that caps log ranges", { timeout: 120_000 }, () => {
  let fx: ClusterFixture;
  let refused = 0;
  let widest = 0n;

  /** The fixture's chain as a provider refusing ranges wider than CAP, worded as providers word it. */
  function capped() {
    return createPublicClient({
      transport: custom(
        {
          async request({ method, params }: { method: string; params?: unknown }) {
            if (method === "eth_getLogs") {
              const [filter] = params as [{ fromBlock: string; toBlock: string }];
              const span = BigInt(filter.toBlock) - BigInt(filter.fromBlock) + 1n;
              if (span > CAP) {
                refused += 1;
                throw Object.assign(new Error(`block range too large: ${span} > ${CAP}`), { code: -32000 });
              }
              if (span > widest) widest = span;
            }
            return fx.connection.provider.request({ method, params } as never);
          },
        },
        { retryCount: 0 },
      ),
    });
  }

  const follow = (client: ReturnType<typeof capped>) =>
    createClusterFollower({
      client: client as never,
      cluster: fx.deployed.diamond,
      startBlock: 0n,
      confirmations: 0,
      batchBlocks: 100,
      logger: pino({ level: "silent" }),
    });
  const ids = (events: readonly FollowerEvent[]) =>
    events.map((e) => `${e.log.blockNumber}:${e.log.logIndex}:${e.removed}`);

  before(async () => {
    fx = await setupCluster();
    // Policy changes in blocks of their own: logs spread over more blocks than one capped call reads.
    for (const required of [true, false, true, false, true, false]) {
      await fx.publicClient.waitForTransactionReceipt({
        hash: await fx.owner.write.setRequireTcbUpToDate([required]),
      });
    }
  });

  test("the provider does refuse the follower's batch", async () => {
    const head = await fx.publicClient.getBlockNumber();
    await assert.rejects(
      capped().getLogs({ address: fx.deployed.diamond, fromBlock: 0n, toBlock: head }),
      /block range too large/,
    );
  });

  test("narrowed batches yield every log once, in order, as an uncapped follower does", async () => {
    const reference = await follow(fx.publicClient as never).tick();
    assert.ok(reference.events.length >= 8, `${reference.events.length} logs on the chain`);
    refused = 0;
    widest = 0n;
    const follower = follow(capped());
    const first = await follower.tick();
    assert.deepEqual(ids(first.events), ids(reference.events));
    assert.equal(first.processed, reference.processed);
    assert.ok(refused > 0, "the cap was hit");
    assert.ok(widest <= CAP && widest > 0n);
    // The narrower span is kept: a later tick over new blocks is not refused again.
    await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.owner.write.setRequireTcbUpToDate([true]),
    });
    const refusedBefore = refused;
    const second = await follower.tick();
    assert.equal(second.events.length, 1);
    assert.equal(refused, refusedBefore, "no refusal once narrowed");
  });
});

// Issue 15: a step that found one new block cost four round trips in a row (the head, the last block's
// hash, the logs, the new block's hash) before the push went out.
describe("a follow step's round trips", { timeout: 120_000 }, () => {
  test("one new block: two round trips to a provider 100 ms away, the same logs", async () => {
    const fx = await setupCluster();
    const spans: { start: number; end: number }[] = [];
    const far = createPublicClient({
      transport: custom(
        {
          async request({ method, params }: { method: string; params?: unknown }) {
            const answer = await fx.connection.provider.request({ method, params } as never);
            const start = performance.now();
            await delay(100);
            spans.push({ start, end: performance.now() });
            return answer;
          },
        },
        { retryCount: 0 },
      ),
    });
    const follower = createClusterFollower({
      client: far as never,
      cluster: fx.deployed.diamond,
      startBlock: 0n,
      confirmations: 0,
      batchBlocks: 100,
      logger: pino({ level: "silent" }),
    });
    await follower.tick();
    await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.owner.write.setRequireTcbUpToDate([true]),
    });
    spans.length = 0;
    const step = await follower.tick();
    assert.equal(step.events.length, 1);
    assert.equal(step.reorg, undefined);
    /** The longest run of requests each sent after the one before it was answered. */
    const sorted = [...spans].sort((a, b) => a.start - b.start);
    const depth: number[] = [];
    sorted.forEach((s, i) => {
      depth[i] = 1 + Math.max(0, ...sorted.slice(0, i).map((p, j) => (p.end <= s.start ? depth[j]! : 0)));
    });
    assert.equal(Math.max(...depth), 2, `${spans.length} requests`);
  });
});
