// Options every cluster command shares, and the wrapper that runs a state-changing plan through
// owner/transact.ts. Commands declare them here so `--help` reads the same everywhere.

import type { Command } from "commander";
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
