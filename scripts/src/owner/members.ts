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
  const record = toRow(await cluster.read.member([memberId]));
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
