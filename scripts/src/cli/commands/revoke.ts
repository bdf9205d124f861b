// `attestmesh revoke app|device`: permanent, timestamped revocations that beat every allowlist.

import type { Command } from "commander";
import type { Address, Hex } from "viem";
import { formatReason, parseAddress, parseBytes32, parseReasonBytes32 } from "../../owner/args.ts";
import type { CliIo } from "../../owner/io.ts";
import { runPlan, type TxCommandOptions, txOptions } from "./options.ts";

type RevokeOptions = TxCommandOptions & { reason: string };

/** What can be revoked: the subcommand, its description, its function, its plan line and its parser. */
const REVOCABLE: readonly {
  readonly command: string;
  readonly description: string;
  readonly functionName: string;
  readonly label: string;
  readonly parse: (value: string) => Address | Hex;
}[] = [
  {
    command: "app <appId>",
    description: "revoke an app id: it can never boot or join again, and its active member is evicted",
    functionName: "revokeAppId",
    label: "revoke app id (permanent)",
    parse: (value) => parseAddress(value, "app id"),
  },
  {
    command: "device <deviceId>",
    description: "revoke a device id: no CVM on it can boot again",
    functionName: "revokeDevice",
    label: "revoke device (permanent)",
    parse: (value) => parseBytes32(value, "device id"),
  },
];

export function registerRevokeCommand(program: Command, io: CliIo): void {
  const revoke = program
    .command("revoke")
    .description("revoke an app id or a device for good (evicts the app's member; cannot be undone)");
  for (const item of REVOCABLE) {
    txOptions(revoke.command(item.command))
      .description(item.description)
      .option(
        "--reason <text>",
        "why, for the audit trail: up to 32 bytes of text, or 0x + 32 bytes",
        "revoked by owner",
      )
      .action(async (value: string, options: RevokeOptions) => {
        const entry = item.parse(value);
        const reason = parseReasonBytes32(options.reason);
        await runPlan(io, options, () => ({
          action: `revoke ${item.command.split(" ")[0]}`,
          functionName: item.functionName,
          args: [entry, reason],
          changes: { [item.label]: entry, reason: formatReason(reason) },
        }));
      });
  }
}
