/**
 * The `attestmesh` command line. Each top-level command is one entry of `COMMANDS`: how `--help`
 * lists it, and the module that registers it (`register…Command(program, io)` in `commands/`, or in
 * the development package `@attestmesh/devnet` for `devnet` and `dstack-sim`). A run loads only the
 * module of the command it names, so `--help` and a read-only command start without the weight of
 * the others (test/cli/help.test.ts checks the listed terms against the loaded commands).
 *
 * Commands write through `io` (owner/io.ts), so `runCli` runs in-process in tests with captured
 * output. Failures end with exit code 1 and a one-line reason on stderr (the stack only with
 * `--debug`); with `--json`, stdout also gets `{"error": {"code", "message", "details"}}`.
 */
import { Command, CommanderError, Help } from "commander";
import { type CliIo, processIo, toJson } from "../owner/io.ts";
import { ExitCode } from "./exitCode.ts";

export type RegisterCommand = (program: Command, io: CliIo) => void;

export interface CommandEntry {
  /** The command's name, as typed. */
  readonly name: string;
  /** How `--help` lists it: name, `[options]` when it has any, arguments. */
  readonly term: string;
  /** The one line `--help` shows beside the term (the command's summary, or its description). */
  readonly summary: string;
  /** Imports the module that registers the command (and the siblings that module registers). */
  readonly load: () => Promise<RegisterCommand>;
}

const listing = (
  name: string,
  term: string,
  summary: string,
  load: () => Promise<RegisterCommand>,
): CommandEntry => ({ name, term, summary, load });

const loadAllow = async () => (await import("./commands/allow.ts")).registerAllowCommand;
const loadMembers = async () => (await import("./commands/members.ts")).registerMembersCommand;

/** The development package is present in a checkout (root devDependency), not in an owner's install. */
function hasDevTools(): boolean {
  try {
    import.meta.resolve("@attestmesh/devnet/cli/devnet.ts");
    return true;
  } catch {
    return false;
  }
}

/** Every top-level command, in the order `--help` lists them. */
export const COMMANDS: readonly CommandEntry[] = [
  listing(
    "deploy",
    "deploy [options]",
    "deploy a cluster (diamond, facets, member-app factory, indexer registry); resumable",
    async () => (await import("./commands/deploy.ts")).registerDeployCommand,
  ),
  listing(
    "compose-hash",
    "compose-hash [options] <appCompose>",
    "the compose hash of a dstack app-compose.json: sha256 of its exact bytes, as the CVM measures it",
    async () => (await import("./commands/composeHash.ts")).registerComposeHashCommand,
  ),
  listing("allow", "allow", "add a compose hash, app id, KMS root or device to the allowlists", loadAllow),
  listing(
    "allow-any-device",
    "allow-any-device [options] <onOrOff>",
    "on: any device may boot (revoked devices still may not); off: only allowed devices",
    loadAllow,
  ),
  listing(
    "deny",
    "deny",
    "remove a compose hash, app id, KMS root or device from the allowlists (reversible)",
    async () => (await import("./commands/deny.ts")).registerDenyCommand,
  ),
  listing(
    "revoke",
    "revoke",
    "revoke an app id or a device for good (evicts the app's member; cannot be undone)",
    async () => (await import("./commands/revoke.ts")).registerRevokeCommand,
  ),
  listing(
    "member-app",
    "member-app",
    "per-node dstack app contracts",
    async () => (await import("./commands/memberApp.ts")).registerMemberAppCommand,
  ),
  listing(
    "members",
    "members [options]",
    "list members: id, app id, mesh IP, status, standing, the compose hash and device each stated, the KMS root that admitted it",
    loadMembers,
  ),
  listing(
    "evict",
    "evict [options] [memberIdOrAppId]",
    "evict a member (by member id or app id): it leaves the mesh, its app id is disallowed; --stale: every member the owner's revocations reached",
    loadMembers,
  ),
  listing(
    "indexer",
    "indexer",
    "the cluster's indexer records",
    async () => (await import("./commands/indexer.ts")).registerIndexerCommand,
  ),
  listing(
    "policy",
    "policy",
    "what the boot gate and the attestor consult",
    async () => (await import("./commands/policy.ts")).registerPolicyCommand,
  ),
  listing(
    "check",
    "check [options] <appIdOrFile>",
    "may this app boot and join, or is this quote file's CVM allowed? prints why not; exit code 0 yes, 2 no",
    async () => (await import("./commands/check.ts")).registerCheckCommand,
  ),
  listing(
    "attest",
    "attest [options] <target>",
    "verify a member's live attestation (member id, app id, URL or saved file) and print one verification report; exit code 0 only when every check passes",
    async () => (await import("./commands/attest.ts")).registerAttestCommand,
  ),
  listing(
    "dashboard",
    "dashboard [options]",
    "serve a read-only web page of the cluster: mesh, members, CSK epochs, policy, sponsorship",
    async () => (await import("./commands/dashboard.ts")).registerDashboardCommand,
  ),
  listing(
    "ownership",
    "ownership",
    "the cluster owner and two-step ownership transfer",
    async () => (await import("./commands/ownership.ts")).registerOwnershipCommand,
  ),
  ...(hasDevTools()
    ? [
        listing(
          "devnet",
          "devnet",
          "run a local cluster: Hardhat node, cluster contract, N nodes with real WireGuard in network namespaces",
          async () => (await import("@attestmesh/devnet/cli/devnet.ts")).registerDevnetCommand,
        ),
        listing(
          "dstack-sim",
          "dstack-sim [options]",
          "serve a simulated dstack guest agent on a unix socket (development only)",
          async () => (await import("@attestmesh/devnet/cli/dstackSim.ts")).registerDstackSimCommand,
        ),
      ]
    : []),
];

