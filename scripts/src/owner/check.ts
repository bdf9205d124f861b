// `check <appId>`: may this app boot (the KMS asks the policy through isAppAllowed) and join (register),
// and if not, why. Reads only; the answer lists every reason, not just the first.

import type { Address, Hex } from "viem";
import { type ClusterContext, readCluster } from "./context.ts";

export interface CheckResult {
  readonly appId: Address;
  readonly memberApp: boolean;
  readonly appAllowed: boolean;
  readonly revokedAt: string | null;
  readonly member: { readonly memberId: string; readonly active: boolean } | null;
  /** null when no compose hash was given: the boot gate needs one. */
  readonly boot: { readonly allowed: boolean; readonly composeHash: Hex; readonly reason: string } | null;
  readonly join: { readonly allowed: boolean; readonly reasons: readonly string[] };
}

const ZERO32 = `0x${"00".repeat(32)}` as Hex;

export async function checkApp(
  ctx: ClusterContext,
  appId: Address,
  options: { composeHash?: Hex; deviceId?: Hex } = {},
): Promise<CheckResult> {
  const cluster = readCluster(ctx);
  const [appAllowed, revokedAt, memberApp, [memberId, active], kmsRootCount] = await Promise.all([
    cluster.read.isAppIdAllowed([appId]),
    cluster.read.appIdRevokedAt([appId]),
    cluster.read.isMemberApp([appId]),
    cluster.read.memberOfApp([appId]),
    cluster.read.policySnapshot().then((s) => s.kmsRoots.length),
  ]);
  const reasons: string[] = [];
  if (revokedAt !== 0n) reasons.push(`app id revoked at ${new Date(Number(revokedAt) * 1000).toISOString()}`);
  else if (!appAllowed) reasons.push("app id not allowed (`attestmesh allow app`)");
  if (kmsRootCount === 0) reasons.push("no KMS root is allowed, so no key chain can verify");
  let boot: CheckResult["boot"] = null;
  if (options.composeHash !== undefined) {
    const [allowed, reason] = await cluster.read.isAppAllowed([
      {
        appId,
        composeHash: options.composeHash,
        instanceId: "0x0000000000000000000000000000000000000000",
        deviceId: options.deviceId ?? ZERO32,
        mrAggregated: ZERO32,
        mrSystem: ZERO32,
        osImageHash: ZERO32,
        // The platform's TCB is the host's, not the app's: ask as a current platform, so a cluster that
        // requires an up-to-date TCB still answers about the compose hash and device.
        tcbStatus: "UpToDate",
        advisoryIds: [],
      },
    ]);
    boot = { allowed, composeHash: options.composeHash, reason };
  }
  return {
    appId,
    memberApp,
    appAllowed,
    revokedAt: revokedAt === 0n ? null : revokedAt.toString(),
    member: memberId === 0n ? null : { memberId: memberId.toString(), active },
    boot,
    // An app with an active member re-registers as a no-op (a restart), so that is not a refusal.
    join: { allowed: reasons.length === 0, reasons },
  };
}
