// `attestmesh deny …`: remove from the allowlists (reversible; `revoke` is the permanent form).

import type { Command } from "commander";
import { APP_ROLE_VALUE, parseAppRole, ROLE_OPTION } from "../../owner/appRole.ts";
import { parseAddress, parseBytes32, parseKmsRoot } from "../../owner/args.ts";
import { composeArgument } from "../../owner/composeHash.ts";
import type { CliIo } from "../../owner/io.ts";
import { composeFileChanges, NORMALISED_OPTION } from "./composeOptions.ts";
import { runPlan, type TxCommandOptions, txOptions } from "./options.ts";

export function registerDenyCommand(program: Command, io: CliIo): void {
  const deny = program
    .command("deny")
    .description("remove a compose hash, app id, KMS root or device from the allowlists (reversible)");

  txOptions(deny.command("compose <fileOrHash>"))
    .description("stop allowing a compose hash (an app-compose.json, hashed byte for byte, or a 0x hash)")
    .option("--normalised", NORMALISED_OPTION)
    .option("--role <role>", ROLE_OPTION)
    .action(async (value: string, options: TxCommandOptions & { normalised?: boolean; role?: string }) => {
      const role = parseAppRole(options.role);
      const { hash, file } = composeArgument(value, { normalised: options.normalised === true });
      const changes = {
        "deny compose hash": hash,
        role,
        ...composeFileChanges(file, options.normalised === true),
      };
      await runPlan(io, options, () =>
        role === "node"
          ? { action: "deny compose", functionName: "removeComposeHash", args: [hash], changes }
          : {
              action: "deny compose",
              functionName: "removeComposeHashFor",
              args: [hash, APP_ROLE_VALUE[role]],
              changes,
            },
      );
    });

  txOptions(deny.command("app <appId>"))
    .description("stop allowing an app id (its active member stays until evicted; see `evict`, `revoke app`)")
    .action(async (value: string, options: TxCommandOptions) => {
      const appId = parseAddress(value, "app id");
      await runPlan(io, options, () => ({
        action: "deny app",
        functionName: "removeAppId",
        args: [appId],
        changes: { "deny app id": appId },
      }));
    });

  txOptions(deny.command("kms-root <addressOrPubkey>"))
    .description("stop allowing a KMS root (address or secp256k1 public key)")
    .action(async (value: string, options: TxCommandOptions) => {
      const root = parseKmsRoot(value);
      await runPlan(io, options, () => ({
        action: "deny kms-root",
        functionName: "removeKmsRoot",
        args: [root],
        changes: { "deny KMS root": root },
      }));
    });

  txOptions(deny.command("device <deviceId>"))
    .description("stop allowing a device id")
    .action(async (value: string, options: TxCommandOptions) => {
      const device = parseBytes32(value, "device id");
      await runPlan(io, options, () => ({
        action: "deny device",
        functionName: "removeDevice",
        args: [device],
        changes: { "deny device": device },
      }));
    });
}
