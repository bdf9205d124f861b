// One judgement of a peer's live attestation (GET /attestation over the mesh, fetched with a nonce of
// our own): is the evidence a verified TDX quote (or SIMULATED evidence, only where the cluster allows
// the simulator), bound to THIS peer's certified on-chain keys and to our nonce, running a compose hash
// the cluster allows now, on a device the cluster has not revoked, with a TCB the cluster accepts? The
// expected report data is recomputed from the chain's record of the peer (the view only holds members
// whose certificate verified, certs/) and our nonce, never from the document's own claims. The policy
// is the cluster's at the chain head (policy.ts), so a withdrawn compose hash or a revoked device
// reaches a running peer at its next judgement, and a re-judgement of the last verified evidence
// (`judgePolicy`) needs no new quote.
import type { CollateralSource } from "@attestmesh/shared/attestation/collateral.ts";
import {
  attestationReportData,
  type MemberClaims,
  parseAttestationDocument,
} from "@attestmesh/shared/attestation/document.ts";
import { parseEventLog } from "@attestmesh/shared/attestation/eventLog.ts";
import { type QuoteReport, refusal, verifyEvidence } from "@attestmesh/shared/attestation/verify.ts";
import { type Hex, hexToBytes } from "viem";
import { AttestmeshError } from "../errors.ts";
import type { Member, MemberStanding } from "../model/member.ts";
import { isStale } from "../model/member.ts";

/** The cluster's policy at the head, as far as one peer's judgement needs it. */
export interface PeerPolicy {
  /** The owner allowlisted a simulator KMS root (the devnet). */
  readonly allowSimulator: boolean;
  readonly requireTcbUpToDate: boolean;
  readonly allowAnyDevice: boolean;
  /** Node compose hashes allowed now (lowercase hex, no 0x). */
  readonly composeHashes: ReadonlySet<string>;
  /** Devices on the allowlist now (lowercase hex, no 0x). */
  readonly deviceIds: ReadonlySet<string>;
  /** The peer's standing now (IMemberStanding): revocation of its device, compose or KMS root. */
  readonly standing: MemberStanding;
  /** The compose hash and device the peer stated at registration (lowercase hex, no 0x; absent if 0). */
  readonly statedComposeHash?: string;
  readonly statedDeviceId?: string;
  /** Whether the device the evidence names (a TDX quote's PPID hash) is revoked; undefined if not asked. */
  readonly evidenceDeviceRevoked?: boolean;
}

/** Why a peer's evidence was refused (stable names), beside the quote verifier's own reasons. */
export type VerdictReason =
  | "DocumentInvalid"
  | "NonceMismatch"
  | "ClaimsMismatch"
  | "ComposeHashNotAllowed"
  | "ComposeHashNotStated"
  | "DeviceRevoked"
  | "DeviceNotAllowed"
  | "KmsRootNotAllowed"
  | "NotStanding"
  | string;

export type Verdict =
  | {
      readonly ok: true;
      readonly kind: "tdx" | "simulated";
      /** The compose hash the evidence binds (lowercase hex, no 0x). */
      readonly composeHash: string;
      /** The device the quote names (TDX only), else the stated one; undefined when neither. */
      readonly deviceId?: string;
      readonly tcbStatus?: string;
      readonly detail: string;
    }
  | {
      readonly ok: false;
      /** "evidence": the peer's evidence is bad; "policy": the policy refuses what it runs now. */
      readonly cause: "evidence" | "policy";
      readonly reason: VerdictReason;
      readonly detail: string;
      readonly kind?: "tdx" | "simulated";
      readonly composeHash?: string;
      readonly deviceId?: string;
    };

/** Evidence that passed the quote checks, kept so a policy change re-judges it without a new quote. */
export interface VerifiedEvidence {
  readonly kind: "tdx" | "simulated";
  readonly composeHash: string;
  readonly deviceId?: string;
  readonly tcbStatus?: string;
}

/** What the chain says this peer is: the claims its report data must commit to. */
export function claimsOf(member: Member, chainId: number, cluster: `0x${string}`): MemberClaims {
  return {
    chainId,
    cluster,
    memberId: member.memberId.toString(),
    memberKey: member.memberKey,
    wireguardKey: member.wireguardKey,
    identityKey: member.identityKey,
  };
}

const strip = (h: string) => h.toLowerCase().replace(/^0x/, "");

