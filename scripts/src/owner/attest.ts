// One verification report for a member's (or any dstack CVM's) attestation, in the spirit of a
// runtime-integrity report: what runs (compose hash and whether the policy allows it now, image
// measurements, TCB status and advisories, device), who it is on chain (member id, keys), whether the
// quote binds those keys and the caller's nonce, and every check with pass or fail and the reason.
// Revocation is judged before any allowlist, as the quote trust server's /check_quote does.

import type { CollateralSource } from "@attestmesh/shared/attestation/collateral.ts";
import { attestationReportData, type MemberClaims } from "@attestmesh/shared/attestation/document.ts";
import { readAttestationPolicy } from "@attestmesh/shared/attestation/policy.ts";
import {
  type Check,
  type Evidence,
  type QuoteReport,
  verifyEvidence,
} from "@attestmesh/shared/attestation/verify.ts";
import { type Address, getAddress, type Hex } from "viem";
import { type ClusterContext, readCluster } from "./context.ts";

export type PolicyCheckName = "revocation" | "app-id" | "compose-policy" | "device-policy" | "member";

/** A check of the report: the evidence's own (quote, collateral, log, compose) or the policy's. */
export interface ReportCheck {
  readonly name: Check["name"] | PolicyCheckName;
  readonly ok: boolean;
  readonly reason?: string;
  readonly detail: string;
}

export interface VerificationReport {
  /** True only when every check passed. */
  readonly ok: boolean;
  /** "SIMULATED" evidence (the dstack simulator's) proves nothing about hardware. */
  readonly evidence: "tdx" | "SIMULATED";
  readonly verifiedAt: string;
  readonly runs: {
    readonly appId: Address | null;
    readonly composeHash: Hex | null;
    readonly composeAllowedNow: boolean | null;
    readonly mrtd: string | null;
    readonly rtmrs: readonly string[];
    readonly tcbStatus: string | null;
    readonly advisoryIds: readonly string[];
    readonly deviceId: Hex | null;
    readonly instanceId: string | null;
    readonly keyProvider: string | null;
    readonly collateral: string | null;
  };
  /** Null for a bare quote (`check <file>`): nothing on chain is claimed. */
  readonly onChain: {
    readonly memberId: string;
    readonly status: string;
    readonly appId: Address;
    readonly memberKey: Address;
    readonly wireguardKey: Hex;
    readonly identityKey: Hex;
  } | null;
  /** Whether the quote's report data commits to the on-chain keys and the nonce. */
  readonly binding: { readonly nonce: Hex; readonly bound: boolean } | null;
  readonly checks: readonly ReportCheck[];
}

const MEMBER_STATUS = ["none", "active", "left", "evicted"] as const;

const pass = (name: ReportCheck["name"], detail: string): ReportCheck => ({ name, ok: true, detail });
const fail = (name: ReportCheck["name"], reason: string, detail: string): ReportCheck => ({
  name,
  ok: false,
  reason,
  detail,
});
const iso = (seconds: bigint | number) => new Date(Number(seconds) * 1000).toISOString();

/**
 * Verifies `evidence` and judges it against the cluster's current policy. With `member`, also checks
 * that it is that member's: its app id, and report data committing to its on-chain keys and `nonce`.
 */
