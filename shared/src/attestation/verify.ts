/**
 * Verifies a dstack CVM's evidence — a TDX quote, its event log and its app-compose document — at an
 * explicit time, and says in one report what it proves: every check with pass or fail and a named
 * reason, and the fields a reader needs (TCB status and advisories, MRTD, RTMR0–3, report data,
 * mr_config_id, and what dstack's runtime events say: app id, compose hash, instance id, key provider).
 *
 * The quote's signature chain, TCB status and collateral are checked by `@phala/dcap-qvl`; before it
 * runs, the collateral's window and platform are checked here so that the two commonest mistakes get
 * their own names. The event log is then tied to the quote: every dstack runtime event's digest must
 * be what its name and payload give, and the log must replay to the quote's RTMRs. Finally the
 * compose document must hash to the `compose-hash` event (and to mr_config_id where dstack puts it).
 *
 * Simulated quotes (the devnet dstack simulator's) carry no hardware signature; they are refused
 * unless the caller says the cluster allows the simulator, and a report on one says so.
 */

import { sha256 } from "@noble/hashes/sha2";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils";
import {
  type Collateral,
  verify as dcapVerify,
  Quote,
  type TcbStatus,
  type VerifiedReport,
} from "@phala/dcap-qvl";
import { AttestmeshError, isAttestmeshError } from "../errors.ts";
import {
  type CollateralSource,
  type CollateralWindow,
  collateralWindow,
  quotePlatform,
} from "./collateral.ts";
import {
  type DstackIdentity,
  dstackIdentity,
  type EventLogEntry,
  firstForgedRuntimeEvent,
  replayRtmrs,
} from "./eventLog.ts";
import { isSimulatedQuote, readSimulatedQuote } from "./simulated.ts";

/** What one check is about. */
export type CheckName =
  | "simulator"
  | "collateral"
  | "quote"
  | "tcb"
  | "event-log"
  | "rtmr-replay"
  | "compose-hash"
  | "mr-config-id"
  | "report-data"
  | "code-id";

/** Why evidence was refused; stable names a caller may branch on. */
export type RefusalReason =
  | "SimulatorNotAllowed"
  | "QuoteMalformed"
  | "NotATdxQuote"
  | "CollateralUnavailable"
  | "CollateralMalformed"
  | "CollateralOutsideWindow"
  | "CollateralForAnotherPlatform"
  | "QuoteSignatureInvalid"
  | "QuoteRejected"
  | "TcbStatusNotAccepted"
  | "EventDigestMismatch"
  | "RtmrMismatch"
  | "ComposeHashEventMissing"
  | "AppComposeMissing"
  | "ComposeHashMismatch"
  | "MrConfigIdMismatch"
  | "ReportDataMismatch"
  | "ComposeHashNotBound"
  | "ComposeHashNotExpected";

export interface Check {
  readonly name: CheckName;
  readonly ok: boolean;
  /** Set when `ok` is false. */
  readonly reason?: RefusalReason;
  readonly detail: string;
}

/** The evidence a CVM hands out. */
export interface Evidence {
  readonly quote: Uint8Array;
  /**
   * The event log. Absent (a bare quote, like the indexer's hello), the event-log checks do not run and
   * the report says so; the compose hash is then only what the quote itself binds (mr_config_id).
   */
  readonly eventLog?: readonly EventLogEntry[];
  /** The exact bytes of app-compose.json (text is encoded as UTF-8). */
  readonly appCompose?: Uint8Array | string;
}

export interface VerifyOptions {
  /** Unix seconds. Always explicit: collateral expires, and a test or an audit picks its moment. */
  readonly at: number;
  readonly collateral: CollateralSource;
  /** True only when the cluster owner allowlisted the simulator's KMS root (the devnet). */
  readonly allowSimulator: boolean;
  /** The cluster's TCB rule: true accepts only "UpToDate"; false accepts any status but Revoked. */
  readonly requireTcbUpToDate?: boolean;
  /** The 64 bytes the quote must carry (a nonce or key binding); omitted, report data is not checked. */
  readonly expectedReportData?: Uint8Array;
  /** The compose hash (hex, with or without 0x) the signed evidence must bind, e.g. a registry's code id. */
  readonly expectedComposeHash?: string;
}

