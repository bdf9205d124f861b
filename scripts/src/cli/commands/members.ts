// `attestmesh members` and `attestmesh evict`.

import Table from "cli-table3";
import type { Command } from "commander";
import { parseInteger, parseMemberRef } from "../../owner/args.ts";
import { type ChainCommandOptions, clusterContext } from "../../owner/context.ts";
import { type CliIo, toJson } from "../../owner/io.ts";
import { evictPlan, listMembers } from "../../owner/members.ts";
import { chainOptions, runPlan, type TxCommandOptions, txOptions } from "./options.ts";

export function registerMembersCommand(program: Command, io: CliIo): void {
  chainOptions(program.command("members"))
    .description("list members: id, app id, mesh IP, status, registered at")
    .option("--active", "only active members")
    .action(async (options: ChainCommandOptions & { active?: boolean }) => {
      const ctx = await clusterContext(io, options);
      const rows = await listMembers(ctx, { activeOnly: options.active === true });
      if (ctx.json) {
        io.stdout.write(toJson({ cluster: ctx.cluster, chainId: ctx.net.chain.id, members: rows }));
        return;
      }
      if (rows.length === 0) {
        io.stdout.write("no members\n");
        return;
      }
      const table = new Table({
        head: ["id", "app id", "mesh ip", "status", "registered at"],
        style: { head: [], border: [] },
      });
      for (const r of rows) table.push([r.memberId, r.appId, r.meshIp, r.status, r.registeredAt]);
      io.stdout.write(`${table.toString()}\n`);
    });

  txOptions(program.command("evict <memberIdOrAppId>"))
    .description("evict a member (by member id or app id): it leaves the mesh, its app id is disallowed")
    .option("--reason <code>", "reason code for the audit trail (0-254)", "1")
    .action(async (value: string, options: TxCommandOptions & { reason: string }) => {
      const ref = parseMemberRef(value);
      const reason = parseInteger(options.reason, "--reason", 0, 254);
      await runPlan(io, options, (ctx) => evictPlan(ctx, ref, reason));
    });
}
