/**
 * Reading the devnet dstack simulator's quotes (format defined by `devnet/src/dstack-sim/simulator.ts`,
 * `SIMULATED_QUOTE_LAYOUT`): a marker no TDX quote starts with, then report data, app id and compose
 * hash at fixed offsets. A simulated quote carries no hardware signature: it proves nothing, and a
 * verifier accepts one only when the cluster owner allowed the simulator.
 */
import { keccak_256 } from "@noble/hashes/sha3";
import { utf8ToBytes } from "@noble/hashes/utils";
import type { Address } from "viem";
import { secp256k1PublicKey } from "../dstack/keychain.ts";
import { compressedToAddress } from "../dstack/verify.ts";

/** ASCII marker every simulated quote starts with; no real TDX quote does. */
export const SIMULATED_QUOTE_MARKER = "ATTESTMESH-SIMULATED-QUOTE-v1";

const MARKER = utf8ToBytes(SIMULATED_QUOTE_MARKER);
const LENGTH = MARKER.length + 64 + 20 + 32;

export interface SimulatedQuote {
  readonly reportData: Uint8Array;
  readonly appId: Uint8Array;
  readonly composeHash: Uint8Array;
}

/** Whether `quote` claims to be a simulated quote (starts with the marker). */
export function isSimulatedQuote(quote: Uint8Array): boolean {
  return quote.length >= MARKER.length && MARKER.every((b, i) => quote[i] === b);
}

/** The fields of a simulated quote, or undefined when `quote` is not exactly one. */
export function readSimulatedQuote(quote: Uint8Array): SimulatedQuote | undefined {
  if (!isSimulatedQuote(quote) || quote.length !== LENGTH) return undefined;
  const at = MARKER.length;
  return {
    reportData: quote.slice(at, at + 64),
    appId: quote.slice(at + 64, at + 84),
    composeHash: quote.slice(at + 84, at + 116),
  };
}

/**
 * The KMS roots of simulators, all with public secrets: the devnet's (the address of
 * `keccak256("attestmesh devnet kms root — not a secret")`, `devnet/src/dstack-sim/simulator.ts`) and
 * dstack's own simulator roots (current and older `sdk/simulator/appkeys.json`, see
 * test/fixtures/dstack/production/kms-chains.json). A cluster that allowlists one of them has allowed
 * simulator evidence; production clusters allow none.
 */
export const SIMULATOR_KMS_ROOTS: readonly Address[] = [
  compressedToAddress(
    secp256k1PublicKey(keccak_256(utf8ToBytes("attestmesh devnet kms root — not a secret"))),
  ),
  "0xA7F6043C29f9cc1d9D6aCF554c53E0c6792AaEAf",
  "0x8f2cF602C9695b23130367ed78d8F557554de7C5",
];
