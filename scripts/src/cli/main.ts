/**
 * The `attestmesh` command line. Each subcommand lives in its own module under
 * `commands/` and exports a `register…Command(program)`; add yours to
 * `COMMANDS`. Failures end with exit code 1 and a one-line reason on stderr
 * (the stack only with `--debug`).
 */
import { Command, CommanderError } from "commander";
import { registerDevnetCommand } from "./commands/devnet.ts";
import { registerDstackSimCommand } from "./commands/dstackSim.ts";

export type RegisterCommand = (program: Command) => void;

/** Every subcommand, in the order `--help` lists them. */
export const COMMANDS: readonly RegisterCommand[] = [registerDevnetCommand, registerDstackSimCommand];

export function createProgram(): Command {
  const program = new Command("attestmesh")
    .description("An attested WireGuard mesh for dstack confidential VMs.")
    .option("--debug", "on failure, print the stack trace and causes, not just the reason")
    // Commander reports its own usage errors; it throws instead of exiting so runCli decides.
    .exitOverride();
  for (const register of COMMANDS) register(program);
  return program;
}

function describeFailure(error: unknown, debug: boolean): string {
  if (!(error instanceof Error)) return String(error);
  if (!debug) return error.message.replace(/\s*\n\s*/g, " ");
  let text = error.stack ?? error.message;
  for (let cause = error.cause; cause !== undefined; ) {
    text += `\ncaused by: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return text;
}

/** Runs the CLI on `argv` (node-style, with the two leading entries) and returns the exit code. */
export async function runCli(argv: readonly string[] = process.argv): Promise<number> {
  const program = createProgram();
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (error) {
    // Commander already printed its message (or the help, for --help: exit code 0).
    if (error instanceof CommanderError) return error.exitCode;
    const debug = program.opts().debug === true || argv.includes("--debug");
    process.stderr.write(`attestmesh: ${describeFailure(error, debug)}\n`);
    return 1;
  }
}

if (import.meta.main) process.exitCode = await runCli();