/** One verification report. Hex is lowercase without 0x. */
export interface QuoteReport {
  /** True only when every check passed. */
  readonly ok: boolean;
  /** "simulated" evidence proves nothing about hardware; it is labelled wherever it is shown. */
  readonly kind: "tdx" | "simulated";
  readonly verifiedAt: number;
  readonly collateral?: { readonly source: string } & CollateralWindow;
  readonly tcbStatus?: TcbStatus;
  readonly advisoryIds: readonly string[];
  readonly mrtd?: string;
  /** RTMR0–3 as the quote states them. */
  readonly rtmrs?: readonly string[];
  readonly reportData?: string;
  readonly mrConfigId?: string;
  /**
   * The compose hash the signed evidence binds: the compose-hash event of a log that replayed to RTMR3,
   * mr_config_id's, or a simulated quote's field. Absent when nothing signed binds one.
   */
  readonly boundComposeHash?: string;
  /** sha256 of the PCK certificate's PPID (dstack's device id); only from a verified quote. */
  readonly deviceId?: string;
  readonly identity: DstackIdentity;
  readonly checks: readonly Check[];
}

const TDX_TEE_TYPE = 0x81;

function pass(name: CheckName, detail: string): Check {
  return { name, ok: true, detail };
}

function fail(name: CheckName, reason: RefusalReason, detail: string): Check {
  return { name, ok: false, reason, detail };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}

/** Maps a `@phala/dcap-qvl` refusal onto a named reason. */
function libraryRefusal(error: unknown): Check {
  const message = error instanceof Error ? error.message : String(error);
  if (/expired|not yet valid/i.test(message)) {
    return fail("quote", "CollateralOutsideWindow", `the verifier refused: ${message}`);
  }
  if (/fmspc|mismatch/i.test(message) && !/signature/i.test(message)) {
    return fail("quote", "CollateralForAnotherPlatform", `the verifier refused: ${message}`);
  }
  if (/signature|hash/i.test(message)) {
    return fail("quote", "QuoteSignatureInvalid", `the verifier refused: ${message}`);
  }
  return fail("quote", "QuoteRejected", `the verifier refused: ${message}`);
}

function tcbCheck(status: TcbStatus, advisories: readonly string[], requireUpToDate: boolean): Check {
  const advisory = advisories.length === 0 ? "no advisories" : `advisories ${advisories.join(", ")}`;
  if (status === "Revoked" || status === "Unknown") {
    return fail("tcb", "TcbStatusNotAccepted", `TCB status ${status} is never accepted (${advisory}).`);
  }
  if (requireUpToDate && status !== "UpToDate") {
    return fail(
      "tcb",
      "TcbStatusNotAccepted",
      `TCB status ${status}, but the cluster requires UpToDate (${advisory}).`,
    );
  }
  return pass("tcb", `TCB status ${status} (${advisory}).`);
}

function eventLogCheck(log: readonly EventLogEntry[]): Check {
  const forged = firstForgedRuntimeEvent(log);
  if (forged !== undefined) {
    const e = log[forged]!;
    return fail(
      "event-log",
      "EventDigestMismatch",
      `runtime event ${forged} (${JSON.stringify(e.event)}) has a digest its name and payload do not give.`,
    );
  }
  const runtime = log.filter((e) => e.imr === 3).length;
  return pass("event-log", `${log.length} entries; the ${runtime} RTMR3 event digests match their payloads.`);
}

function composeCheck(identity: DstackIdentity, appCompose: Evidence["appCompose"]): Check {
  if (identity.composeHash === undefined) {
    return fail("compose-hash", "ComposeHashEventMissing", "the event log has no compose-hash event.");
  }
  if (appCompose === undefined) {
    return fail("compose-hash", "AppComposeMissing", "no app-compose document came with the evidence.");
  }
  const bytes = typeof appCompose === "string" ? utf8ToBytes(appCompose) : appCompose;
  const actual = bytesToHex(sha256(bytes));
  if (actual !== identity.composeHash) {
    return fail(
      "compose-hash",
      "ComposeHashMismatch",
      `sha256(app-compose) is ${actual}, but the compose-hash event says ${identity.composeHash}.`,
    );
  }
  return pass("compose-hash", `sha256(app-compose) = ${actual}, the compose-hash event.`);
}

