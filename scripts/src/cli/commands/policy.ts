// `attestmesh policy show|history` and `attestmesh policy require-tcb-up-to-date on|off`.

import type { Command } from "commander";
import { formatReason, parseInteger } from "../../owner/args.ts";
import { type ChainCommandOptions, type ClusterContext, clusterContext } from "../../owner/context.ts";
import { type CliIo, toJson } from "../../owner/io.ts";
import { listMembers } from "../../owner/members.ts";
import { readPolicy, readPolicyHistory } from "../../owner/policy.ts";
import type { PolicyHistory } from "../../owner/policyHistory.ts";
import { startProgress } from "../../owner/progress.ts";
import { registerSwitchCommand } from "./calls.ts";
import { chainOptions } from "./options.ts";

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

  registerPolicyRead(policy.command("show"), io, {
    description:
      "the policy now: allowlists, allow-any-device, require-tcb-up-to-date, revocations (with time and reason)",
    reading: "reading the policy and its revocation events",
    failed: "could not read the policy",
    // Which member runs which compose on which device, admitted by which KMS root, and whether the
    // policy still admits it.
    read: async (ctx, range) => ({
      ...(await readPolicy(ctx, range)),
      members: await listMembers(ctx, { activeOnly: true }),
    }),
    succeeded: (view) => `read at block ${view.block}`,
    text: (view) =>
      `cluster ${view.cluster} on chain ${view.chainId} at block ${view.block}, owner ${view.owner}\n${renderPolicy(view.policy)}` +
      list(
        "active members (compose hash, device, KMS root, standing)",
        view.members.map(
          (m) =>
            `${m.memberId}  ${m.appId}  compose ${m.composeHash ?? "-"}  device ${m.deviceId ?? (m.deviceFingerprint === null ? "-" : `fingerprint ${m.deviceFingerprint}`)}  KMS root ${m.kmsRoot ?? "-"}  ${m.standing}`,
        ),
      ),
  });

  registerSwitchCommand(policy.command("require-tcb-up-to-date <onOrOff>"), io, {
    name: "require-tcb-up-to-date",
    description:
      'on: refuse a boot whose TDX TCB status is not "UpToDate" (dstack\'s requireTcbUpToDate); off: any status',
    action: "policy require-tcb-up-to-date",
    functionName: "setRequireTcbUpToDate",
    label: "require TCB up to date",
  });

  registerPolicyRead(policy.command("history"), io, {
    description:
      "the audit trail: every policy event since deployment, and the policy rebuilt from them alone",
    reading: "reading the cluster's events since its deployment",
    failed: "could not read the events",
    read: readPolicyHistory,
    succeeded: (view) => `${view.events.length} policy events in blocks ${view.fromBlock}-${view.toBlock}`,
    text(view) {
      const lines = view.events.map(
        (e) =>
          `block ${e.block}  ${e.name}(${Object.entries(e.args)
            .map(([k, v]) => `${k}: ${String(v)}`)
            .join(", ")})  tx ${e.transactionHash}`,
      );
      return `${view.events.length} policy events in blocks ${view.fromBlock}-${view.toBlock}\n${lines.join("\n")}${lines.length ? "\n" : ""}\nrebuilt from these events alone:\n${renderPolicy(view.policy)}`;
    },
  });
}

/** `policy show` and `policy history`: read from the deployment block with a progress line, then print. */
function registerPolicyRead<T>(
  command: Command,
  io: CliIo,
  spec: {
    readonly description: string;
    /** The progress line while reading, and when reading failed. */
    readonly reading: string;
    readonly failed: string;
    readonly read: (ctx: ClusterContext, range: { fromBlock?: bigint }) => Promise<T>;
    readonly succeeded: (view: T) => string;
    /** The text form (--json prints the view as it is). */
    readonly text: (view: T) => string;
  },
): void {
  chainOptions(command)
    .description(spec.description)
    .option("--from-block <n>", "the cluster's deployment block (default: found with eth_getCode)")
    .action(async (options: PolicyOptions) => {
      const range = fromBlock(options);
      const ctx = await clusterContext(io, options);
      const progress = startProgress(io, ctx.json, spec.reading);
      const view = await spec.read(ctx, range).catch((error: unknown) => {
        progress.fail(spec.failed);
        throw error;
      });
      progress.succeed(spec.succeeded(view));
      io.stdout.write(ctx.json ? toJson(view) : spec.text(view));
    });
}
