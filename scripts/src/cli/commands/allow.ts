// `attestmesh allow …` and `attestmesh allow-any-device on|off`: add to the cluster's allowlists.

import type { Command } from "commander";
import type { CliIo } from "../../owner/io.ts";
import { registerAllowlistCommands } from "./allowlists.ts";
import { registerSwitchCommand } from "./calls.ts";

export function registerAllowCommand(program: Command, io: CliIo): void {
  const allow = program
    .command("allow")
    .description("add a compose hash, app id, KMS root or device to the allowlists");
  registerAllowlistCommands(allow, io, "allow");
  registerSwitchCommand(program.command("allow-any-device <onOrOff>"), io, {
    name: "allow-any-device",
    description: "on: any device may boot (revoked devices still may not); off: only allowed devices",
    action: "allow-any-device",
    functionName: "setAllowAnyDevice",
    label: "allow any device",
  });
}