function reportDataCheck(actual: Uint8Array, expected: Uint8Array | undefined): Check[] {
  if (expected === undefined) return [];
  if (!equalBytes(actual, expected)) {
    return [
      fail(
        "report-data",
        "ReportDataMismatch",
        `the quote's report data is ${bytesToHex(actual)}, expected ${bytesToHex(expected)}.`,
      ),
    ];
  }
  return [pass("report-data", "the quote's report data is exactly what was asked for.")];
}

const NO_LOG =
  "no event log came with the quote: RTMR0–3 are not replayed, and only mr_config_id can bind a compose hash.";

function codeIdCheck(bound: string | undefined, expected: string | undefined): Check[] {
  if (expected === undefined) return [];
  const want = expected.toLowerCase().replace(/^0x/, "");
  if (bound === undefined) {
    return [fail("code-id", "ComposeHashNotBound", `nothing signed binds a compose hash; expected ${want}.`)];
  }
  if (bound !== want) {
    return [
      fail(
        "code-id",
        "ComposeHashNotExpected",
        `the evidence binds compose hash ${bound}, expected ${want}.`,
      ),
    ];
  }
  return [pass("code-id", `the evidence binds the expected compose hash ${want}.`)];
}

function finish(report: Omit<QuoteReport, "ok">): QuoteReport {
  return { ok: report.checks.length > 0 && report.checks.every((c) => c.ok), ...report };
}

function verifySimulated(evidence: Evidence, options: VerifyOptions, identity: DstackIdentity): QuoteReport {
  const base = { kind: "simulated" as const, verifiedAt: options.at, advisoryIds: [], identity };
  if (!options.allowSimulator) {
    return finish({
      ...base,
      checks: [
        fail(
          "simulator",
          "SimulatorNotAllowed",
          "this is a SIMULATED quote (the dstack simulator's, no hardware signature) and the cluster does not allow the simulator.",
        ),
      ],
    });
  }
  const sim = readSimulatedQuote(evidence.quote);
  if (sim === undefined) {
    return finish({
      ...base,
      checks: [fail("quote", "QuoteMalformed", "the quote has the simulator's marker but not its layout.")],
    });
  }
  const checks: Check[] = [
    pass(
      "simulator",
      "SIMULATED evidence: no hardware signature, no collateral, no TCB; accepted only because the cluster allows the dstack simulator.",
    ),
  ];
  const appId = bytesToHex(sim.appId);
  const composeHash = bytesToHex(sim.composeHash);
  if (evidence.eventLog === undefined) {
    checks.push(pass("event-log", NO_LOG));
  } else if (identity.appId !== appId || identity.composeHash !== composeHash) {
    checks.push(eventLogCheck(evidence.eventLog));
    checks.push(
      fail(
        "rtmr-replay",
        "RtmrMismatch",
        `the event log says app ${identity.appId ?? "(none)"} / compose ${identity.composeHash ?? "(none)"}, the simulated quote app ${appId} / compose ${composeHash}.`,
      ),
    );
  } else {
    checks.push(eventLogCheck(evidence.eventLog));
    checks.push(
      pass("rtmr-replay", "simulated quote (no RTMRs): its app id and compose hash are the event log's."),
    );
  }
  if (evidence.eventLog !== undefined || evidence.appCompose !== undefined) {
    checks.push(composeCheck({ ...identity, composeHash }, evidence.appCompose));
  }
  checks.push(...codeIdCheck(composeHash, options.expectedComposeHash));
  checks.push(...reportDataCheck(sim.reportData, options.expectedReportData));
  return finish({ ...base, reportData: bytesToHex(sim.reportData), boundComposeHash: composeHash, checks });
}

/**
 * Verifies `evidence` against `collateral` (or the reason there is none) at `options.at`. Synchronous
 * and pure: `verifyEvidence` gets the collateral and calls this.
 */
