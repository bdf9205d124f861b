/**
 * Reading the devnet dstack simulator's quotes (format defined by `devnet/src/dstack-sim/simulator.ts`,
 * `SIMULATED_QUOTE_LAYOUT`): a marker no TDX quote starts with, then report data, app id and compose
 * hash at fixed offsets. A simulated quote carries no hardware signature: it proves nothing, and a
 * verifier accepts one only when the cluster owner allowed the simulator.
 */
import { utf8ToBytes } from "@noble/hashes/utils";

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
