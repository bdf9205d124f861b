// `check <appId>`: may this app boot (the KMS asks the policy through isAppAllowed) and join (register),
// and if not, why. Reads only; the answer lists every reason, not just the first.

import type { Address, Hex } from "viem";
import { APP_ROLE_VALUE, APP_ROLES, type AppRoleName, appRoleName } from "./appRole.ts";
import { type ClusterContext, readCluster } from "./context.ts";
import { dstackKmsAbi, isRegisteredWithKms, registerCommand } from "./dstackKms.ts";

export interface CheckResult {
  readonly appId: Address;
  readonly memberApp: boolean;
  /** Its role: it may boot only compose hashes allowed for this role. */
  readonly role: AppRoleName;
  readonly appAllowed: boolean;
  readonly revokedAt: string | null;
  readonly member: { readonly memberId: string; readonly active: boolean } | null;
  /** null when no compose hash was given: the boot gate needs one. */
  readonly boot: {
    readonly allowed: boolean;
    readonly composeHash: Hex;
    readonly reason: string;
    /** The roles the compose hash is allowed for, whichever this app's role is. */
    readonly composeRoles: readonly AppRoleName[];
  } | null;
  readonly join: { readonly allowed: boolean; readonly reasons: readonly string[] };
  /**
   * dstack's KMS contract, when one was given: dstack's KMS boots no app unregistered there. `boot` is
   * the KMS contract's own isAppAllowed answer, asked only with a compose hash and an OS image hash.
   */
  readonly kms: {
    readonly contract: Address;
    readonly registered: boolean;
    /** The command that registers the app, when it is not registered. */
    readonly fix: string | null;
    readonly boot: { readonly allowed: boolean; readonly osImageHash: Hex; readonly reason: string } | null;
  } | null;
}

const ZERO32 = `0x${"00".repeat(32)}` as Hex;

export async function checkApp(
  ctx: ClusterContext,
  appId: Address,
  options: { composeHash?: Hex; deviceId?: Hex; kmsContract?: Address; osImageHash?: Hex } = {},
): Promise<CheckResult> {
  const cluster = readCluster(ctx);
  const [role, appAllowed, revokedAt, memberApp, [memberId, active], kmsRootCount] = await Promise.all([
    cluster.read.appRole([appId]).then(appRoleName),
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
  const bootInfo = (composeHash: Hex) => ({
    appId,
    composeHash,
    instanceId: "0x0000000000000000000000000000000000000000" as Address,
    deviceId: options.deviceId ?? ZERO32,
    mrAggregated: ZERO32,
    mrSystem: ZERO32,
    osImageHash: options.osImageHash ?? ZERO32,
    // The platform's TCB is the host's, not the app's: ask as a current platform, so a cluster that
    // requires an up-to-date TCB still answers about the compose hash and device.
    tcbStatus: "UpToDate",
    advisoryIds: [] as string[],
  });
  if (options.composeHash !== undefined) {
    const composeHash = options.composeHash;
    const [[allowed, reason], ...forRoles] = await Promise.all([
      cluster.read.isAppAllowed([bootInfo(composeHash)]),
      ...APP_ROLES.map((r) => cluster.read.isComposeHashAllowedFor([composeHash, APP_ROLE_VALUE[r]])),
    ]);
    const composeRoles = APP_ROLES.filter((_, i) => forRoles[i] === true);
    boot = { allowed, composeHash, reason, composeRoles };
  }
  let kms: CheckResult["kms"] = null;
  if (options.kmsContract !== undefined) {
    const contract = options.kmsContract;
    const registered = await isRegisteredWithKms(ctx.net, contract, appId);
    let kmsBoot: NonNullable<CheckResult["kms"]>["boot"] = null;
    if (options.composeHash !== undefined && options.osImageHash !== undefined) {
      // The KMS's own question, as its KMS asks it: registration, OS image, code at the app id, then
      // the app's isAppAllowed from inside the KMS contract's view.
      const [allowed, reason] = await ctx.net.client.readContract({
        address: contract,
        abi: dstackKmsAbi,
        functionName: "isAppAllowed",
        args: [bootInfo(options.composeHash)],
      });
      kmsBoot = { allowed, osImageHash: options.osImageHash, reason };
    }
    kms = { contract, registered, fix: registered ? null : registerCommand(appId, contract), boot: kmsBoot };
  }
  return {
    appId,
    memberApp,
    role,
    appAllowed,
    revokedAt: revokedAt === 0n ? null : revokedAt.toString(),
    member: memberId === 0n ? null : { memberId: memberId.toString(), active },
    boot,
    // An app with an active member re-registers as a no-op (a restart), so that is not a refusal.
    join: { allowed: reasons.length === 0, reasons },
    kms,
  };
}
