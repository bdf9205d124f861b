// `attestmesh compose-hash <app-compose.json>`: the hash dstack's KMS checks, computed as the SDK does.

import type { Command } from "commander";
import { composeHashOfFile } from "../../owner/composeHash.ts";
import { type CliIo, toJson } from "../../owner/io.ts";

export function registerComposeHashCommand(program: Command, io: CliIo): void {
  program
    .command("compose-hash <appCompose>")
    .description("the compose hash of a dstack app-compose.json (getComposeHash of @phala/dstack-sdk)")
    .option("--json", "print JSON")
    .action((path: string, options: { json?: boolean }) => {
      const hash = composeHashOfFile(path);
      io.stdout.write(options.json ? toJson({ file: path, composeHash: hash }) : `${hash}\n`);
    });
}
