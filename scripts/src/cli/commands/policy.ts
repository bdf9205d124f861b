// `attestmesh policy show|history` and `attestmesh policy require-tcb-up-to-date on|off`.

import type { Command } from "commander";
import { badArgument, formatReason, parseInteger } from "../../owner/args.ts";
import { type ChainCommandOptions, clusterContext } from "../../owner/context.ts";
import { type CliIo, toJson } from "../../owner/io.ts";
import { readPolicy, readPolicyHistory } from "../../owner/policy.ts";
import type { PolicyHistory } from "../../owner/policyHistory.ts";
import { startProgress } from "../../owner/progress.ts";
import { chainOptions, runPlan, type TxCommandOptions, txOptions } from "./options.ts";

type PolicyOptions = ChainCommandOptions & { fromBlock?: string };

function fromBlock(options: PolicyOptions): { fromBlock?: bigint } {
  return options.fromBlock === undefined
    ? {}
    : { fromBlock: BigInt(parseInteger(options.fromBlock, "--from-block", 0, Number.MAX_SAFE_INTEGER)) };
}

const list = (title: string, items: readonly string[]) =>
  `${title} (${items.length})${items.length === 0 ? "" : `\n${items.map((i) => `  ${i}`).join("\n")}`}\n`;

function renderPolicy(policy: PolicyHistory): string {
  const when = (t: bigint) => new Date(Number(t) * 1000).toISOString();
  const indexerApps = new Set(policy.indexerAppIds.map((a) => a.toLowerCase()));
  const role = (appId: string) => (indexerApps.has(appId.toLowerCase()) ? "indexer" : "node");
  return (
    `allow any device: ${policy.allowAnyDevice ? "on" : "off"}\n` +
    `require TCB up to date: ${policy.requireTcbUpToDate ? "on" : "off"}\n` +
    list("compose hashes, node role", policy.composeHashes) +
    list("compose hashes, indexer role", policy.indexerComposeHashes) +
    list(
      "app ids",
      policy.appIds.map((a) => `${a}  ${role(a)}`),
    ) +
    list(
      "indexer app ids not allowed now",
      policy.indexerAppIds.filter((a) => !policy.appIds.some((b) => b.toLowerCase() === a.toLowerCase())),
    ) +
    list("KMS roots", policy.kmsRoots) +
    list("devices", policy.deviceIds) +
    list(
      "revoked app ids",
      policy.appIdRevocations.map((r) => `${r.appId}  at ${when(r.revokedAt)}  ${formatReason(r.reason)}`),
    ) +
    list(
      "revoked devices",
      policy.deviceRevocations.map(
        (r) => `${r.deviceId}  at ${when(r.revokedAt)}  ${formatReason(r.reason)}`,
      ),
    )
  );
}

export function registerPolicyCommand(program: Command, io: CliIo): void {
  const policy = program.command("policy").description("what the boot gate and the attestor consult");

  chainOptions(policy.command("show"))
    .description(
      "the policy now: allowlists, allow-any-device, require-tcb-up-to-date, revocations (with time and reason)",
    )
    .option("--from-block <n>", "the cluster's deployment block (default: found with eth_getCode)")
    .action(async (options: PolicyOptions) => {
      const range = fromBlock(options);
      const ctx = await clusterContext(io, options);
      const progress = startProgress(io, ctx.json, "reading the policy and its revocation events");
      const view = await readPolicy(ctx, range).catch((error: unknown) => {
        progress.fail("could not read the policy");
        throw error;
      });
      progress.succeed(`read at block ${view.block}`);
      if (ctx.json) io.stdout.write(toJson(view));
      else
        io.stdout.write(
          `cluster ${view.cluster} on chain ${view.chainId} at block ${view.block}, owner ${view.owner}\n${renderPolicy(view.policy)}`,
        );
    });

  txOptions(policy.command("require-tcb-up-to-date <onOrOff>"))
    .description(
      'on: refuse a boot whose TDX TCB status is not "UpToDate" (dstack\'s requireTcbUpToDate); off: any status',
    )
    .action(async (value: string, options: TxCommandOptions) => {
      if (value !== "on" && value !== "off")
        throw badArgument(`require-tcb-up-to-date takes "on" or "off", got "${value}"`);
      const on = value === "on";
      await runPlan(io, options, () => ({
        action: "policy require-tcb-up-to-date",
        functionName: "setRequireTcbUpToDate",
        args: [on],
        changes: { "require TCB up to date": on ? "on" : "off" },
      }));
    });

  chainOptions(policy.command("history"))
    .description(
      "the audit trail: every policy event since deployment, and the policy rebuilt from them alone",
    )
    .option("--from-block <n>", "the cluster's deployment block (default: found with eth_getCode)")
    .action(async (options: PolicyOptions) => {
      const range = fromBlock(options);
      const ctx = await clusterContext(io, options);
      const progress = startProgress(io, ctx.json, "reading the cluster's events since its deployment");
      const view = await readPolicyHistory(ctx, range).catch((error: unknown) => {
        progress.fail("could not read the events");
        throw error;
      });
      progress.succeed(`${view.events.length} policy events in blocks ${view.fromBlock}-${view.toBlock}`);
      if (ctx.json) {
        io.stdout.write(toJson(view));
        return;
      }
      const lines = view.events.map(
        (e) =>
          `block ${e.block}  ${e.name}(${Object.entries(e.args)
            .map(([k, v]) => `${k}: ${String(v)}`)
            .join(", ")})  tx ${e.transactionHash}`,
      );
      io.stdout.write(
        `${view.events.length} policy events in blocks ${view.fromBlock}-${view.toBlock}\n${lines.join("\n")}${lines.length ? "\n" : ""}\nrebuilt from these events alone:\n${renderPolicy(view.policy)}`,
      );
    });
}