export async function verificationReport(
  ctx: ClusterContext,
  evidence: Evidence,
  options: {
    readonly collateral: CollateralSource;
    readonly at: number;
    readonly member?: { readonly memberId: bigint; readonly nonce: Uint8Array };
  },
): Promise<VerificationReport> {
  const cluster = readCluster(ctx);
  const policy = await readAttestationPolicy(ctx.net.client, ctx.cluster);
  let claims: MemberClaims | undefined;
  let onChain: VerificationReport["onChain"] = null;
  if (options.member !== undefined) {
    const view = await cluster.read.member([options.member.memberId]);
    onChain = {
      memberId: view.memberId.toString(),
      status: MEMBER_STATUS[view.status] ?? String(view.status),
      appId: view.appId,
      memberKey: view.memberKey,
      wireguardKey: view.wireguardKey,
      identityKey: view.identityKey,
    };
    claims = {
      chainId: ctx.net.chain.id,
      cluster: ctx.cluster,
      memberId: options.member.memberId.toString(),
      memberKey: view.memberKey,
      wireguardKey: view.wireguardKey,
      identityKey: view.identityKey,
    };
  }
  const expectedReportData =
    claims === undefined || options.member === undefined
      ? undefined
      : attestationReportData(claims, options.member.nonce);
  const quote: QuoteReport = await verifyEvidence(evidence, {
    at: options.at,
    collateral: options.collateral,
    allowSimulator: policy.allowSimulator,
    requireTcbUpToDate: policy.requireTcbUpToDate,
    ...(expectedReportData === undefined ? {} : { expectedReportData }),
  });

  const checks: ReportCheck[] = [...quote.checks];
  const appIdHex = quote.identity.appId;
  const appId = appIdHex !== undefined && appIdHex.length === 40 ? getAddress(`0x${appIdHex}`) : null;
  const composeHash = quote.boundComposeHash === undefined ? null : (`0x${quote.boundComposeHash}` as Hex);
  const deviceId = quote.deviceId === undefined ? null : (`0x${quote.deviceId}` as Hex);

  // Revocation first: a revoked app id or device is refused whatever the allowlists say.
  const [appRevokedAt, deviceRevokedAt] = await Promise.all([
    appId === null ? 0n : cluster.read.appIdRevokedAt([appId]),
    deviceId === null ? 0n : cluster.read.deviceRevokedAt([deviceId]),
  ]);
  if (appRevokedAt !== 0n) {
    checks.push(fail("revocation", "AppIdRevoked", `app id ${appId} was revoked at ${iso(appRevokedAt)}.`));
  } else if (deviceRevokedAt !== 0n) {
    checks.push(
      fail("revocation", "DeviceRevoked", `device ${deviceId} was revoked at ${iso(deviceRevokedAt)}.`),
    );
  } else {
    checks.push(pass("revocation", "neither the app id nor the device is revoked."));
  }

  let composeAllowedNow: boolean | null = null;
  if (appId === null) {
    checks.push(fail("app-id", "AppIdMissing", "the event log names no app id."));
  } else {
    const allowed = await cluster.read.isAppIdAllowed([appId]);
    checks.push(
      allowed
        ? pass("app-id", `app id ${appId} is allowed.`)
        : fail("app-id", "AppIdNotAllowed", `app id ${appId} is not on the allowlist.`),
    );
  }
  if (composeHash === null) {
    checks.push(fail("compose-policy", "ComposeHashNotBound", "nothing signed binds a compose hash."));
  } else {
    composeAllowedNow = await cluster.read.isComposeHashAllowed([composeHash]);
    checks.push(
      composeAllowedNow
        ? pass("compose-policy", `compose hash ${composeHash} is allowed now.`)
        : fail("compose-policy", "ComposeHashNotAllowed", `compose hash ${composeHash} is not allowed now.`),
    );
  }
  if (quote.kind === "simulated") {
    checks.push(pass("device-policy", "SIMULATED evidence has no device; the cluster allows the simulator."));
  } else if (deviceId === null) {
    checks.push(fail("device-policy", "DeviceUnknown", "no device id: the quote did not verify."));
  } else {
    const allowed = await cluster.read.isDeviceAllowed([deviceId]);
    checks.push(
      allowed
        ? pass("device-policy", `device ${deviceId} is allowed.`)
        : fail("device-policy", "DeviceNotAllowed", `device ${deviceId} is not allowed.`),
    );
  }
  if (onChain !== null) {
    if (onChain.status !== "active") {
      checks.push(fail("member", "MemberNotActive", `member ${onChain.memberId} is ${onChain.status}.`));
    } else if (appId === null || appId !== onChain.appId) {
      checks.push(
        fail(
          "member",
          "AnotherAppsEvidence",
          `member ${onChain.memberId} is app ${onChain.appId}; the evidence is app ${appId ?? "(none)"}.`,
        ),
      );
    } else {
      checks.push(pass("member", `member ${onChain.memberId} is active, and the evidence is its app's.`));
    }
  }

  return {
    ok: checks.every((c) => c.ok),
    evidence: quote.kind === "simulated" ? "SIMULATED" : "tdx",
    verifiedAt: iso(options.at),
    runs: {
      appId,
      composeHash,
      composeAllowedNow,
      mrtd: quote.mrtd ?? null,
      rtmrs: quote.rtmrs ?? [],
      tcbStatus: quote.tcbStatus ?? null,
      advisoryIds: quote.advisoryIds,
      deviceId,
      instanceId: quote.identity.instanceId ?? null,
      keyProvider: quote.identity.keyProvider?.raw ?? null,
      collateral: quote.collateral?.source ?? null,
    },
    onChain,
    binding:
      options.member === undefined
        ? null
        : {
            nonce: `0x${Buffer.from(options.member.nonce).toString("hex")}` as Hex,
            bound: quote.checks.some((c) => c.name === "report-data" && c.ok),
          },
    checks,
  };
}

/** The report as text: what runs, who it is, the binding, then every check. */
export function formatReport(report: VerificationReport): string {
  const lines: string[] = [];
  const r = report.runs;
  lines.push(
    `attestation: ${report.ok ? "VERIFIED" : "REFUSED"}${report.evidence === "SIMULATED" ? " (SIMULATED evidence: the dstack simulator, no hardware)" : ""}, at ${report.verifiedAt}`,
  );
  lines.push("what runs");
  lines.push(`  app id        ${r.appId ?? "-"}`);
  lines.push(
    `  compose hash  ${r.composeHash ?? "-"}${r.composeAllowedNow === null ? "" : r.composeAllowedNow ? " (allowed now)" : " (NOT allowed now)"}`,
  );
  lines.push(`  MRTD          ${r.mrtd ?? "-"}`);
  r.rtmrs.forEach((v, i) => {
    lines.push(`  RTMR${i}         ${v}`);
  });
  lines.push(
    `  TCB           ${r.tcbStatus ?? "-"}${r.advisoryIds.length > 0 ? ` (advisories ${r.advisoryIds.join(", ")})` : ""}`,
  );
  lines.push(`  device        ${r.deviceId ?? "-"}`);
  if (r.keyProvider !== null) lines.push(`  key provider  ${r.keyProvider}`);
  if (r.collateral !== null) lines.push(`  collateral    ${r.collateral}`);
  if (report.onChain !== null) {
    const m = report.onChain;
    lines.push("who it is on chain");
    lines.push(`  member        ${m.memberId} (${m.status})`);
    lines.push(`  app id        ${m.appId}`);
    lines.push(`  member key    ${m.memberKey}`);
    lines.push(`  wireguard     ${m.wireguardKey}`);
    lines.push(`  identity      ${m.identityKey}`);
  }
  if (report.binding !== null) {
    lines.push(
      `binding: the quote ${report.binding.bound ? "binds" : "does NOT bind"} these keys and nonce ${report.binding.nonce}`,
    );
  }
  lines.push("checks");
  for (const c of report.checks) {
    lines.push(`  ${c.ok ? "pass" : "FAIL"}  ${c.name.padEnd(15)} ${c.ok ? "" : `${c.reason}: `}${c.detail}`);
  }
  return `${lines.join("\n")}\n`;
}
