// The compose hash of a dstack app-compose.json, exactly as dstack computes it: the SDK's getComposeHash
// (sha256 over the manifest's normalised JSON), as 0x hex so it fits the cluster's bytes32.

import { getComposeHash } from "@phala/dstack-sdk/get-compose-hash";
import type { Hex } from "viem";
import { badArgument, parseBytes32, parseJsonFile } from "./args.ts";

export function composeHashOfFile(path: string): Hex {
  const manifest = parseJsonFile(path, "app-compose file");
  if (typeof manifest !== "object" || manifest === null || Array.isArray(manifest)) {
    throw badArgument(`app-compose file "${path}" must hold a JSON object`);
  }
  if (typeof (manifest as { runner?: unknown }).runner !== "string") {
    throw badArgument(`app-compose file "${path}" has no "runner": is it dstack's app-compose.json?`);
  }
  return `0x${getComposeHash(manifest as Parameters<typeof getComposeHash>[0])}` as Hex;
}

/** `<file|hash>`: a 0x-prefixed 32-byte hash as it is, otherwise an app-compose.json to hash. */
export function composeHashArgument(value: string): Hex {
  if (/^0x/i.test(value)) return parseBytes32(value, "compose hash");
  return composeHashOfFile(value);
}
