// The file `indexer set --proof` reads: the indexer's Ed25519 signing key and its dstack key chain, as
// the indexer CVM derives them (key path and purpose in shared/src/keys/purposes.ts). Format (JSON):
//   { "appId": "0x…20 bytes", "signingKey": "0x…32 bytes", "appPubkey": "0x…33 bytes",
//     "appSignature": "0x…65 bytes", "kmsSignature": "0x…65 bytes", "codeId": "0x…32 bytes" (optional),
//     "guestApiVersion": 0 | 1 (optional, default 0: the dstack guest API the key came from) }

import { type Address, type Hex, isHex, size } from "viem";
import { badArgument, parseAddress, parseBytes32, parseJsonFile } from "./args.ts";

export interface IndexerProofFile {
  readonly appId: Address;
  readonly signingKey: Hex;
  readonly appPubkey: Hex;
  readonly appSignature: Hex;
  readonly kmsSignature: Hex;
  readonly guestApiVersion: 0 | 1;
  readonly codeId?: Hex;
}

function bytesField(path: string, json: Record<string, unknown>, field: string, length: number): Hex {
  const value = json[field];
  if (typeof value !== "string" || !isHex(value) || size(value) !== length) {
    throw badArgument(`proof file "${path}": "${field}" must be 0x hex of ${length} bytes`);
  }
  return value.toLowerCase() as Hex;
}

function guestApiVersionField(path: string, json: Record<string, unknown>): 0 | 1 {
  const value = json.guestApiVersion ?? 0;
  if (value !== 0 && value !== 1) {
    throw badArgument(`proof file "${path}": "guestApiVersion" must be 0 or 1 (the dstack guest API)`);
  }
  return value;
}

export function readIndexerProof(path: string): IndexerProofFile {
  const json = parseJsonFile(path, "proof file");
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw badArgument(`proof file "${path}" must hold a JSON object`);
  }
  const record = json as Record<string, unknown>;
  if (typeof record.appId !== "string") throw badArgument(`proof file "${path}": "appId" is missing`);
  const proof: IndexerProofFile = {
    appId: parseAddress(record.appId, `proof file "${path}": appId`),
    signingKey: parseBytes32(String(record.signingKey ?? ""), `proof file "${path}": signingKey`),
    appPubkey: bytesField(path, record, "appPubkey", 33),
    appSignature: bytesField(path, record, "appSignature", 65),
    kmsSignature: bytesField(path, record, "kmsSignature", 65),
    guestApiVersion: guestApiVersionField(path, record),
  };
  if (record.codeId === undefined) return proof;
  return { ...proof, codeId: parseBytes32(String(record.codeId), `proof file "${path}": codeId`) };
}
