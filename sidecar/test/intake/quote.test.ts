// The indexer's quote check against a real cluster (in-process Hardhat) and a real TDX quote with its
// Intel collateral at the fixture's time: everything an indexer could lie about — stale collateral,
// another code id, a key the quote does not bind, a simulated quote where the simulator is not
// allowed — is refused by name, and the cluster's TCB rule is read from the chain, at a head the
// providers agree on: one provider claiming the simulator is allowed lets no simulated indexer in.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { before, describe, test } from "node:test";
import { createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { fixedCollateral } from "@attestmesh/shared/attestation/collateral.ts";
import { SIMULATOR_KMS_ROOTS } from "@attestmesh/shared/attestation/simulated.ts";
import { refusal } from "@attestmesh/shared/attestation/verify.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { toHex } from "@attestmesh/shared/indexer/envelope.ts";
import { quoteReportData } from "@attestmesh/shared/indexer/protocol.ts";
import { pino } from "pino";
import {
  type Address,
  custom,
  decodeFunctionResult,
  encodeFunctionResult,
  type Hex,
  type Transport,
  toFunctionSelector,
} from "viem";
import { loadNearMpcAttestation } from "../../../test/fixtures/tdx/fixtures.ts";
import { type ClusterFixture, randomAppId, setupCluster } from "../../../test/helpers/cluster.ts";
import { type ChainReads, createChainReads } from "../../src/chain/reads.ts";
import { createIndexerQuoteCheck } from "../../src/intake/quote.ts";
import type { IndexerRecord } from "../../src/intake/registry.ts";
import { agreedAttestationPolicy } from "../../src/reattest/policy.ts";
import { readsOver } from "../helpers.ts";

const fixture = loadNearMpcAttestation();
const realQuote = toHex(Uint8Array.from(fixture.quote));
const collateral = fixedCollateral(fixture.collateral, "fixture collateral");

function record(codeId: string, signingKey: Hex = toHex(randomBytes(32)) as Hex): IndexerRecord {
  return { endpoint: "ws://indexer", signingKey, codeId: codeId as Hex, appId: randomAppId() as Address };
}

describe("the indexer's quote", { timeout: 120_000 }, () => {
  let fx: ClusterFixture;
  let withoutSimulator: ClusterFixture;
  before(async () => {
    fx = await setupCluster();
    withoutSimulator = await setupCluster({ kmsRoots: [randomAppId() as Address] });
  });
  const honest = (cluster: ClusterFixture) => custom(cluster.connection.provider, { retryCount: 0 });
  const check = (
    cluster: ClusterFixture,
    at = fixture.verifyAt,
    reads: ChainReads = readsOver(honest(cluster)),
  ) =>
    createIndexerQuoteCheck({
      policy: agreedAttestationPolicy(reads, cluster.deployed.diamond),
      collateral,
      now: () => at,
    });

  /** A simulated indexer's quote binding a fresh signing key, and the registry record that matches it. */
  function simulatedIndexer(cluster: ClusterFixture) {
    const cvm = createSimulatedCvm({
      kmsRoot: cluster.kmsRoot,
      appId: randomBytes(20),
      composeHash: randomBytes(32),
    });
    const signingKey = toHex(randomBytes(32)) as Hex;
    const quote = toHex(cvm.getQuote(quoteReportData(Buffer.from(signingKey.slice(2), "hex"))));
    return { quote, good: record(toHex(cvm.info().composeHash), signingKey) };
  }

  /** A provider that answers honestly except that `policySnapshot()` allows the simulator's KMS roots. */
  function claimsSimulatorAllowed(cluster: ClusterFixture): Transport & { lies: () => number } {
    const selector = toFunctionSelector("policySnapshot()");
    let lies = 0;
    const transport = custom(
      {
        async request({ method, params }: { method: string; params?: unknown }) {
          const answer = await cluster.connection.provider.request({ method, params } as never);
          const call = (params as Array<{ data?: string; input?: string }> | undefined)?.[0];
          if (method !== "eth_call" || !(call?.data ?? call?.input ?? "").startsWith(selector)) return answer;
          const snapshot = decodeFunctionResult({
            abi: clusterAbi,
            functionName: "policySnapshot",
            data: answer as Hex,
          });
          lies += 1;
          return encodeFunctionResult({
            abi: clusterAbi,
            functionName: "policySnapshot",
            result: { ...snapshot, kmsRoots: [...snapshot.kmsRoots, ...SIMULATOR_KMS_ROOTS] },
          });
        },
      },
      { retryCount: 0 },
    );
    return Object.assign(transport, { lies: () => lies });
  }

  test("a real quote verifies with its code id, and a key it does not bind is refused", async () => {
    const report = await check(fx)(realQuote, record(`0x${fixture.tcb_info.compose_hash}`));
    const passed = report.checks.filter((c) => c.ok).map((c) => c.name);
    for (const name of ["collateral", "quote", "tcb", "code-id"])
      assert.ok(passed.includes(name as never), name);
    // The fixture's report data is not attestmesh's indexer binding: no registry key is bound by it.
    assert.equal(refusal(report)?.reason, "ReportDataMismatch");
  });

  test("a real quote for other code than the code id is refused", async () => {
    const report = await check(fx)(realQuote, record(toHex(randomBytes(32))));
    assert.equal(report.checks.find((c) => c.name === "code-id")?.reason, "ComposeHashNotExpected");
  });

  test("with today's clock the fixture's collateral is stale", async () => {
    const report = await check(fx, Math.floor(Date.now() / 1000))(
      realQuote,
      record(fixture.tcb_info.compose_hash),
    );
    assert.equal(refusal(report)?.reason, "CollateralOutsideWindow");
  });

  test("the cluster's TCB rule comes from the chain", async () => {
    await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.owner.write.setRequireTcbUpToDate([true]),
    });
    const report = await check(fx)(realQuote, record(fixture.tcb_info.compose_hash));
    assert.equal(report.tcbStatus, "UpToDate");
    assert.equal(report.checks.find((c) => c.name === "tcb")?.ok, true);
  });

  test("a simulated quote binding the key passes only where the simulator is allowed", async () => {
    const { quote, good } = simulatedIndexer(fx);
    const allowed = await check(fx)(quote, good);
    assert.equal(allowed.ok, true, JSON.stringify(allowed.checks));
    assert.equal(allowed.kind, "simulated");
    const refused = await check(withoutSimulator)(quote, good);
    assert.equal(refusal(refused)?.reason, "SimulatorNotAllowed");
    const otherKey = await check(fx)(quote, record(good.codeId));
    assert.equal(refusal(otherKey)?.reason, "ReportDataMismatch");
  });

  test("a provider claiming the simulator is allowed is outvoted: the simulated indexer stays refused", async () => {
    const { quote, good } = simulatedIndexer(withoutSimulator);
    const liar = claimsSimulatorAllowed(withoutSimulator);
    // The lie works on its own: a node that believed this provider alone would let the simulator in.
    const believed = await check(withoutSimulator, fixture.verifyAt, readsOver(liar))(quote, good);
    assert.equal(believed.ok, true, "the lie is effective when believed");
    // Two providers, both needed (quorum 2), one of them the liar, in either order: never a pass.
    for (const order of [
      [liar, honest(withoutSimulator)],
      [honest(withoutSimulator), liar],
    ]) {
      const reads = createChainReads({
        endpoints: order.map((transport, i) => ({
          origin: transport === liar ? "liar" : `honest-${i}`,
          transport,
        })),
        quorum: 2,
        logger: pino({ level: "silent" }),
      });
      const outcome = await check(
        withoutSimulator,
        fixture.verifyAt,
        reads,
      )(quote, good).then(
        (report) => report,
        (error: unknown) => error,
      );
      assert.ok(!(outcome as { ok?: boolean }).ok, "never a pass while one provider lies");
    }
    assert.ok(liar.lies() >= 3, "the liar was asked and lied each time");
    // With two honest providers and the liar (quorum 2 of 3) the rule is read and the quote refused by name.
    const majority = createChainReads({
      endpoints: [
        { origin: "liar", transport: liar },
        { origin: "honest-a", transport: honest(withoutSimulator) },
        { origin: "honest-b", transport: honest(withoutSimulator) },
      ],
      quorum: 2,
      logger: pino({ level: "silent" }),
    });
    const refused = await check(withoutSimulator, fixture.verifyAt, majority)(quote, good);
    assert.equal(refusal(refused)?.reason, "SimulatorNotAllowed");
  });
});
