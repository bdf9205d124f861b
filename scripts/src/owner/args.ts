// Parsers for command-line values. Each one refuses bad input with a message that names the argument and
// what it expects, before anything touches the chain.

import { existsSync, readFileSync, statSync } from "node:fs";
import { compressedToAddress } from "@attestmesh/shared/dstack/verify.ts";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { type Address, getAddress, type Hex, hexToBytes, isAddress, isHex, size, stringToHex } from "viem";
import { publicKeyToAddress } from "viem/accounts";

export function badArgument(message: string, details: Record<string, unknown> = {}): AttestmeshError {
  return new AttestmeshError(message, { code: "BadArgument", details });
}

/** A 20-byte address; mixed case must be a valid EIP-55 checksum (a typo in one is caught). */
export function parseAddress(value: string, what = "address"): Address {
  if (!isHex(value) || size(value) !== 20 || value.length !== 42) {
    throw badArgument(`${what} must be a 0x-prefixed 20-byte hex address, got "${value}"`);
  }
  if (!isAddress(value, { strict: true })) {
    throw badArgument(`${what} "${value}" has a wrong EIP-55 checksum; check it, or write it in lower case`);
  }
  return getAddress(value);
}

/** A 32-byte value such as a compose hash or a device id, lower-case 0x hex. */
export function parseBytes32(value: string, what = "value"): Hex {
  const text = value.startsWith("0x") || value.startsWith("0X") ? value : `0x${value}`;
  if (!/^0x[0-9a-fA-F]*$/.test(text)) throw badArgument(`${what} must be hex, got "${value}"`);
  const digits = text.length - 2;
  if (digits !== 64) {
    throw badArgument(`${what} must be 32 bytes (64 hex digits), got ${digits} hex digits in "${value}"`);
  }
  return text.toLowerCase() as Hex;
}

/** Reads a file the user named, or says clearly that it is not there. */
export function readUserFile(path: string, what = "file"): string {
  if (!existsSync(path)) throw badArgument(`${what} "${path}" does not exist`);
  if (!statSync(path).isFile()) throw badArgument(`${what} "${path}" is not a file`);
  return readFileSync(path, "utf8");
}

export function parseJsonFile(path: string, what = "file"): unknown {
  const text = readUserFile(path, what);
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw badArgument(`${what} "${path}" is not valid JSON: ${(cause as Error).message}`);
  }
}

/** A KMS root given as its address, or as its secp256k1 public key (33 bytes compressed or 65 uncompressed). */
export function parseKmsRoot(value: string): Address {
  if (!isHex(value)) throw badArgument(`KMS root must be a 0x address or public key, got "${value}"`);
  const bytes = size(value);
  if (bytes === 20) return parseAddress(value, "KMS root address");
  try {
    if (bytes === 33) return compressedToAddress(hexToBytes(value));
    if (bytes === 65 && value.slice(2, 4) === "04") return publicKeyToAddress(value);
  } catch (cause) {
    throw badArgument(`KMS root public key "${value}" is not a point on secp256k1`, { cause });
  }
  throw badArgument(
    `KMS root must be a 20-byte address, a 33-byte compressed or a 65-byte uncompressed (0x04…) secp256k1 public key; got ${bytes} bytes`,
  );
}

/** A revocation reason: 32 bytes of hex as they are, or a short text (≤ 32 UTF-8 bytes) right-padded. */
export function parseReasonBytes32(value: string): Hex {
  if (/^0x[0-9a-fA-F]{64}$/.test(value)) return value.toLowerCase() as Hex;
  const bytes = Buffer.byteLength(value, "utf8");
  if (bytes === 0 || bytes > 32) {
    throw badArgument(`--reason must be 1 to 32 bytes of text, or 32 bytes of 0x hex; got ${bytes} bytes`);
  }
  return stringToHex(value, { size: 32 });
}

/** Shows a bytes32 reason as text when it is right-padded printable UTF-8, else as hex. */
export function formatReason(reason: Hex): string {
  const bytes = hexToBytes(reason);
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  const text = Buffer.from(bytes.subarray(0, end)).toString("utf8");
  const printable = end > 0 && !text.includes("\uFFFD") && /^[\p{L}\p{N}\p{P}\p{Zs}\p{S}]+$/u.test(text);
  return printable ? text : reason;
}

/** An integer in [min, max]. */
export function parseInteger(value: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(value))
    throw badArgument(`${what} must be an integer from ${min} to ${max}, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max)
    throw badArgument(`${what} must be an integer from ${min} to ${max}, got "${value}"`);
  return n;
}

/** A member id (positive uint64) or an app id (address). */
export function parseMemberRef(value: string): { memberId: bigint } | { appId: Address } {
  if (/^\d+$/.test(value)) {
    const id = BigInt(value);
    if (id < 1n || id >= 2n ** 64n) throw badArgument(`member id must be from 1 to 2^64-1, got "${value}"`);
    return { memberId: id };
  }
  if (value.startsWith("0x")) return { appId: parseAddress(value, "app id") };
  throw badArgument(`expected a member id (a number) or an app id (0x address), got "${value}"`);
}
