// `attestmesh deny …`: remove from the allowlists (reversible; `revoke` is the permanent form).

import type { Command } from "commander";
import type { CliIo } from "../../owner/io.ts";
import { registerAllowlistCommands } from "./allowlists.ts";

export function registerDenyCommand(program: Command, io: CliIo): void {
  const deny = program
    .command("deny")
    .description("remove a compose hash, app id, KMS root or device from the allowlists (reversible)");
  registerAllowlistCommands(deny, io, "deny");
}