/** The command an argv names (after the program's own options; `help <command>` names its command). */
export function namedCommand(args: readonly string[]): string | undefined {
  const words = args.filter((arg) => !arg.startsWith("-"));
  return words[0] === "help" ? words[1] : words[0];
}

function configure(command: Command, io: CliIo): void {
  // Commander reports its own usage errors; it throws instead of exiting so runCli decides.
  command.exitOverride().configureOutput({
    writeOut: (text) => void io.stdout.write(text),
    writeErr: (text) => void io.stderr.write(text),
  });
  for (const sub of command.commands) configure(sub, io);
}

/**
 * The program with the commands `load` picks registered in full (all of them by default) and every
 * other command as a listing only: its term and summary for `--help`, and its name for commander's
 * "unknown command" suggestions.
 */
export async function createProgram(
  io: CliIo = processIo(),
  load: (entry: CommandEntry) => boolean = () => true,
): Promise<Command> {
  const program = new Command("attestmesh")
    .description("An attested WireGuard mesh for dstack confidential VMs: the cluster owner's tool.")
    .option("--debug", "on failure, print the stack trace and causes, not just the reason");
  const listed = new Map<Command, string>();
  const defaultTerm = Help.prototype.subcommandTerm;
  program.configureHelp({
    subcommandTerm(command) {
      return listed.get(command) ?? defaultTerm.call(this, command);
    },
  });
  for (const entry of COMMANDS) {
    // A module may register siblings (`members` and `evict`): they sit next to each other here.
    if (program.commands.some((command) => command.name() === entry.name)) continue;
    if (load(entry)) {
      (await entry.load())(program, io);
      continue;
    }
    const stub = program
      .command(entry.name)
      .summary(entry.summary)
      .action(() => {
        throw new Error(`internal: the module of "${entry.name}" was not loaded`);
      });
    listed.set(stub, entry.term);
  }
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
  const name = namedCommand(argv.slice(2));
  const target = COMMANDS.find((entry) => entry.name === name);
  const program = await createProgram(io, (entry) => entry.load === target?.load);
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (error) {
    // Commander already printed its message (or the help, for --help: exit code 0).
    if (error instanceof CommanderError) return error.exitCode;
    if (error instanceof ExitCode) return error.code;
    const debug = program.opts().debug === true || argv.includes("--debug");
    // URLs in a failure keep only scheme and host: RPC, bundler and paymaster URLs hold API keys, and
    // viem's errors repeat them (loaded here, so a run that succeeds never loads the logger).
    const { scrubUrls } = await import("@attestmesh/shared/service/log.ts");
    const message = scrubUrls(describeFailure(error, debug));
    io.stderr.write(`attestmesh: ${message}\n`);
    if (argv.includes("--json")) {
      const { isAttestmeshError } = await import("@attestmesh/shared/errors.ts");
      const { jsonSafe } = await import("../owner/transact.ts");
      const code = isAttestmeshError(error) ? error.code : "Error";
      const details = isAttestmeshError(error) ? jsonSafe(error.details) : {};
      const message = describeFailure(error, false);
      io.stdout.write(scrubUrls(toJson({ error: { code, message, details } })));
    }
    return 1;
  }
}

if (import.meta.main) process.exitCode = await runCli();