export function verifyEvidenceWith(
  evidence: Evidence,
  collateral: { readonly source: string } & ({ readonly value: Collateral } | { readonly error: Check }),
  options: VerifyOptions,
): QuoteReport {
  const identity = dstackIdentity(evidence.eventLog ?? []);
  if (isSimulatedQuote(evidence.quote)) return verifySimulated(evidence, options, identity);

  const base = { kind: "tdx" as const, verifiedAt: options.at, identity };
  let parsed: Quote;
  try {
    parsed = Quote.parse(Buffer.from(evidence.quote));
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return finish({
      ...base,
      advisoryIds: [],
      checks: [fail("quote", "QuoteMalformed", `the quote does not parse: ${message}`)],
    });
  }
  const td = parsed.report.asTd10() ?? parsed.report.asTd15()?.base ?? null;
  if (parsed.header.teeType !== TDX_TEE_TYPE || td === null) {
    return finish({
      ...base,
      advisoryIds: [],
      checks: [fail("quote", "NotATdxQuote", "the quote is not a TDX quote; attestmesh runs on Intel TDX.")],
    });
  }
  const fields = {
    mrtd: bytesToHex(td.mrTd),
    rtmrs: [td.rtMr0, td.rtMr1, td.rtMr2, td.rtMr3].map(bytesToHex),
    reportData: bytesToHex(td.reportData),
    mrConfigId: bytesToHex(td.mrConfigId),
  };
  const checks: Check[] = [];
  let window: ({ readonly source: string } & CollateralWindow) | undefined;
  let verified: VerifiedReport | undefined;

  if ("error" in collateral) {
    checks.push(collateral.error);
  } else {
    let collateralOk = false;
    try {
      window = { source: collateral.source, ...collateralWindow(collateral.value) };
      const platform = quotePlatform(evidence.quote);
      if (window.tee !== "TDX" || window.fmspc !== platform.fmspc) {
        checks.push(
          fail(
            "collateral",
            "CollateralForAnotherPlatform",
            `the collateral is ${window.tee} collateral for FMSPC ${window.fmspc}; the quote is TDX from FMSPC ${platform.fmspc}.`,
          ),
        );
      } else if (options.at < window.notBefore || options.at >= window.notAfter) {
        checks.push(
          fail(
            "collateral",
            "CollateralOutsideWindow",
            `verification time ${iso(options.at)} is outside the collateral's window ${iso(window.notBefore)} – ${iso(window.notAfter)}; fetch fresh collateral.`,
          ),
        );
      } else {
        collateralOk = true;
        checks.push(
          pass(
            "collateral",
            `${collateral.source}: TDX, FMSPC ${window.fmspc}, valid ${iso(window.notBefore)} – ${iso(window.notAfter)}.`,
          ),
        );
      }
    } catch (error) {
      if (!isAttestmeshError(error)) throw error;
      checks.push(
        fail(
          "collateral",
          error.code === "CollateralMalformed" ? "CollateralMalformed" : "QuoteMalformed",
          error.message,
        ),
      );
    }
    if (collateralOk) {
      try {
        verified = dcapVerify(Buffer.from(evidence.quote), collateral.value, options.at);
        checks.push(pass("quote", "Intel's signature chain, the QE report and the quote signature verify."));
      } catch (error) {
        checks.push(libraryRefusal(error));
      }
    }
  }
  if (verified !== undefined) {
    checks.push(tcbCheck(verified.status, verified.advisory_ids, options.requireTcbUpToDate ?? false));
  } else {
    checks.push(fail("tcb", "QuoteRejected", "no TCB status: the quote did not verify."));
  }

  const log = evidence.eventLog;
  let replayOk = false;
  if (log === undefined) {
    checks.push(pass("event-log", NO_LOG));
  } else {
    checks.push(eventLogCheck(log));
    const replayed = replayRtmrs(log).map(bytesToHex);
    const inLog = [0, 1, 2, 3].filter((i) => i === 3 || log.some((e) => e.imr === i));
    const wrong = inLog.filter((i) => replayed[i] !== fields.rtmrs[i]);
    if (wrong.length > 0) {
      checks.push(
        fail(
          "rtmr-replay",
          "RtmrMismatch",
          `the event log does not replay to the quote's ${wrong.map((i) => `RTMR${i}`).join(", ")}.`,
        ),
      );
    } else {
      replayOk = true;
      const notInLog = [0, 1, 2].filter((i) => !inLog.includes(i));
      checks.push(
        pass(
          "rtmr-replay",
          `the event log replays to the quote's ${inLog.map((i) => `RTMR${i}`).join(", ")}` +
            (notInLog.length > 0
              ? ` (no boot events for ${notInLog.map((i) => `RTMR${i}`).join(", ")}).`
              : "."),
        ),
      );
    }
  }
  const configBound = td.mrConfigId[0] === 0x01 ? bytesToHex(td.mrConfigId.slice(1, 33)) : undefined;
  const logBound = replayOk ? identity.composeHash : undefined;
  const boundComposeHash = log === undefined ? configBound : (logBound ?? configBound);
  if (log !== undefined || evidence.appCompose !== undefined) {
    checks.push(
      composeCheck(
        log === undefined ? { ...identity, composeHash: configBound } : identity,
        evidence.appCompose,
      ),
    );
  }
  if (configBound === undefined) {
    checks.push(pass("mr-config-id", "mr_config_id does not carry a compose hash; RTMR3 alone binds it."));
  } else if (log === undefined) {
    checks.push(
      pass("mr-config-id", `mr_config_id binds compose hash ${configBound} (dstack's 0x01 || compose hash).`),
    );
  } else {
    checks.push(
      configBound === identity.composeHash
        ? pass("mr-config-id", "mr_config_id binds the compose hash (dstack's 0x01 || compose hash).")
        : fail(
            "mr-config-id",
            "MrConfigIdMismatch",
            `mr_config_id binds compose hash ${configBound}, the event log says ${identity.composeHash ?? "(none)"}.`,
          ),
    );
  }
  checks.push(...codeIdCheck(boundComposeHash, options.expectedComposeHash));
  checks.push(...reportDataCheck(td.reportData, options.expectedReportData));

  return finish({
    ...base,
    ...fields,
    ...(boundComposeHash === undefined ? {} : { boundComposeHash }),
    ...(window === undefined ? {} : { collateral: window }),
    ...(verified === undefined
      ? { advisoryIds: [] }
      : {
          tcbStatus: verified.status,
          advisoryIds: verified.advisory_ids,
          deviceId: bytesToHex(sha256(verified.ppid)),
        }),
    checks,
  });
}

