// The four allowlists as `allow` and `deny` take them: one row a list, one subcommand a row and verb,
// so both verbs parse, plan and describe an entry the same way.

import type { Command } from "commander";
import type { Address, Hex } from "viem";
import { APP_ROLE_VALUE, parseAppRole, ROLE_OPTION } from "../../owner/appRole.ts";
import { parseAddress, parseBytes32, parseKmsRoot } from "../../owner/args.ts";
import { composeArgument } from "../../owner/composeHash.ts";
import type { ClusterContext } from "../../owner/context.ts";
import type { CliIo } from "../../owner/io.ts";
import { membersAdmittedBy, membersRunning } from "../../owner/members.ts";
import { composeFileChanges, NORMALISED_OPTION } from "./composeOptions.ts";
import { membersTable } from "./members.ts";
import { runPlan, type TxCommandOptions, txOptions } from "./options.ts";

type ListOptions = TxCommandOptions & { normalised?: boolean; role?: string };

interface Allowlist {
  /** The subcommand and its argument. */
  readonly command: string;
  /** What the plan calls an entry ("allow <label>", "deny <label>"). */
  readonly label: string;
  readonly add: string;
  readonly remove: string;
  readonly describe: { readonly allow: string; readonly deny: string };
  /** Whether `--normalised` applies (an app-compose.json argument). */
  readonly normalised?: true;
  /**
   * The verbs that take `--role node|indexer`, and the role-scoped function each calls for a role other
   * than node (node uses `add`/`remove`, dstack's role-less calls).
   */
  readonly roleFunctions?: { readonly allow?: string; readonly deny?: string };
  /** The entry, and what the plan says about the argument beyond the entry itself. */
  parse(value: string, options: ListOptions): { entry: Address | Hex; changes?: Record<string, string> };
  /**
   * For `deny` of a node-role entry: the active members it reaches, warned about on stderr before
   * anything is sent, and what the plan says about them.
   */
  denyImpact?(ctx: ClusterContext, io: CliIo, entry: Address | Hex): Promise<Record<string, string>>;
}

const ALLOWLISTS: readonly Allowlist[] = [
  {
    command: "compose <fileOrHash>",
    label: "compose hash",
    add: "addComposeHash",
    remove: "removeComposeHash",
    describe: {
      allow:
        "allow a compose hash: an app-compose.json (sha256 of its bytes, as the CVM measures it) or a 0x hash",
      deny: "stop allowing a compose hash (an app-compose.json, hashed byte for byte, or a 0x hash)",
    },
    normalised: true,
    roleFunctions: { allow: "addComposeHashFor", deny: "removeComposeHashFor" },
    parse(value, options) {
      const normalised = options.normalised === true;
      const { hash, file } = composeArgument(value, { normalised });
      return { entry: hash, changes: composeFileChanges(file, normalised) };
    },
    async denyImpact(ctx, io, entry) {
      // Withdrawing a compose that members still run makes them stale (peers drop them; `evict
      // --stale` evicts them): say so, with the list, before anything is sent.
      const running = await membersRunning(ctx, entry);
      if (running.length > 0) {
        io.stderr.write(
          `warning: ${running.length} active members still run compose hash ${entry}; once it is denied they are no longer standing (peers drop them) and \`attestmesh evict --stale\` evicts them:\n${membersTable(running)}`,
        );
      }
      return {
        "active members running it":
          running.length === 0 ? "none" : running.map((r) => r.memberId).join(", "),
      };
    },
  },
  {
    command: "app <appId>",
    label: "app id",
    add: "addAppId",
    remove: "removeAppId",
    describe: {
      allow:
        "allow a dstack app id to boot (compose hashes of its role only) and to join; a node app id unless --role indexer",
      deny: "stop allowing an app id (its active member stays until evicted; see `evict`, `revoke app`)",
    },
    roleFunctions: { allow: "addAppIdFor" },
    parse: (value) => ({ entry: parseAddress(value, "app id") }),
  },
  {
    command: "kms-root <addressOrPubkey>",
    label: "KMS root",
    add: "addKmsRoot",
    remove: "removeKmsRoot",
    describe: {
      allow: "allow a dstack KMS root, given as its address or its secp256k1 public key",
      deny: "stop allowing a KMS root (address or secp256k1 public key)",
    },
    parse: (value) => ({ entry: parseKmsRoot(value) }),
    async denyImpact(ctx, io, entry) {
      const { admitted, active } = await membersAdmittedBy(ctx, entry);
      if (active.length > 0) {
        io.stderr.write(
          `warning: KMS root ${entry} admitted ${active.length} active members; once it is denied they are no longer standing and \`attestmesh evict --stale\` evicts them:\n${membersTable(active)}`,
        );
      }
      return {
        "members it admitted": `${admitted.length} (${active.length} active${active.length === 0 ? "" : `: ${active.map((r) => r.memberId).join(", ")}`})`,
      };
    },
  },
  {
    command: "device <deviceId>",
    label: "device",
    add: "addDevice",
    remove: "removeDevice",
    describe: { allow: "allow a TDX device id (32 bytes hex)", deny: "stop allowing a device id" },
    parse: (value) => ({ entry: parseBytes32(value, "device id") }),
  },
];

/** `allow <list> <entry>` or `deny <list> <entry>`: one subcommand per allowlist under `parent`. */
export function registerAllowlistCommands(parent: Command, io: CliIo, verb: "allow" | "deny"): void {
  for (const list of ALLOWLISTS) {
    const command = txOptions(parent.command(list.command)).description(list.describe[verb]);
    if (list.normalised) command.option("--normalised", NORMALISED_OPTION);
    const roleFunction = list.roleFunctions?.[verb];
    if (roleFunction !== undefined) command.option("--role <role>", ROLE_OPTION);
    command.action(async (value: string, options: ListOptions) => {
      const role = roleFunction === undefined ? undefined : parseAppRole(options.role);
      const { entry, changes } = list.parse(value, options);
      const scoped = role !== undefined && role !== "node";
      // Members are node apps: only a node-role deny reaches them.
      const impact = verb === "deny" && !scoped ? list.denyImpact : undefined;
      await runPlan(io, options, async (ctx) => ({
        action: `${verb} ${list.command.split(" ")[0]}`,
        functionName: scoped ? roleFunction! : verb === "allow" ? list.add : list.remove,
        args: scoped ? [entry, APP_ROLE_VALUE[role]] : [entry],
        changes: {
          [`${verb} ${list.label}`]: entry,
          ...(role === undefined ? {} : { role }),
          ...changes,
          ...(impact === undefined ? {} : await impact(ctx, io, entry)),
        },
      }));
    });
  }
}
