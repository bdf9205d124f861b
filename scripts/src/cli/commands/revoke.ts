// `attestmesh revoke app|device`: permanent, timestamped revocations that beat every allowlist.

import type { Command } from "commander";
import { formatReason, parseAddress, parseBytes32, parseReasonBytes32 } from "../../owner/args.ts";
import type { CliIo } from "../../owner/io.ts";
import { runPlan, type TxCommandOptions, txOptions } from "./options.ts";

type RevokeOptions = TxCommandOptions & { reason: string };

export function registerRevokeCommand(program: Command, io: CliIo): void {
  const revoke = program
    .command("revoke")
    .description("revoke an app id or a device for good (evicts the app's member; cannot be undone)");

  txOptions(revoke.command("app <appId>"))
    .description("revoke an app id: it can never boot or join again, and its active member is evicted")
    .option(
      "--reason <text>",
      "why, for the audit trail: up to 32 bytes of text, or 0x + 32 bytes",
      "revoked by owner",
    )
    .action(async (value: string, options: RevokeOptions) => {
      const appId = parseAddress(value, "app id");
      const reason = parseReasonBytes32(options.reason);
      await runPlan(io, options, () => ({
        action: "revoke app",
        functionName: "revokeAppId",
        args: [appId, reason],
        changes: { "revoke app id (permanent)": appId, reason: formatReason(reason) },
      }));
    });

  txOptions(revoke.command("device <deviceId>"))
    .description("revoke a device id: no CVM on it can boot again")
    .option(
      "--reason <text>",
      "why, for the audit trail: up to 32 bytes of text, or 0x + 32 bytes",
      "revoked by owner",
    )
    .action(async (value: string, options: RevokeOptions) => {
      const device = parseBytes32(value, "device id");
      const reason = parseReasonBytes32(options.reason);
      await runPlan(io, options, () => ({
        action: "revoke device",
        functionName: "revokeDevice",
        args: [device, reason],
        changes: { "revoke device (permanent)": device, reason: formatReason(reason) },
      }));
    });
}
