// `attestmesh members` and `attestmesh evict` (one member, or every stale one).

import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import Table from "cli-table3";
import type { Command } from "commander";
import { badArgument, parseAddress, parseBytes32, parseInteger, parseMemberRef } from "../../owner/args.ts";
import { type ChainCommandOptions, type ClusterContext, clusterContext } from "../../owner/context.ts";
import { type CliIo, toJson } from "../../owner/io.ts";
import {
  evictPlan,
  evictStalePlans,
  fingerprintHex,
  isStale,
  listMembers,
  type MemberRow,
  staleMembers,
} from "../../owner/members.ts";
import { chainOptions, runPlan, type TxCommandOptions, txOptions } from "./options.ts";

type MembersOptions = ChainCommandOptions & {
  active?: boolean;
  stale?: boolean;
  compose?: string;
  device?: string;
  kmsRoot?: string;
};

/** `0x12345678…9abc`: enough of a hash to tell members apart in a table (`--json` has it whole). */
const short = (value: string | null) => (value === null ? "-" : `${value.slice(0, 10)}…${value.slice(-4)}`);

/** A device id, or (held by fingerprint, its id not found in the logs) `fingerprint 0x…`. */
const deviceCell = (r: MemberRow) =>
  r.deviceId === null && r.deviceFingerprint !== null
    ? `fingerprint ${r.deviceFingerprint}`
    : short(r.deviceId);

/** The members table: who runs which compose on which device, admitted by which KMS root. */
export function membersTable(rows: readonly MemberRow[]): string {
  const table = new Table({
    head: [
      "id",
      "app id",
      "mesh ip",
      "status",
      "standing",
      "compose hash",
      "device",
      "KMS root",
      "registered at",
    ],
    style: { head: [], border: [] },
  });
  for (const r of rows) {
    table.push([
      r.memberId,
      r.appId,
      r.meshIp,
      r.status,
      r.standing,
      short(r.composeHash),
      deviceCell(r),
      r.kmsRoot ?? "-",
      r.registeredAt,
    ]);
  }
  return `${table.toString()}\n`;
}

function filterDescription(options: MembersOptions): string {
  const parts = [
    options.active || options.stale ? "active" : "",
    options.stale ? "stale (revoked device, withdrawn compose hash or KMS root)" : "",
    options.compose ? `running compose hash ${options.compose}` : "",
    options.device ? `on device ${options.device}` : "",
    options.kmsRoot ? `admitted by KMS root ${options.kmsRoot}` : "",
  ].filter((p) => p !== "");
  return parts.length === 0 ? "" : ` ${parts.join(", ")}`;
}

export function registerMembersCommand(program: Command, io: CliIo): void {
  chainOptions(program.command("members"))
    .description(
      "list members: id, app id, mesh IP, status, standing, the compose hash and device each stated, the KMS root that admitted it",
    )
    .option("--active", "only active members")
    .option("--stale", "only active members the owner's revocations reached (implies --active)")
    .option("--compose <hash>", "only members that run this compose hash")
    .option("--device <deviceId>", "only members on this device")
    .option("--kms-root <address>", "only members this KMS root admitted")
    .action(async (options: MembersOptions) => {
      const compose = options.compose === undefined ? undefined : parseBytes32(options.compose, "--compose");
      const device = options.device === undefined ? undefined : parseBytes32(options.device, "--device");
      const root = options.kmsRoot === undefined ? undefined : parseAddress(options.kmsRoot, "--kms-root");
      const ctx = await clusterContext(io, options);
      const same = (a: string | null, b: string | undefined) =>
        b === undefined || a?.toLowerCase() === b.toLowerCase();
      // A member whose id the logs did not give is matched by fingerprint, as the chain judges it.
      const onDevice = (r: MemberRow, id: `0x${string}` | undefined) =>
        id === undefined ||
        (r.deviceId === null ? r.deviceFingerprint === fingerprintHex(id) : same(r.deviceId, id));
      const rows = (
        await listMembers(ctx, { activeOnly: options.active === true || options.stale === true })
      ).filter(
        (r) =>
          (options.stale !== true || isStale(r.standing)) &&
          same(r.composeHash, compose) &&
          onDevice(r, device) &&
          same(r.kmsRoot, root),
      );
      if (ctx.json) {
        io.stdout.write(toJson({ cluster: ctx.cluster, chainId: ctx.net.chain.id, members: rows }));
        return;
      }
      if (rows.length === 0) {
        io.stdout.write(`no${filterDescription(options)} members\n`);
        return;
      }
      io.stdout.write(membersTable(rows));
    });

  txOptions(program.command("evict [memberIdOrAppId]"))
    .description(
      "evict a member (by member id or app id): it leaves the mesh, its app id is disallowed; --stale: every member the owner's revocations reached",
    )
    .option("--reason <code>", "reason code for the audit trail (0-253)", "1")
    .option(
      "--stale",
      "evict every active member on a revoked device, or running a withdrawn compose hash or KMS root (reason 254); fails while one remains",
    )
    .action(
      async (value: string | undefined, options: TxCommandOptions & { reason: string; stale?: boolean }) => {
        if (options.stale === true) {
          if (value !== undefined) throw badArgument("evict --stale takes no member id or app id");
          await evictStale(io, options);
          return;
        }
        if (value === undefined) throw badArgument("evict needs a member id or an app id, or --stale");
        const ref = parseMemberRef(value);
        const reason = parseInteger(options.reason, "--reason", 0, 253);
        await runPlan(io, options, (ctx) => evictPlan(ctx, ref, reason));
      },
    );
}

/** Evicts the stale members page by page, then reads them again: success only when none remains. */
async function evictStale(io: CliIo, options: TxCommandOptions): Promise<void> {
  const { printOutcome, transact } = await import("../../owner/transact.ts");
  const ctx: ClusterContext = await clusterContext(io, options);
  const stale = await staleMembers(ctx);
  const report = (payload: Record<string, unknown>, text: string) =>
    io.stdout.write(
      ctx.json ? toJson({ cluster: ctx.cluster, chainId: ctx.net.chain.id, ...payload }) : text,
    );
  if (stale.length === 0) {
    report(
      { stale: [], outcomes: [], remaining: [] },
      "no stale members: every active member still meets the policy\n",
    );
    return;
  }
  if (!ctx.json) io.stdout.write(`${stale.length} stale members:\n${membersTable(stale)}`);
  const outcomes = [];
  for (const plan of evictStalePlans(stale)) {
    const outcome = await transact(ctx, plan, options);
    outcomes.push(outcome);
    if (!ctx.json) printOutcome(ctx, outcome);
  }
  if (options.dryRun === true || options.calldata === true) {
    if (ctx.json) report({ stale, outcomes, remaining: stale }, "");
    return;
  }
  const remaining = await staleMembers(ctx);
  if (remaining.length > 0) {
    throw new AttestmeshError(
      `${remaining.length} stale members remain after evictStale: ${remaining.map((r) => r.memberId).join(", ")}; run \`attestmesh evict --stale\` again`,
      { code: "StaleMembersRemain", details: { remaining: remaining.map((r) => r.memberId) } },
    );
  }
  report(
    { stale, outcomes, remaining: [] },
    `evicted ${stale.length} stale members (${stale.map((r) => r.memberId).join(", ")}); none remains\n`,
  );
}