/** Gets the collateral for `evidence` from `options.collateral`, then verifies. Never throws on bad evidence. */
export async function verifyEvidence(evidence: Evidence, options: VerifyOptions): Promise<QuoteReport> {
  const source = options.collateral.describe;
  if (isSimulatedQuote(evidence.quote)) {
    return verifyEvidenceWith(evidence, { source, error: pass("collateral", "none needed") }, options);
  }
  try {
    const value = await options.collateral.get(evidence.quote);
    return verifyEvidenceWith(evidence, { source, value }, options);
  } catch (error) {
    if (!isAttestmeshError(error)) throw error;
    const reason: RefusalReason =
      error.code === "QuoteMalformed"
        ? "QuoteMalformed"
        : error.code === "CollateralMalformed"
          ? "CollateralMalformed"
          : "CollateralUnavailable";
    return verifyEvidenceWith(
      evidence,
      { source, error: fail("collateral", reason, error.message) },
      options,
    );
  }
}

/** The first failed check of `report`, or undefined when it passed. */
export function refusal(report: QuoteReport): Check | undefined {
  return report.checks.find((c) => !c.ok);
}

/** Throws `AttestmeshError` with the refusal reason as its code unless every check passed. */
export function requireAccepted(report: QuoteReport): QuoteReport {
  const failed = refusal(report);
  if (failed === undefined && report.ok) return report;
  throw new AttestmeshError(
    `the attestation was refused (${failed?.name ?? "no checks"}): ${failed?.detail ?? ""}`,
    {
      code: failed?.reason ?? "QuoteRejected",
      details: { check: failed?.name },
    },
  );
}
