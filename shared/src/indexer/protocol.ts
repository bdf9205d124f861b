// The indexer's WebSocket protocol around the envelopes (README, "Indexer wire format"): the control
// messages, the subscription signature a member key makes over the server's challenge, the report data
// the indexer's quote binds, and the close codes.
import { keccak_256 } from "@noble/hashes/sha3";
import { type Address, type Hex, parseAbiParameters } from "viem";
import { memberDomain } from "../contracts/typedData.ts";
import { AttestmeshError } from "../errors.ts";
import { type Envelope, isHex } from "./envelope.ts";

/** Sent by the server first: a fresh 32-byte challenge for this connection. */
export interface ChallengeMessage {
  readonly type: "challenge";
  readonly challenge: string;
  readonly chainId: number;
  /** The indexer's Ed25519 signing key (the registry decides whether to believe it). */
  readonly signingKey: string;
}

/** The subscriber's answer: who it is, where to resume, and its member key's signature. */
export interface SubscribeMessage {
  readonly type: "subscribe";
  readonly cluster: string;
  readonly memberId: string;
  /** Resume after this position (`epoch:seq` from an earlier session); absent for live only. */
  readonly cursor?: string;
  /** EIP-712 `IndexerSubscribe` by the member key, under the member domain of the cluster. */
  readonly signature: string;
}

/** Acknowledges every envelope up to `seq`; unacknowledged envelopes count against the window. */
export interface AckMessage {
  readonly type: "ack";
  readonly seq: string;
}

/** The server's frame for an envelope. */
export interface EnvelopeMessage {
  readonly type: "envelope";
  readonly envelope: Envelope;
}

export interface ErrorMessage {
  readonly type: "error";
  readonly code: string;
  readonly message: string;
}

export type ServerMessage = ChallengeMessage | EnvelopeMessage | ErrorMessage;
export type ClientMessage = SubscribeMessage | AckMessage;

/** WebSocket close codes the indexer uses (4000-4999 is the application range). */
export const CLOSE = {
  /** The subscribe message was malformed, unsigned by the member, or for a cluster not served. */
  refused: 4401,
  /** The subscriber did not acknowledge or read fast enough; its buffer limit was reached. */
  tooSlow: 4008,
  /** No subscribe message within the deadline. */
  timeout: 4000,
  /** A client message the protocol does not allow. */
  protocol: 4002,
  /** The indexer is shutting down. */
  goingAway: 1001,
} as const;

/** EIP-712 type of the subscription signature; the member domain binds chain id and cluster. */
export const subscribeTypes = {
  IndexerSubscribe: parseAbiParameters(
    "uint64 memberId, bytes32 challenge, bytes32 signingKey, string cursor",
  ),
} as const;

/** The typed data a member key signs to subscribe; the same on both ends. */
export function subscribeTypedData(params: {
  readonly chainId: number;
  readonly cluster: Address;
  readonly memberId: bigint;
  readonly challenge: Hex;
  readonly signingKey: Hex;
  readonly cursor: string;
}) {
  return {
    domain: memberDomain(params.chainId, params.cluster),
    types: subscribeTypes,
    primaryType: "IndexerSubscribe" as const,
    message: {
      memberId: params.memberId,
      challenge: params.challenge,
      signingKey: params.signingKey,
      cursor: params.cursor,
    },
  };
}

/** The 64 bytes of report data the indexer's quote carries: keccak256(tag) || signingKey. */
export function quoteReportData(signingKey: Uint8Array): Uint8Array {
  if (signingKey.length !== 32) {
    throw new AttestmeshError("an Ed25519 signing key is 32 bytes", { code: "InvalidSigningKey" });
  }
  const out = new Uint8Array(64);
  out.set(keccak_256(new TextEncoder().encode("attestmesh-indexer-quote-v1")));
  out.set(signingKey, 32);
  return out;
}

/**
 * Whether a quote carries `quoteReportData(signingKey)` as its report data. This checks the binding
 * only; the quote's own signature chain (TDX DCAP) is not verified here.
 */
export function quoteBindsKey(quoteHex: string, signingKey: Uint8Array): boolean {
  if (!isHex(quoteHex)) return false;
  const needle = Buffer.from(quoteReportData(signingKey)).toString("hex");
  const hex = quoteHex.slice(2);
  // Byte-aligned matches only: a match at an odd hex offset would straddle bytes.
  for (let at = hex.indexOf(needle); at >= 0; at = hex.indexOf(needle, at + 1)) {
    if (at % 2 === 0) return true;
  }
  return false;
}

/** A cursor is `epoch:seq` as the envelopes carry them. */
export function formatCursor(epoch: string, seq: string): string {
  return `${epoch}:${seq}`;
}

export function parseCursor(cursor: string): { epoch: string; seq: bigint } | undefined {
  const match = /^(0x[0-9a-f]{32}):(0|[1-9][0-9]{0,19})$/.exec(cursor);
  if (!match) return undefined;
  return { epoch: match[1]!, seq: BigInt(match[2]!) };
}

/** Parses a JSON text frame into an object, or undefined when it is not one. */
export function parseFrame(data: unknown): Record<string, unknown> | undefined {
  const text = typeof data === "string" ? data : Buffer.isBuffer(data) ? data.toString("utf8") : String(data);
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
