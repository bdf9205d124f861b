// The quote verifier against real evidence: one dstack CVM's TDX quote, Intel collateral, event log
// and app-compose (test/fixtures/tdx). Accepted at the fixture's time with every field extracted; each
// tampering an attacker could try — stale collateral, a flipped quote byte, a forged event, another
// compose document, collateral of another platform, a simulated quote where none is allowed — is
// refused with its own reason.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { runtimeEvent } from "@attestmesh/devnet/dstack-sim/server.ts";
import { encodeSimulatedQuote } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { sha256 } from "@noble/hashes/sha2";
import { bytesToHex, hexToBytes, utf8ToBytes } from "@noble/hashes/utils";
import { loadNearMpcAttestation, loadOtherPlatformCollateral } from "../../../test/fixtures/tdx/fixtures.ts";
import { type Collateral, fixedCollateral } from "../../src/attestation/collateral.ts";
import { type EventLogEntry, parseEventLog } from "../../src/attestation/eventLog.ts";
import {
  type Evidence,
  type QuoteReport,
  refusal,
  requireAccepted,
  type VerifyOptions,
  verifyEvidence,
} from "../../src/attestation/verify.ts";
import { isAttestmeshError } from "../../src/errors.ts";

const fixture = loadNearMpcAttestation();
const eventLog = parseEventLog(fixture.tcb_info.event_log);
const evidence: Evidence = {
  quote: Uint8Array.from(fixture.quote),
  eventLog,
  appCompose: fixture.tcb_info.app_compose,
};
const options = (overrides: Partial<VerifyOptions> = {}): VerifyOptions => ({
  at: fixture.verifyAt,
  collateral: fixedCollateral(fixture.collateral, "fixture collateral"),
  allowSimulator: false,
  ...overrides,
});

function refusedWith(report: QuoteReport, reason: string): void {
  assert.equal(report.ok, false, "the report is not ok");
  assert.equal(refusal(report)?.reason, reason, JSON.stringify(report.checks, null, 2));
}

describe("real dstack evidence at the fixture's time", () => {
  test("is accepted with every field extracted", async () => {
    const report = await verifyEvidence(evidence, options({ requireTcbUpToDate: true }));
    assert.equal(report.ok, true, JSON.stringify(report.checks, null, 2));
    assert.equal(report.kind, "tdx");
    assert.equal(report.tcbStatus, "UpToDate");
    assert.deepEqual(report.advisoryIds, []);
    assert.equal(report.mrtd, fixture.tcb_info.mrtd);
    assert.deepEqual(report.rtmrs, [
      fixture.tcb_info.rtmr0,
      fixture.tcb_info.rtmr1,
      fixture.tcb_info.rtmr2,
      fixture.tcb_info.rtmr3,
    ]);
    assert.equal(report.mrConfigId?.slice(0, 66), `01${fixture.tcb_info.compose_hash}`);
    assert.equal(report.reportData?.length, 128);
    assert.equal(report.identity.composeHash, fixture.tcb_info.compose_hash);
    assert.equal(report.identity.appId, fixture.tcb_info.compose_hash.slice(0, 40));
    assert.equal(report.identity.instanceId, "");
    assert.equal(report.identity.keyProvider?.name, "local-sgx");
    assert.equal(report.deviceId, fixture.tcb_info.device_id);
    assert.equal(report.collateral?.fmspc, "B0C06F000000");
    const names = report.checks.map((c) => c.name);
    for (const name of [
      "collateral",
      "quote",
      "tcb",
      "event-log",
      "rtmr-replay",
      "compose-hash",
      "mr-config-id",
    ]) {
      assert.ok(names.includes(name as never), `the report has the ${name} check`);
    }
    assert.match(report.checks.find((c) => c.name === "rtmr-replay")!.detail, /RTMR0, RTMR1, RTMR2, RTMR3/);
    assert.doesNotThrow(() => requireAccepted(report));
  });

  test("binds the report data it is asked to, and nothing else", async () => {
    const reportData = hexToBytes((await verifyEvidence(evidence, options())).reportData!);
    assert.equal((await verifyEvidence(evidence, options({ expectedReportData: reportData }))).ok, true);
    const other = reportData.slice();
    other[0]! ^= 1;
    refusedWith(await verifyEvidence(evidence, options({ expectedReportData: other })), "ReportDataMismatch");
  });
});

