// Reading the member list, and the eviction plan the CLI's `evict` and the devnet's `evict <node>` share.

import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { numberToIp } from "@attestmesh/shared/mesh/cidr.ts";
import type { Address } from "viem";
import { type ClusterContext, readCluster } from "./context.ts";
import type { TxPlan } from "./transact.ts";

export const MEMBER_STATUS = ["none", "active", "left", "evicted"] as const;
export type MemberStatusName = (typeof MEMBER_STATUS)[number];

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
}

const PAGE = 200n;

type MemberView = Awaited<ReturnType<ReturnType<typeof readCluster>["read"]["member"]>>;

function toRow(m: MemberView): MemberRow {
  const ended = m.endedAt !== 0;
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
  };
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
    for (const m of page) rows.push(toRow(m));
    start = next;
  }
  return options.activeOnly ? rows.filter((r) => r.status === "active") : rows;
}

/** The plan to evict the member of `ref` (a member id, or an app id whose member is active). */
export async function evictPlan(
  ctx: ClusterContext,
  ref: { memberId: bigint } | { appId: Address },
  reason: number,
): Promise<TxPlan> {
  const cluster = readCluster(ctx);
  let memberId: bigint;
  if ("appId" in ref) {
    const [id, active] = await cluster.read.memberOfApp([ref.appId]);
    if (!active) {
      throw new AttestmeshError(`app ${ref.appId} has no active member to evict`, {
        code: "NoActiveMember",
        details: { appId: ref.appId },
      });
    }
    memberId = id;
  } else {
    memberId = ref.memberId;
  }
  const record = toRow(await cluster.read.member([memberId]));
  if (record.status !== "active") {
    throw new AttestmeshError(`member ${memberId} is ${record.status}, not active; nothing to evict`, {
      code: "MemberNotActive",
      details: { memberId: memberId.toString(), status: record.status },
    });
  }
  return {
    action: "evict",
    functionName: "evict",
    args: [memberId, reason],
    changes: {
      "evict member": memberId.toString(),
      "app id (disallowed)": record.appId,
      "mesh ip (freed)": record.meshIp,
      "reason code": String(reason),
    },
  };
}
