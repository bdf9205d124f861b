// Options every cluster command shares, and the wrapper that runs a state-changing plan through
// owner/transact.ts. Commands declare them here so `--help` reads the same everywhere.

import type { Command } from "commander";
import { badArgument } from "../../owner/args.ts";
import { type ChainCommandOptions, type ClusterContext, clusterContext } from "../../owner/context.ts";
import type { CliIo } from "../../owner/io.ts";
import type { TxFlags, TxOutcome, TxPlan } from "../../owner/transact.ts";

export type TxCommandOptions = ChainCommandOptions & TxFlags;

/** `--rpc`, `--network`, `--cluster`, `--json`. */
export function chainOptions(command: Command): Command {
  return command
    .option("--rpc <url>", "JSON-RPC endpoint (default: ATTESTMESH_RPC_URL)")
    .option("--network <name>", "a network from hardhat.config.ts: devnet, baseSepolia, base")
    .option("--cluster <address>", "the cluster diamond (default: ATTESTMESH_CLUSTER)")
    .option("--json", "print JSON for tools instead of text");
}

/** chainOptions plus `--yes`, `--dry-run`, `--calldata`. */
export function txOptions(command: Command): Command {
  return chainOptions(command)
    .option("-y, --yes", "send without asking for confirmation")
    .option("--dry-run", "simulate with eth_call and estimate gas; send nothing")
    .option("--calldata", "need no key: print to/data/value for the owner (e.g. a Safe) to execute");
}

/** Parses the arguments first (bad input fails before any connection), then runs the plan. */
export async function runPlan(
  io: CliIo,
  options: TxCommandOptions,
  makePlan: (ctx: ClusterContext) => TxPlan | Promise<TxPlan>,
  note?: (outcome: TxOutcome) => string | undefined,
): Promise<void> {
  // Loaded here, not at the top: read-only commands share this module and need none of it.
  const { printOutcome, transact } = await import("../../owner/transact.ts");
  const ctx = await clusterContext(io, options);
  const plan = await makePlan(ctx);
  const outcome = await transact(ctx, plan, options);
  printOutcome(ctx, outcome, note?.(outcome));
}

/** `<name> on|off`: a command that turns one policy switch on or off. */
export function registerSwitchCommand(
  command: Command,
  io: CliIo,
  options: {
    /** The command as its error message names it. */
    readonly name: string;
    readonly description: string;
    /** The plan's action, its function and the line it shows. */
    readonly action: string;
    readonly functionName: string;
    readonly label: string;
  },
): void {
  txOptions(command)
    .description(options.description)
    .action(async (value: string, flags: TxCommandOptions) => {
      if (value !== "on" && value !== "off")
        throw badArgument(`${options.name} takes "on" or "off", got "${value}"`);
      const on = value === "on";
      await runPlan(io, flags, () => ({
        action: options.action,
        functionName: options.functionName,
        args: [on],
        changes: { [options.label]: value },
      }));
    });
}

/** A command without arguments that sends one fixed cluster call. */
export function registerFixedCallCommand(
  command: Command,
  io: CliIo,
  description: string,
  plan: TxPlan,
): void {
  txOptions(command)
    .description(description)
    .action(async (options: TxCommandOptions) => {
      await runPlan(io, options, () => plan);
    });
}
