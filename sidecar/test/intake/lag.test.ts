// The intake's lag detector against an in-process Hardhat network: a log polling saw and no push named
// within the threshold is flagged; a pushed one, or another member's message, is not.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { MESSAGE_SENT_TOPIC } from "@attestmesh/shared/contracts/events.ts";
import { type ClusterFixture, randomAppId, setupCluster } from "../../../test/helpers/cluster.ts";
import { createLagDetector } from "../../src/intake/lag.ts";

describe("indexer lag detector", { timeout: 300_000 }, () => {
  let fx: ClusterFixture;
  let clock = 0;

  before(async () => {
    fx = await setupCluster();
  });

  const detector = () =>
    createLagDetector({
      client: fx.publicClient,
      cluster: fx.deployed.diamond,
      confirmations: 0,
      thresholdMs: 1000,
      relevant: (topics) => topics[0]?.toLowerCase() !== MESSAGE_SENT_TOPIC,
      now: () => clock,
    });

  const event = async () =>
    fx.publicClient.waitForTransactionReceipt({ hash: await fx.owner.write.addAppId([randomAppId()]) });

  test("flags a log no push named within the threshold, once", async () => {
    const lag = detector();
    await lag.reset();
    await event();
    clock = 0;
    assert.equal(await lag.check(), 0, "seen by polling, not late yet");
    clock = 999;
    assert.equal(await lag.check(), 0);
    clock = 1000;
    assert.equal(await lag.check(), 1, "late");
    clock = 5000;
    assert.equal(await lag.check(), 0, "flagged once");
  });

  test("a log pushed before or after polling saw it is not flagged", async () => {
    const lag = detector();
    await lag.reset();
    const early = await event();
    lag.pushed(early.transactionHash, early.logs[0]!.logIndex);
    const late = await event();
    clock = 10_000;
    assert.equal(await lag.check(), 0);
    lag.pushed(late.transactionHash, late.logs[0]!.logIndex);
    clock = 20_000;
    assert.equal(await lag.check(), 0);
  });
});
