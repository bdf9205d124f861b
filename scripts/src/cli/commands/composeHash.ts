// `attestmesh compose-hash <app-compose.json>`: the hash a CVM booted with this file measures and dstack's
// KMS checks, sha256 of the file's bytes; says when the file is not in dstack's normalised form.

import type { Command } from "commander";
import { composeFormNote, inspectComposeFile } from "../../owner/composeHash.ts";
import { type CliIo, toJson } from "../../owner/io.ts";

export function registerComposeHashCommand(program: Command, io: CliIo): void {
  program
    .command("compose-hash <appCompose>")
    .description(
      "the compose hash of a dstack app-compose.json: sha256 of its exact bytes, as the CVM measures it",
    )
    .option(
      "--normalised",
      "print the hash of the file's normalised form instead (keys sorted, no whitespace: @phala/dstack-sdk's getComposeHash), for a tool that rewrites the file in that form",
    )
    .option("--json", "print JSON: both hashes and whether the file is in normalised form")
    .action((path: string, options: { json?: boolean; normalised?: boolean }) => {
      const info = inspectComposeFile(path);
      if (options.json) {
        io.stdout.write(toJson(info));
        return;
      }
      // stdout holds the hash alone, so `$(attestmesh compose-hash f)` stays a hash; the note goes to stderr.
      io.stdout.write(`${options.normalised ? info.normalisedComposeHash : info.composeHash}\n`);
      const note = composeFormNote(info, options.normalised);
      if (note) io.stderr.write(`${note.join("\n  ")}\n`);
    });
}