describe("a bare quote (no event log), as the indexer's hello carries", () => {
  const bare: Evidence = { quote: evidence.quote };

  test("binds the compose hash through mr_config_id and says the log was not replayed", async () => {
    const report = await verifyEvidence(
      bare,
      options({ expectedComposeHash: `0x${fixture.tcb_info.compose_hash}` }),
    );
    assert.equal(report.ok, true, JSON.stringify(report.checks, null, 2));
    assert.equal(report.boundComposeHash, fixture.tcb_info.compose_hash);
    assert.match(report.checks.find((c) => c.name === "event-log")!.detail, /no event log/);
    assert.equal(report.checks.find((c) => c.name === "code-id")?.ok, true);
  });

  test("another code id is refused", async () => {
    const report = await verifyEvidence(bare, options({ expectedComposeHash: "22".repeat(32) }));
    refusedWith(report, "ComposeHashNotExpected");
  });

  test("a full report binds the compose hash of the replayed log", async () => {
    const report = await verifyEvidence(
      evidence,
      options({ expectedComposeHash: fixture.tcb_info.compose_hash }),
    );
    assert.equal(report.ok, true);
    assert.equal(report.boundComposeHash, fixture.tcb_info.compose_hash);
  });
});

describe("refusals, each with its reason", () => {
  test("today's clock is outside the collateral window", async () => {
    const report = await verifyEvidence(evidence, options({ at: Math.floor(Date.now() / 1000) }));
    refusedWith(report, "CollateralOutsideWindow");
    assert.equal(report.tcbStatus, undefined, "no TCB status from an unverified quote");
    const before = await verifyEvidence(evidence, options({ at: report.collateral!.notBefore - 1 }));
    refusedWith(before, "CollateralOutsideWindow");
  });

  test("one flipped quote byte breaks the signature", async () => {
    for (const offset of [48 + 520 /* report data */, 48 + 136 /* MRTD */, 48 + 328 /* RTMR0 */]) {
      const quote = evidence.quote.slice();
      quote[offset]! ^= 0x01;
      const report = await verifyEvidence({ ...evidence, quote }, options());
      refusedWith(report, "QuoteSignatureInvalid");
      assert.equal(requireAcceptedCode(report), "QuoteSignatureInvalid");
    }
  });

  test("a truncated quote is malformed", async () => {
    refusedWith(
      await verifyEvidence({ ...evidence, quote: evidence.quote.slice(0, 100) }, options()),
      "QuoteMalformed",
    );
  });

  test("a flipped runtime-event payload no longer matches its digest", async () => {
    const log = flip(eventLog, (e) => e.event === "compose-hash", "payload");
    refusedWith(await verifyEvidence({ ...evidence, eventLog: log }, options()), "EventDigestMismatch");
  });

  test("a runtime event with a recomputed digest no longer replays to RTMR3", async () => {
    // The attacker rewrites the compose-hash event consistently (payload and digest) and the compose
    // document to match: only the replay against the signed RTMR3 catches it.
    const forged = "11".repeat(32);
    const entry = runtimeEvent("compose-hash", hexToBytes(forged));
    const log: EventLogEntry[] = eventLog.map((e) =>
      e.event === "compose-hash"
        ? { ...e, digest: hexToBytes(entry.digest), payload: hexToBytes(entry.event_payload) }
        : e,
    );
    const report = await verifyEvidence({ ...evidence, eventLog: log }, options());
    refusedWith(report, "RtmrMismatch");
    assert.match(refusal(report)!.detail, /RTMR3/);
  });

  test("a flipped boot-event digest no longer replays to its RTMR", async () => {
    const log = flip(eventLog, (e) => e.imr === 1, "digest");
    const report = await verifyEvidence({ ...evidence, eventLog: log }, options());
    refusedWith(report, "RtmrMismatch");
    assert.match(refusal(report)!.detail, /RTMR1/);
  });

  test("a compose document that is not the measured one", async () => {
    for (const appCompose of [
      `${fixture.tcb_info.app_compose} `,
      JSON.stringify(JSON.parse(fixture.tcb_info.app_compose)),
    ]) {
      refusedWith(await verifyEvidence({ ...evidence, appCompose }, options()), "ComposeHashMismatch");
    }
    const { appCompose: _, ...without } = evidence;
    refusedWith(await verifyEvidence(without, options()), "AppComposeMissing");
  });

  test("collateral for another platform", async () => {
    const other = loadOtherPlatformCollateral();
    const report = await verifyEvidence(evidence, options({ collateral: fixedCollateral(other, "other") }));
    refusedWith(report, "CollateralForAnotherPlatform");
    assert.match(refusal(report)!.detail, /20A06F000000.*B0C06F000000/);
  });

  test("collateral whose TCB info was edited no longer verifies", async () => {
    const tcb = JSON.parse(fixture.collateral.tcb_info) as { tcbLevels: { tcbStatus: string }[] };
    for (const level of tcb.tcbLevels) level.tcbStatus = "UpToDate";
    const edited: Collateral = { ...fixture.collateral, tcb_info: JSON.stringify(tcb) };
    const report = await verifyEvidence(evidence, options({ collateral: fixedCollateral(edited, "edited") }));
    assert.equal(report.ok, false);
    assert.equal(refusal(report)?.name, "quote");
  });

  test("no collateral is a refusal, never a skip", async () => {
    const unavailable = {
      describe: "PCCS nowhere",
      get: async () => {
        throw new (await import("../../src/errors.ts")).AttestmeshError("down", {
          code: "CollateralUnavailable",
        });
      },
    };
    refusedWith(
      await verifyEvidence(evidence, options({ collateral: unavailable })),
      "CollateralUnavailable",
    );
  });
});

