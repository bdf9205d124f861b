// `attestmesh allow …` and `attestmesh allow-any-device on|off`: add to the cluster's allowlists.

import type { Command } from "commander";
import { APP_ROLE_VALUE, parseAppRole, ROLE_OPTION } from "../../owner/appRole.ts";
import { badArgument, parseAddress, parseBytes32, parseKmsRoot } from "../../owner/args.ts";
import { composeArgument } from "../../owner/composeHash.ts";
import type { CliIo } from "../../owner/io.ts";
import { composeFileChanges, NORMALISED_OPTION } from "./composeOptions.ts";
import { runPlan, type TxCommandOptions, txOptions } from "./options.ts";

export function registerAllowCommand(program: Command, io: CliIo): void {
  const allow = program
    .command("allow")
    .description("add a compose hash, app id, KMS root or device to the allowlists");

  txOptions(allow.command("compose <fileOrHash>"))
    .description(
      "allow a compose hash: an app-compose.json (sha256 of its bytes, as the CVM measures it) or a 0x hash",
    )
    .option("--normalised", NORMALISED_OPTION)
    .option("--role <role>", ROLE_OPTION)
    .action(async (value: string, options: TxCommandOptions & { normalised?: boolean; role?: string }) => {
      const role = parseAppRole(options.role);
      const { hash, file } = composeArgument(value, { normalised: options.normalised === true });
      const changes = {
        "allow compose hash": hash,
        role,
        ...composeFileChanges(file, options.normalised === true),
      };
      await runPlan(io, options, () =>
        role === "node"
          ? { action: "allow compose", functionName: "addComposeHash", args: [hash], changes }
          : {
              action: "allow compose",
              functionName: "addComposeHashFor",
              args: [hash, APP_ROLE_VALUE[role]],
              changes,
            },
      );
    });

  txOptions(allow.command("app <appId>"))
    .description(
      "allow a dstack app id to boot (compose hashes of its role only) and to join; a node app id unless --role indexer",
    )
    .option("--role <role>", ROLE_OPTION)
    .action(async (value: string, options: TxCommandOptions & { role?: string }) => {
      const role = parseAppRole(options.role);
      const appId = parseAddress(value, "app id");
      const changes = { "allow app id": appId, role };
      await runPlan(io, options, () =>
        role === "node"
          ? { action: "allow app", functionName: "addAppId", args: [appId], changes }
          : {
              action: "allow app",
              functionName: "addAppIdFor",
              args: [appId, APP_ROLE_VALUE[role]],
              changes,
            },
      );
    });

  txOptions(allow.command("kms-root <addressOrPubkey>"))
    .description("allow a dstack KMS root, given as its address or its secp256k1 public key")
    .action(async (value: string, options: TxCommandOptions) => {
      const root = parseKmsRoot(value);
      await runPlan(io, options, () => ({
        action: "allow kms-root",
        functionName: "addKmsRoot",
        args: [root],
        changes: { "allow KMS root": root },
      }));
    });

  txOptions(allow.command("device <deviceId>"))
    .description("allow a TDX device id (32 bytes hex)")
    .action(async (value: string, options: TxCommandOptions) => {
      const device = parseBytes32(value, "device id");
      await runPlan(io, options, () => ({
        action: "allow device",
        functionName: "addDevice",
        args: [device],
        changes: { "allow device": device },
      }));
    });

  txOptions(program.command("allow-any-device <onOrOff>"))
    .description("on: any device may boot (revoked devices still may not); off: only allowed devices")
    .action(async (value: string, options: TxCommandOptions) => {
      if (value !== "on" && value !== "off")
        throw badArgument(`allow-any-device takes "on" or "off", got "${value}"`);
      const on = value === "on";
      await runPlan(io, options, () => ({
        action: "allow-any-device",
        functionName: "setAllowAnyDevice",
        args: [on],
        changes: { "allow any device": on ? "on" : "off" },
      }));
    });
}
