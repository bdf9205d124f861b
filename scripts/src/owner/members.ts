// Reading the member list, and the eviction plan the CLI's `evict` and the devnet's `evict <node>` share.

import { deviceFingerprint } from "@attestmesh/shared/contracts/deviceFingerprint.ts";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { numberToIp } from "@attestmesh/shared/mesh/cidr.ts";
import type { Address } from "viem";
import { type ClusterContext, readCluster } from "./context.ts";
import { clusterLogs } from "./logs.ts";
import type { TxPlan } from "./transact.ts";

export const MEMBER_STATUS = ["none", "active", "left", "evicted"] as const;
export type MemberStatusName = (typeof MEMBER_STATUS)[number];

/** IMemberStanding.Standing: whether the policy would admit the member again now. */
export const MEMBER_STANDING = [
  "not-active",
  "good",
  "unrecorded",
  "device-revoked",
  "device-not-allowed",
  "compose-hash-not-allowed",
  "kms-root-not-allowed",
] as const;
export type MemberStandingName = (typeof MEMBER_STANDING)[number];

/** Whether the owner's revocation reached an active member (`evict --stale` evicts it). */
export function isStale(standing: MemberStandingName): boolean {
  return standing !== "good" && standing !== "unrecorded" && standing !== "not-active";
}

/** One member as `members --json` prints it. */
export interface MemberRow {
  readonly memberId: string;
  readonly appId: Address;
  readonly meshIp: string;
  readonly status: MemberStatusName;
  readonly registeredAt: string;
  readonly endedAt: string | null;
  readonly endReason: number | null;
  readonly memberKey: Address;
  readonly wireguardKey: `0x${string}`;
  readonly identityKey: `0x${string}`;
  /** What it stated at registration (null if it registered before claims were recorded). */
  readonly composeHash: `0x${string}` | null;
  /**
   * The device id it stated: from its record, or, for a member on a device no owner call had named
   * (held by fingerprint on chain), from its `MemberDeviceStated` log; null if unrecorded, or if the
   * RPC keeps no logs that old.
   */
  readonly deviceId: `0x${string}` | null;
  /** The 31-bit device fingerprint the cluster judges it by, as 8 hex digits (null if unrecorded). */
  readonly deviceFingerprint: `0x${string}` | null;
  /** The KMS root the chain recovered from its key chain. */
  readonly kmsRoot: Address | null;
  readonly standing: MemberStandingName;
}

const PAGE = 200n;
const ZERO32 = `0x${"0".repeat(64)}`;

type ClaimsView = Awaited<ReturnType<ReturnType<typeof readCluster>["read"]["memberClaims"]>>;

type MemberView = Awaited<ReturnType<ReturnType<typeof readCluster>["read"]["member"]>>;

function toRow(m: MemberView, c: ClaimsView): MemberRow {
  const ended = m.endedAt !== 0;
  const recorded = c.composeHash !== ZERO32;
  return {
    memberId: m.memberId.toString(),
    appId: m.appId,
    meshIp: numberToIp(m.meshIp),
    status: MEMBER_STATUS[m.status] ?? "none",
    registeredAt: new Date(m.registeredAt * 1000).toISOString(),
    endedAt: ended ? new Date(m.endedAt * 1000).toISOString() : null,
    endReason: ended ? m.endReason : null,
    memberKey: m.memberKey,
    wireguardKey: m.wireguardKey,
    identityKey: m.identityKey,
    composeHash: recorded ? c.composeHash : null,
    deviceId: recorded && c.deviceId !== ZERO32 ? c.deviceId : null,
    deviceFingerprint: recorded ? `0x${c.deviceFingerprint.toString(16).padStart(8, "0")}` : null,
    kmsRoot: recorded ? c.kmsRoot : null,
    standing: MEMBER_STANDING[c.standing] ?? "not-active",
  };
}

/**
 * Fill in the device ids the chain keeps only as fingerprints, from the members' `MemberDeviceStated`
 * logs (one log read, only when some row needs it). A log whose id does not match the member's
 * fingerprint is ignored; without history the rows keep their fingerprint alone.
 */
async function withStatedDevices(ctx: ClusterContext, rows: MemberRow[]): Promise<MemberRow[]> {
  if (!rows.some((r) => r.deviceId === null && r.deviceFingerprint !== null)) return rows;
  const stated = new Map<string, `0x${string}`>();
  try {
    for (const log of await clusterLogs(ctx)) {
      if (log.eventName === "MemberDeviceStated") stated.set(log.args.memberId.toString(), log.args.deviceId);
    }
  } catch (error) {
    if (error instanceof AttestmeshError) return rows;
    throw error;
  }
  return rows.map((r) => {
    const deviceId = r.deviceId === null ? stated.get(r.memberId) : undefined;
    if (deviceId === undefined || r.deviceFingerprint !== fingerprintHex(deviceId)) return r;
    return { ...r, deviceId };
  });
}

/** A device id's fingerprint in the form `MemberRow.deviceFingerprint` has. */
export function fingerprintHex(deviceId: `0x${string}`): `0x${string}` {
  return `0x${deviceFingerprint(deviceId).toString(16).padStart(8, "0")}`;
}