describe("simulated evidence", () => {
  const appId = hexToBytes("aa".repeat(20));
  const compose = '{"name":"devnet"}';
  const composeHash = hexToBytes("0b6e3d3d3d3f1f5b2d1d87b5ac0f7a5b0ec8f0b38f1e7ad1c2e76e0c6e5f1d8e");
  const reportData = new Uint8Array(64).fill(7);
  function simulated(hash: Uint8Array): Evidence {
    const log = [
      runtimeEvent("app-id", appId),
      runtimeEvent("compose-hash", hash),
      runtimeEvent("instance-id", new Uint8Array(0)),
    ];
    return {
      quote: encodeSimulatedQuote({ reportData, appId, composeHash: hash }),
      eventLog: parseEventLog(log),
      appCompose: compose,
    };
  }
  const realHash = sha256(utf8ToBytes(compose));

  test("is refused unless the simulator is allowed", async () => {
    const report = await verifyEvidence(simulated(realHash), options());
    refusedWith(report, "SimulatorNotAllowed");
    assert.equal(report.kind, "simulated");
    assert.match(refusal(report)!.detail, /SIMULATED/);
  });

  test("is accepted, and labelled, when the simulator is allowed", async () => {
    const report = await verifyEvidence(
      simulated(realHash),
      options({ allowSimulator: true, expectedReportData: reportData }),
    );
    assert.equal(report.ok, true, JSON.stringify(report.checks, null, 2));
    assert.equal(report.kind, "simulated");
    assert.equal(report.tcbStatus, undefined);
    assert.match(report.checks[0]!.detail, /SIMULATED/);
    assert.equal(report.identity.appId, "aa".repeat(20));
  });

  test("binds its compose-hash field to an expected code id, with or without a log", async () => {
    const sim = simulated(realHash);
    const { eventLog: _log, appCompose: _doc, ...bare } = sim;
    const allow = { allowSimulator: true };
    assert.equal(
      (await verifyEvidence(bare, options({ ...allow, expectedComposeHash: bytesToHex(realHash) }))).ok,
      true,
    );
    refusedWith(
      await verifyEvidence(bare, options({ ...allow, expectedComposeHash: "33".repeat(32) })),
      "ComposeHashNotExpected",
    );
  });

  test("still checks the compose document and the log against the quote", async () => {
    refusedWith(
      await verifyEvidence(simulated(composeHash), options({ allowSimulator: true })),
      "ComposeHashMismatch",
    );
    const sim = simulated(realHash);
    const log = parseEventLog([
      runtimeEvent("app-id", hexToBytes("bb".repeat(20))),
      runtimeEvent("compose-hash", realHash),
    ]);
    refusedWith(
      await verifyEvidence({ ...sim, eventLog: log }, options({ allowSimulator: true })),
      "RtmrMismatch",
    );
  });
});

function requireAcceptedCode(report: QuoteReport): string | undefined {
  try {
    requireAccepted(report);
    return undefined;
  } catch (error) {
    return isAttestmeshError(error) ? error.code : "not an AttestmeshError";
  }
}

function flip(
  log: readonly EventLogEntry[],
  which: (e: EventLogEntry) => boolean,
  field: "payload" | "digest",
): EventLogEntry[] {
  let done = false;
  return log.map((e) => {
    if (done || !which(e)) return e;
    done = true;
    const bytes = e[field].slice();
    bytes[0]! ^= 0x01;
    return { ...e, [field]: bytes };
  });
}

test("the simulator KMS roots include the devnet's own and are checksummed", async () => {
  const { SIMULATOR_KMS_ROOTS } = await import("../../src/attestation/simulated.ts");
  const { createKmsRoot } = await import("@attestmesh/devnet/dstack-sim/simulator.ts");
  const { getAddress } = await import("viem");
  assert.ok(SIMULATOR_KMS_ROOTS.includes(createKmsRoot().address));
  for (const root of SIMULATOR_KMS_ROOTS) assert.equal(root, getAddress(root));
});
