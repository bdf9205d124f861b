// Checks a member's live attestation the way `attestmesh attest <member id>` does: a fresh nonce, GET
// /attestation?nonce= on the member's health port, and the verification report of owner/attest.ts (quote,
// event log, compose, report data bound to the member's on-chain keys and the nonce, the policy now).
// The page gets a short status: verified, refused (with the first failed check), or unreachable.

import { randomBytes } from "node:crypto";
import { parseAttestationDocument } from "@attestmesh/shared/attestation/document.ts";
import { parseEventLog } from "@attestmesh/shared/attestation/eventLog.ts";
import type { Evidence } from "@attestmesh/shared/attestation/verify.ts";
import type { VerificationReport } from "../owner/attest.ts";
import type { AttestMember } from "./live.ts";
import { redactUrls } from "./live.ts";
import type { AttestationStatus } from "./model.ts";

/** The /attestation URL beside a member's /healthz URL, with `nonce`. */
export function attestationUrl(healthUrl: string, nonce: Uint8Array): string {
  const url = new URL(healthUrl);
  url.pathname = `${url.pathname.replace(/\/healthz\/?$/, "").replace(/\/$/, "")}/attestation`;
  url.search = "";
  url.searchParams.set("nonce", `0x${Buffer.from(nonce).toString("hex")}`);
  return url.toString();
}

export type VerifyMember = (
  evidence: Evidence,
  member: { readonly memberId: bigint; readonly nonce: Uint8Array },
) => Promise<VerificationReport>;

/** The status a report gives (pure: the tests feed it reports). */
export function statusOfReport(report: VerificationReport, checkedAt: string): AttestationStatus {
  const failed = report.checks.find((c) => !c.ok);
  return {
    state: report.ok ? "verified" : "refused",
    evidence: report.evidence,
    detail: failed === undefined ? null : `${failed.name}: ${failed.reason ?? ""} ${failed.detail}`.trim(),
    checkedAt,
    lastVerifiedAt: report.ok ? checkedAt : null,
  };
}

export function createAttestationChecker(options: {
  readonly verify: VerifyMember;
  readonly timeoutMs?: number;
  readonly now?: () => number;
}): AttestMember {
  const now = options.now ?? Date.now;
  return async (memberId, healthUrl) => {
    const nonce = new Uint8Array(randomBytes(32));
    const checkedAt = new Date(now()).toISOString();
    const unreachable = (detail: string): AttestationStatus => ({
      state: "unreachable",
      evidence: null,
      detail: redactUrls(detail),
      checkedAt,
      lastVerifiedAt: null,
    });
    let text: string;
    try {
      const response = await fetch(attestationUrl(healthUrl, nonce), {
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
        redirect: "error",
      });
      text = await response.text();
      if (!response.ok) return unreachable(`it answered ${response.status}: ${text.slice(0, 160).trim()}`);
    } catch (error) {
      return unreachable(`no answer: ${error instanceof Error ? error.message : String(error)}`);
    }
    let evidence: Evidence;
    try {
      const document = parseAttestationDocument(JSON.parse(text));
      evidence = {
        quote: Buffer.from(document.quote.slice(2), "hex"),
        eventLog: parseEventLog(document.eventLog),
        appCompose: document.appCompose,
      };
    } catch (error) {
      return {
        state: "refused",
        evidence: null,
        detail: `not an attestation document: ${error instanceof Error ? error.message : String(error)}`,
        checkedAt,
        lastVerifiedAt: null,
      };
    }
    // Judged against this member's on-chain keys and our nonce: a replayed or another member's document fails.
    const report = await options.verify(evidence, { memberId: BigInt(memberId), nonce });
    return statusOfReport(report, checkedAt);
  };
}