/** One member record with its claims and standing. */
async function readRow(ctx: ClusterContext, memberId: bigint): Promise<MemberRow> {
  const cluster = readCluster(ctx);
  const [m, c] = await Promise.all([cluster.read.member([memberId]), cluster.read.memberClaims([memberId])]);
  const [row] = await withStatedDevices(ctx, [toRow(m, c)]);
  return row!;
}

/** Every member record, every status, in id order (pages of 200). */
export async function listMembers(
  ctx: ClusterContext,
  options: { activeOnly?: boolean } = {},
): Promise<MemberRow[]> {
  const cluster = readCluster(ctx);
  const rows: MemberRow[] = [];
  for (let start = 1n, pages = 0; start !== 0n && pages < 10_000; pages++) {
    const [page, next] = await cluster.read.members([start, PAGE]);
    const claims = await Promise.all(page.map((m) => cluster.read.memberClaims([m.memberId])));
    page.forEach((m, i) => {
      rows.push(toRow(m, claims[i]!));
    });
    start = next;
  }
  const wanted = options.activeOnly ? rows.filter((r) => r.status === "active") : rows;
  return withStatedDevices(ctx, wanted);
}

/**
 * The plan to evict the member of `ref` (a member id, or an app id's latest member): one `evict`
 * transaction. It leaves no window for the member to dodge it: if the member leaves (and even
 * registers again) before the transaction lands, the contract evicts it all the same, disallows its
 * app id and evicts the app's newer member too (issue 13). Only an evicted or unknown member is
 * refused here.
 */
export async function evictPlan(
  ctx: ClusterContext,
  ref: { memberId: bigint } | { appId: Address },
  reason: number,
): Promise<TxPlan> {
  const cluster = readCluster(ctx);
  let memberId: bigint;
  if ("appId" in ref) {
    const [id] = await cluster.read.memberOfApp([ref.appId]);
    if (id === 0n) {
      throw new AttestmeshError(`app ${ref.appId} never had a member; nothing to evict`, {
        code: "NoActiveMember",
        details: { appId: ref.appId },
      });
    }
    memberId = id;
  } else {
    memberId = ref.memberId;
  }
  const record = await readRow(ctx, memberId);
  if (record.status === "none") {
    throw new AttestmeshError(`member ${memberId} does not exist; nothing to evict`, {
      code: "MemberUnknown",
      details: { memberId: memberId.toString() },
    });
  }
  if (record.status === "evicted") {
    const message =
      "appId" in ref
        ? `app ${ref.appId}'s latest member ${memberId} was already evicted; nothing to evict`
        : `member ${memberId} was already evicted; nothing to evict`;
    throw new AttestmeshError(message, {
      // By app id this is the old "no active member" refusal; by member id, what the contract says.
      code: "appId" in ref ? "NoActiveMember" : "MemberAlreadyEvicted",
      details: { memberId: memberId.toString(), status: record.status },
    });
  }
  const changes: Record<string, string> = {
    "evict member": memberId.toString(),
    "app id (disallowed)": record.appId,
  };
  if (record.status === "active") changes["mesh ip (freed)"] = record.meshIp;
  else
    changes["member left at"] = `${record.endedAt ?? "?"} (evicted all the same; its app id cannot rejoin)`;
  changes["reason code"] = String(reason);
  return { action: "evict", functionName: "evict", args: [memberId, reason], changes };
}

/** Active members the owner's revocation reached: on a revoked device, or a withdrawn compose or KMS root. */
export async function staleMembers(ctx: ClusterContext): Promise<MemberRow[]> {
  return (await listMembers(ctx, { activeOnly: true })).filter((r) => isStale(r.standing));
}

/** Active members that state `composeHash`. */
export async function membersRunning(ctx: ClusterContext, composeHash: `0x${string}`): Promise<MemberRow[]> {
  const rows = await listMembers(ctx, { activeOnly: true });
  return rows.filter((r) => r.composeHash?.toLowerCase() === composeHash.toLowerCase());
}

/** Members (every status) that `kmsRoot` admitted, and how many of them are active. */
export async function membersAdmittedBy(
  ctx: ClusterContext,
  kmsRoot: Address,
): Promise<{ admitted: MemberRow[]; active: MemberRow[] }> {
  const rows = await listMembers(ctx);
  const admitted = rows.filter((r) => r.kmsRoot?.toLowerCase() === kmsRoot.toLowerCase());
  return { admitted, active: admitted.filter((r) => r.status === "active") };
}

/** Members per `evictStale` transaction: bounded so one page fits a block with room to spare. */
export const EVICT_STALE_PAGE = 50n;

/** The `evictStale` pages that hold the stale members `stale` (ids in pages of `EVICT_STALE_PAGE`). */
export function evictStalePlans(stale: readonly MemberRow[]): TxPlan[] {
  const starts = new Map<bigint, MemberRow[]>();
  for (const row of stale) {
    const id = BigInt(row.memberId);
    const start = ((id - 1n) / EVICT_STALE_PAGE) * EVICT_STALE_PAGE + 1n;
    starts.set(start, [...(starts.get(start) ?? []), row]);
  }
  return [...starts.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([start, rows]) => ({
      action: "evict --stale",
      functionName: "evictStale",
      args: [start, EVICT_STALE_PAGE],
      changes: {
        "member ids": `${start}-${start + EVICT_STALE_PAGE - 1n}`,
        "evict (stale)": rows.map((r) => `${r.memberId} (${r.standing})`).join(", "),
        "reason code": "254",
      },
    }));
}
