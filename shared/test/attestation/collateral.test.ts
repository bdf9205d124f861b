// Collateral sources: a PCCS (here a local one serving real Intel collateral) cached per platform until
// its nextUpdate, and files; a PCCS that fails is an error, never a pass.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadNearMpcAttestation } from "../../../test/fixtures/tdx/fixtures.ts";
import {
  collateralWindow,
  fileCollateral,
  pccsCollateral,
  quotePlatform,
} from "../../src/attestation/collateral.ts";
import { parseEventLog } from "../../src/attestation/eventLog.ts";
import { verifyEvidence } from "../../src/attestation/verify.ts";
import { isAttestmeshError } from "../../src/errors.ts";
import { startTestPccs, type TestPccs } from "./pccs.ts";

const fixture = loadNearMpcAttestation();
const quote = Uint8Array.from(fixture.quote);
const evidence = {
  quote,
  eventLog: parseEventLog(fixture.tcb_info.event_log),
  appCompose: fixture.tcb_info.app_compose,
};

describe("PCCS collateral", () => {
  let pccs: TestPccs;
  before(async () => {
    pccs = await startTestPccs(fixture.collateral);
  });
  after(() => pccs.close());

  test("is fetched once per platform and kept until nextUpdate", async () => {
    let now = fixture.verifyAt;
    const source = pccsCollateral({ url: pccs.url, now: () => now });
    const served = pccs.requests();
    const first = await source.get(quote);
    assert.equal(pccs.requests() - served, 4, "pck crl, tcb info, qe identity, root ca crl");
    const report = await verifyEvidence(evidence, { at: now, collateral: source, allowSimulator: false });
    assert.equal(report.ok, true, JSON.stringify(report.checks, null, 2));
    assert.equal(source.fetches(), 1, "the verification used the cached collateral");
    const window = collateralWindow(first);
    now = window.notAfter - 1;
    await source.get(quote);
    assert.equal(source.fetches(), 1, "still cached just before nextUpdate");
    now = window.notAfter;
    await source.get(quote);
    assert.equal(source.fetches(), 2, "fetched again at nextUpdate");
  });

  test("concurrent verifications share one fetch", async () => {
    const source = pccsCollateral({ url: pccs.url, now: () => fixture.verifyAt });
    await Promise.all([source.get(quote), source.get(quote), source.get(quote)]);
    assert.equal(source.fetches(), 1);
  });

  test("a PCCS that is down is a retryable error and the report says so", async () => {
    const down = await startTestPccs(fixture.collateral);
    await down.close();
    const source = pccsCollateral({ url: down.url, now: () => fixture.verifyAt });
    await assert.rejects(
      source.get(quote),
      (e) => isAttestmeshError(e, "CollateralUnavailable") && e.retryable,
    );
    const report = await verifyEvidence(evidence, {
      at: fixture.verifyAt,
      collateral: source,
      allowSimulator: false,
    });
    assert.equal(report.ok, false);
    assert.equal(report.checks.find((c) => !c.ok)?.reason, "CollateralUnavailable");
    assert.equal(source.fetches(), 2, "a failure is not cached");
  });
});

test("the quote names its platform", () => {
  assert.deepEqual(quotePlatform(quote), { fmspc: "B0C06F000000", ca: "processor" });
});

test("collateral from a file, bare or in a bundle; a bad file is refused by name", async () => {
  const dir = await mkdtemp(join(tmpdir(), "attestmesh-collateral-"));
  try {
    const bare = join(dir, "bare.json");
    const bundle = join(dir, "bundle.json");
    const bad = join(dir, "bad.json");
    await writeFile(bare, JSON.stringify(fixture.collateral));
    await writeFile(bundle, JSON.stringify(fixture));
    await writeFile(bad, JSON.stringify({ tcb_info: "{}" }));
    for (const path of [bare, bundle]) {
      const report = await verifyEvidence(evidence, {
        at: fixture.verifyAt,
        collateral: fileCollateral(path),
        allowSimulator: false,
      });
      assert.equal(report.ok, true);
      assert.equal(report.collateral?.source, `file ${path}`);
    }
    await assert.rejects(fileCollateral(bad).get(quote), (e) => isAttestmeshError(e, "CollateralMalformed"));
    await assert.rejects(fileCollateral(join(dir, "missing.json")).get(quote), (e) =>
      isAttestmeshError(e, "CollateralUnavailable"),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
