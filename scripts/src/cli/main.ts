/**
 * The `attestmesh` command line. Each subcommand group lives in its own module under `commands/` and
 * exports a `register…Command(program, io)`; add yours to `COMMANDS`. Commands write through `io`
 * (owner/io.ts), so `runCli` runs in-process in tests with captured output. Failures end with exit
 * code 1 and a one-line reason on stderr (the stack only with `--debug`); with `--json`, stdout also
 * gets `{"error": {"code", "message", "details"}}`.
 */
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import { Command, CommanderError } from "commander";
import { type CliIo, processIo, toJson } from "../owner/io.ts";
import { jsonSafe } from "../owner/transact.ts";
import { registerAllowCommand } from "./commands/allow.ts";
import { registerCheckCommand } from "./commands/check.ts";
import { registerComposeHashCommand } from "./commands/composeHash.ts";
import { registerDashboardCommand } from "./commands/dashboard.ts";
import { registerDenyCommand } from "./commands/deny.ts";
import { registerDeployCommand } from "./commands/deploy.ts";
import { registerDevnetCommand } from "./commands/devnet.ts";
import { registerDstackSimCommand } from "./commands/dstackSim.ts";
import { registerIndexerCommand } from "./commands/indexer.ts";
import { registerMemberAppCommand } from "./commands/memberApp.ts";
import { registerMembersCommand } from "./commands/members.ts";
import { registerOwnershipCommand } from "./commands/ownership.ts";
import { registerPolicyCommand } from "./commands/policy.ts";
import { registerRevokeCommand } from "./commands/revoke.ts";
import { ExitCode } from "./exitCode.ts";

export type RegisterCommand = (program: Command, io: CliIo) => void;

/** Every subcommand, in the order `--help` lists them. */
export const COMMANDS: readonly RegisterCommand[] = [
  registerDeployCommand,
  registerComposeHashCommand,
  registerAllowCommand,
  registerDenyCommand,
  registerRevokeCommand,
  registerMemberAppCommand,
  registerMembersCommand,
  registerIndexerCommand,
  registerPolicyCommand,
  registerCheckCommand,
  registerDashboardCommand,
  registerOwnershipCommand,
  registerDevnetCommand,
  registerDstackSimCommand,
];

function configure(command: Command, io: CliIo): void {
  // Commander reports its own usage errors; it throws instead of exiting so runCli decides.
  command.exitOverride().configureOutput({
    writeOut: (text) => void io.stdout.write(text),
    writeErr: (text) => void io.stderr.write(text),
  });
  for (const sub of command.commands) configure(sub, io);
}

export function createProgram(io: CliIo = processIo()): Command {
  const program = new Command("attestmesh")
    .description("An attested WireGuard mesh for dstack confidential VMs: the cluster owner's tool.")
    .option("--debug", "on failure, print the stack trace and causes, not just the reason");
  for (const register of COMMANDS) register(program, io);
  configure(program, io);
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
export async function runCli(
  argv: readonly string[] = process.argv,
  io: CliIo = processIo(),
): Promise<number> {
  const program = createProgram(io);
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (error) {
    // Commander already printed its message (or the help, for --help: exit code 0).
    if (error instanceof CommanderError) return error.exitCode;
    if (error instanceof ExitCode) return error.code;
    const debug = program.opts().debug === true || argv.includes("--debug");
    const message = describeFailure(error, debug);
    io.stderr.write(`attestmesh: ${message}\n`);
    if (argv.includes("--json")) {
      const code = isAttestmeshError(error) ? error.code : "Error";
      const details = isAttestmeshError(error) ? jsonSafe(error.details) : {};
      io.stdout.write(toJson({ error: { code, message: describeFailure(error, false), details } }));
    }
    return 1;
  }
}

if (import.meta.main) process.exitCode = await runCli();