/** Judges `verified` evidence against `policy`: compose hash, device, standing. */
export function judgePolicy(verified: VerifiedEvidence, policy: PeerPolicy): Verdict {
  const { kind, composeHash } = verified;
  const deviceId = verified.deviceId ?? policy.statedDeviceId;
  const refuse = (reason: VerdictReason, detail: string): Verdict => ({
    ok: false,
    cause: "policy",
    reason,
    detail,
    kind,
    composeHash,
    ...(deviceId === undefined ? {} : { deviceId }),
  });
  if (!policy.composeHashes.has(composeHash)) {
    return refuse(
      "ComposeHashNotAllowed",
      `it runs compose hash ${composeHash}, which the cluster does not allow now.`,
    );
  }
  if (policy.statedComposeHash !== undefined && policy.statedComposeHash !== composeHash) {
    return refuse(
      "ComposeHashNotStated",
      `it runs compose hash ${composeHash} but registered stating ${policy.statedComposeHash}.`,
    );
  }
  if (verified.deviceId !== undefined) {
    if (policy.evidenceDeviceRevoked === true) {
      return refuse("DeviceRevoked", `its quote names device ${verified.deviceId}, which the owner revoked.`);
    }
    if (!policy.allowAnyDevice && !policy.deviceIds.has(verified.deviceId)) {
      return refuse("DeviceNotAllowed", `its quote names device ${verified.deviceId}, not on the allowlist.`);
    }
  }
  if (isStale(policy.standing)) {
    const reason =
      policy.standing === "device-revoked"
        ? "DeviceRevoked"
        : policy.standing === "device-not-allowed"
          ? "DeviceNotAllowed"
          : policy.standing === "compose-hash-not-allowed"
            ? "ComposeHashNotAllowed"
            : policy.standing === "kms-root-not-allowed"
              ? "KmsRootNotAllowed"
              : "NotStanding";
    return refuse(reason, `the chain says it is no longer standing (${policy.standing}).`);
  }
  if (policy.standing === "not-active") return refuse("NotStanding", "the chain says it is not active.");
  return {
    ok: true,
    kind,
    composeHash,
    ...(deviceId === undefined ? {} : { deviceId }),
    ...(verified.tcbStatus === undefined ? {} : { tcbStatus: verified.tcbStatus }),
    detail:
      kind === "simulated"
        ? `SIMULATED evidence (the cluster allows the simulator): compose ${composeHash} allowed, keys and nonce bound.`
        : `TDX quote verified (TCB ${verified.tcbStatus ?? "?"}): compose ${composeHash} allowed, keys and nonce bound.`,
  };
}

export interface JudgeInput {
  /** The peer's record from the certified view: its report data must bind exactly these keys. */
  readonly member: Member;
  readonly chainId: number;
  readonly cluster: `0x${string}`;
  /** The nonce this node sent (32 bytes). */
  readonly nonce: Uint8Array;
  /** The JSON the peer answered. */
  readonly document: unknown;
  /** The head's policy (evidenceDeviceRevoked unset: the quote's device is not known yet). */
  readonly policy: PeerPolicy;
  /** Whether the device a verified TDX quote names is revoked (read once the quote verified). */
  readonly deviceRevoked?: (deviceId: string) => Promise<boolean>;
  readonly collateral: CollateralSource;
  /** Unix seconds. */
  readonly at: number;
}

/**
 * Judges one fetched attestation. Returns the verdict and, when the quote checks passed, the evidence
 * to re-judge on a policy change. Throws only a retryable `AttestmeshError` (CollateralUnavailable):
 * our PCCS failing says nothing about the peer.
 */
export async function judgeAttestation(
  input: JudgeInput,
): Promise<{ readonly verdict: Verdict; readonly verified?: VerifiedEvidence }> {
  const evidenceFault = (reason: VerdictReason, detail: string, kind?: "tdx" | "simulated") => ({
    verdict: { ok: false as const, cause: "evidence" as const, reason, detail, ...(kind ? { kind } : {}) },
  });
  let document: ReturnType<typeof parseAttestationDocument>;
  try {
    document = parseAttestationDocument(input.document);
  } catch (error) {
    return evidenceFault("DocumentInvalid", error instanceof Error ? error.message : String(error));
  }
  const nonceHex = `0x${Buffer.from(input.nonce).toString("hex")}`;
  if (document.nonce.toLowerCase() !== nonceHex) {
    // A replayed document answers somebody else's (or an old) nonce; its report data could not bind ours.
    return evidenceFault(
      "NonceMismatch",
      `it answered nonce ${document.nonce}, not the one sent (${nonceHex}).`,
    );
  }
  const expected = claimsOf(input.member, input.chainId, input.cluster);
  const report: QuoteReport = await verifyEvidence(
    {
      quote: hexToBytes(document.quote as Hex),
      eventLog: parseEventLog(document.eventLog),
      appCompose: document.appCompose,
    },
    {
      at: input.at,
      collateral: input.collateral,
      allowSimulator: input.policy.allowSimulator,
      requireTcbUpToDate: input.policy.requireTcbUpToDate,
      // From the chain's record and our nonce, never from the document's claims.
      expectedReportData: attestationReportData(expected, input.nonce),
    },
  );
  const failed = refusal(report);
  if (failed !== undefined || !report.ok) {
    if (failed?.reason === "CollateralUnavailable") {
      throw new AttestmeshError(`no collateral to judge member ${input.member.memberId}: ${failed.detail}`, {
        code: "CollateralUnavailable",
        retryable: true,
      });
    }
    const reason = failed?.reason ?? "QuoteRejected";
    const detail =
      reason === "ReportDataMismatch"
        ? `its quote is not bound to its on-chain keys and our nonce: ${failed?.detail ?? ""}`
        : `${failed?.name ?? "quote"}: ${failed?.detail ?? "refused"}`;
    return evidenceFault(reason, detail, report.kind);
  }
  if (report.boundComposeHash === undefined) {
    return evidenceFault("ComposeHashNotBound", "nothing signed binds a compose hash.", report.kind);
  }
  const verified: VerifiedEvidence = {
    kind: report.kind,
    composeHash: strip(report.boundComposeHash),
    ...(report.deviceId === undefined ? {} : { deviceId: strip(report.deviceId) }),
    ...(report.tcbStatus === undefined ? {} : { tcbStatus: report.tcbStatus }),
  };
  const policy =
    verified.deviceId !== undefined && input.deviceRevoked !== undefined
      ? { ...input.policy, evidenceDeviceRevoked: await input.deviceRevoked(verified.deviceId) }
      : input.policy;
  return { verdict: judgePolicy(verified, policy), verified };
}
