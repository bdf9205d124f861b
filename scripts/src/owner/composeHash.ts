// The compose hash of a dstack app-compose.json: sha256 over the file's exact bytes, as 0x hex so it fits the
// cluster's bytes32. That is what a CVM measures (RTMR3 `compose-hash` event, mr_config_id) and what dstack's
// KMS asks the app contract about. The file is parsed only to check that it is an app-compose.json and to say
// whether it is in dstack's normalised form; the hash never comes from a re-serialisation of it.
//
// The normalised form (keys sorted at every level, no whitespace, UTF-8: `getComposeHash` of
// @phala/dstack-sdk) is offered beside it, for tools that write that form instead of the file as it is: 23
// of 23 real deployments measured the bytes, and none measured the normalised hash of a file not already in
// that form (test/fixtures/compose-hash/).

import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { getComposeHash } from "@phala/dstack-sdk/get-compose-hash";
import type { Hex } from "viem";
import { badArgument, parseBytes32 } from "./args.ts";

/** What one app-compose.json hashes to, and whether its bytes are dstack's normalised form. */
export interface ComposeFileHash {
  readonly file: string;
  /** sha256 of the file's bytes: what a CVM booted with this file measures, and what to allow. */
  readonly composeHash: Hex;
  /** True when the bytes are exactly the normalised form of their content (then both hashes agree). */
  readonly normalised: boolean;
  /** sha256 of the normalised form of the same content: what a CVM measures if a tool rewrites the file so. */
  readonly normalisedComposeHash: Hex;
  /** How the bytes differ from the normalised form, for people; empty when they do not. */
  readonly differences: readonly string[];
}

const BOM = [0xef, 0xbb, 0xbf] as const;

/** sha256 of bytes exactly as given, lower-case 0x hex. */
export function composeHashOfBytes(bytes: Uint8Array): Hex {
  return `0x${createHash("sha256").update(bytes).digest("hex")}`;
}

function keysSorted(value: unknown): boolean {
  if (Array.isArray(value)) return value.every(keysSorted);
  if (value === null || typeof value !== "object") return true;
  const keys = Object.keys(value);
  return (
    keys.every((key, i) => i === 0 || keys[i - 1]! < key) &&
    Object.values(value).every((inner) => keysSorted(inner))
  );
}

function formDifferences(bytes: Uint8Array, text: string, manifest: object): string[] {
  const found: string[] = [];
  if (BOM.every((b, i) => bytes[i] === b)) found.push("starts with a UTF-8 byte order mark");
  if (text.includes("\r")) found.push("has CR (CRLF) line endings");
  if (/\n$/.test(text)) found.push("ends with a newline");
  // JSON.stringify keeps the file's key order, so this compares whitespace, escapes and number spellings.
  if (JSON.stringify(manifest) !== text.trim())
    found.push(
      "has whitespace (e.g. indentation), escapes or number spellings that the normalised form has not",
    );
  if (!keysSorted(manifest)) found.push("has keys out of sorted order");
  if (found.length === 0) found.push("differs from it in a way JSON.parse hides (e.g. a duplicate key)");
  return found;
}

/** Reads and hashes an app-compose.json the user named; refuses what is not one, with a clear message. */
export function inspectComposeFile(path: string): ComposeFileHash {
  const what = "app-compose file";
  if (!existsSync(path)) throw badArgument(`${what} "${path}" does not exist`);
  if (!statSync(path).isFile()) throw badArgument(`${what} "${path}" is not a file`);
  const bytes = readFileSync(path);
  let text: string;
  try {
    // Drops a leading BOM for parsing only; the hash is over the bytes with it.
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw badArgument(`${what} "${path}" is not UTF-8 text`);
  }
  let manifest: unknown;
  try {
    manifest = JSON.parse(text);
  } catch (cause) {
    throw badArgument(`${what} "${path}" is not valid JSON: ${(cause as Error).message}`);
  }
  if (typeof manifest !== "object" || manifest === null || Array.isArray(manifest)) {
    throw badArgument(`${what} "${path}" must hold a JSON object`);
  }
  if (typeof (manifest as { runner?: unknown }).runner !== "string") {
    throw badArgument(`${what} "${path}" has no "runner": is it dstack's app-compose.json?`);
  }
  const composeHash = composeHashOfBytes(bytes);
  const normalisedComposeHash: Hex = `0x${getComposeHash(manifest as Parameters<typeof getComposeHash>[0])}`;
  const normalised = composeHash === normalisedComposeHash;
  return {
    file: path,
    composeHash,
    normalised,
    normalisedComposeHash,
    differences: normalised ? [] : formDifferences(bytes, text, manifest),
  };
}

/** A compose hash given on the command line, and the file it came from when it came from one. */
export interface ComposeArgument {
  readonly hash: Hex;
  readonly file?: ComposeFileHash;
}

/**
 * `<file|hash>`: a 0x-prefixed 32-byte hash as it is, otherwise an app-compose.json, whose bytes are hashed
 * (`normalised`: whose normalised form is hashed, for a deployment tool that writes that form).
 */
export function composeArgument(value: string, options: { normalised?: boolean } = {}): ComposeArgument {
  if (/^0x/i.test(value)) {
    if (options.normalised) throw badArgument("--normalised needs an app-compose.json, not a hash");
    return { hash: parseBytes32(value, "compose hash") };
  }
  const file = inspectComposeFile(value);
  return { hash: options.normalised ? file.normalisedComposeHash : file.composeHash, file };
}

/** `<file|hash>` as a hash (of the file's bytes). */
export function composeHashArgument(value: string): Hex {
  return composeArgument(value).hash;
}

/**
 * For people: what the file's hashes mean when the file is not in normalised form, naming both hashes and
 * which one the command used, as lines; undefined when the file is normalised (both hashes are the same).
 */
export function composeFormNote(file: ComposeFileHash, usedNormalised = false): string[] | undefined {
  if (file.normalised) return undefined;
  const form = `note: ${file.file} is not in dstack's normalised form: it ${file.differences.join("; it ")}.`;
  return usedNormalised
    ? [
        form,
        `Used the hash of its normalised form, ${file.normalisedComposeHash}: right only if your deployment tool rewrites the file in that form.`,
        `A CVM booted with the file as it is measures the sha256 of its bytes, ${file.composeHash}.`,
      ]
    : [
        form,
        `${file.composeHash} is the sha256 of its bytes: what a CVM booted with this file measures.`,
        `A tool that rewrites it in the normalised form (keys sorted, no whitespace: @phala/dstack-sdk's getComposeHash) makes the CVM measure ${file.normalisedComposeHash} instead (--normalised).`,
      ];
}
