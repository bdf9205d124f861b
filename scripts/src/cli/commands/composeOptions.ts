// What `allow compose`, `deny compose` and `check --compose` say about an app-compose.json they hash.

import { type ComposeFileHash, composeFormNote } from "../../owner/composeHash.ts";

export const NORMALISED_OPTION =
  "with an app-compose.json: use the hash of its normalised form, for a deployment tool that rewrites the file in that form (default: sha256 of its bytes, what the CVM measures)";

/** The plan's lines about the file: which file, which hash of it, and the other hash when they differ. */
export function composeFileChanges(
  file: ComposeFileHash | undefined,
  normalised: boolean,
): Record<string, string> {
  if (file === undefined) return {};
  const note = composeFormNote(file, normalised);
  return {
    "compose file": `${file.file} (${normalised ? "hash of its normalised form" : "sha256 of its bytes"})`,
    ...(note === undefined ? {} : { "compose file form": note.join(" ").replace(/^note: /, "") }),
  };
}
