// The indexer's signed envelope (README, "Indexer wire format"): what it is, its canonical encoding and
// its Ed25519 signature. Both ends use this module: the indexer to sign, the sidecar to parse and verify.
//
//   signed bytes = utf8("attestmesh-indexer-envelope-v1\n") || utf8(JCS(envelope without "sig"))
//
// JCS is RFC 8785 JSON canonicalisation. Every field but `sig` is covered, including any field this
// version does not know, so nothing can be added or changed in transit. Integers that may exceed 2^53
// travel as decimal strings; byte strings as lowercase 0x-hex.
import canonicalizeModule from "canonicalize";
import { AttestmeshError } from "../errors.ts";
import { ed25519Sign, ed25519Verify } from "../keys/ed25519.ts";

type Canonicalize = (input: unknown) => string | undefined;
// A CommonJS package: Node hands its function over as the default export, while its typings describe
// an ES module's `default`; accept either shape.
const canonicalize: Canonicalize =
  (canonicalizeModule as unknown as { default?: Canonicalize }).default ??
  (canonicalizeModule as unknown as Canonicalize);

export const ENVELOPE_DOMAIN = "attestmesh-indexer-envelope-v1\n";
export const ENVELOPE_VERSION = 1;

/** The exact `eth_getLogs` call that returns the log from any RPC of the chain. */
export interface ReproStub {
  readonly method: "eth_getLogs";
  readonly params: readonly [
    {
      readonly address: string;
      readonly fromBlock: string;
      readonly toBlock: string;
      readonly topics: readonly string[];
    },
  ];
}

/** A log as `eth_getLogs` returns it (the fields the envelope needs). */
export interface EnvelopeLog {
  readonly address: string;
  readonly topics: readonly string[];
  readonly data: string;
}

interface EnvelopeCommon {
  readonly v: 1;
  readonly chainId: number;
  /** The cluster diamond, lowercase 0x-hex. */
  readonly cluster: string;
  /** 16 random bytes naming one run of the indexer; `seq` counts within it. */
  readonly epoch: string;
  /** Decimal; strictly increasing per cluster within an epoch. */
  readonly seq: string;
  /** Decimal block number: the log's block, or the confirmed head for a hello. */
  readonly blockNumber: string;
  readonly blockHash: string;
}

/** The first envelope of every session: binds the session to the signing key and carries the quote. */
export interface HelloEnvelope extends EnvelopeCommon {
  readonly kind: "hello";
  /** The server's challenge of this session, so a hello cannot be replayed into another session. */
  readonly session: string;
  /** The subscriber's member id (decimal). */
  readonly memberId: string;
  /** dstack GetQuote with report data `quoteReportData(signingKey)`, hex. */
  readonly quote: string;
  /** True when the subscriber's cursor could not be honoured: it must re-read the chain itself. */
  readonly gap: boolean;
}

/** One log of the cluster (or its retraction, `removed: true`, after a reorg). */
export interface LogEnvelope extends EnvelopeCommon {
  readonly kind: "log";
  readonly txHash: string;
  readonly logIndex: number;
  readonly removed: boolean;
  readonly log: EnvelopeLog;
  readonly repro: ReproStub;
}

export type UnsignedEnvelope = HelloEnvelope | LogEnvelope;
export type Envelope = UnsignedEnvelope & { readonly sig: string };
export type SignedLogEnvelope = Extract<Envelope, { kind: "log" }>;

function invalid(message: string, details: Record<string, unknown> = {}): AttestmeshError {
  return new AttestmeshError(message, { code: "InvalidEnvelope", retryable: false, details });
}

/** The bytes an envelope's signature covers. */
export function envelopeSigningBytes(envelope: Readonly<Record<string, unknown>>): Uint8Array {
  const { sig: _sig, ...fields } = envelope;
  const canonical = canonicalize(fields);
  if (canonical === undefined) throw invalid("the envelope cannot be canonicalised");
  return new TextEncoder().encode(ENVELOPE_DOMAIN + canonical);
}

/** Signs with the 32-byte Ed25519 secret; returns the envelope with `sig`. */
export function signEnvelope(envelope: UnsignedEnvelope, secretKey: Uint8Array): Envelope {
  const sig = ed25519Sign(envelopeSigningBytes(envelope as unknown as Record<string, unknown>), secretKey);
  return { ...envelope, sig: toHex(sig) };
}

/** Whether `envelope.sig` is a valid Ed25519 signature of the envelope by `publicKey` (32 bytes). */
export function verifyEnvelopeSignature(envelope: Envelope, publicKey: Uint8Array): boolean {
  if (!isHex(envelope.sig, 64) || publicKey.length !== 32) return false;
  let signed: Uint8Array;
  try {
    signed = envelopeSigningBytes(envelope as unknown as Record<string, unknown>);
  } catch {
    return false;
  }
  return ed25519Verify(fromHex(envelope.sig), signed, publicKey);
}

/** The repro stub of a log: its address and first topic, at exactly its block. */
export function reproFor(log: EnvelopeLog, blockNumber: bigint): ReproStub {
  const block = `0x${blockNumber.toString(16)}`;
  return {
    method: "eth_getLogs",
    params: [
      {
        address: log.address.toLowerCase(),
        fromBlock: block,
        toBlock: block,
        topics: log.topics.length > 0 ? [log.topics[0]!.toLowerCase()] : [],
      },
    ],
  };
}

/** A log read from the chain: what it says, and where it stands. */
export interface ChainPlacedLog extends EnvelopeLog {
  readonly blockNumber: bigint;
  readonly blockHash: string;
  readonly transactionHash: string;
  readonly logIndex: number;
}

/** The unsigned envelope of `log` (or of its retraction), numbered `seq` in a cluster's stream; hex lowercase. */
export function unsignedLogEnvelope(
  stream: {
    readonly chainId: number;
    readonly cluster: string;
    readonly epoch: string;
    readonly seq: bigint;
  },
  log: ChainPlacedLog,
  removed: boolean,
): LogEnvelope {
  const fields = {
    address: log.address.toLowerCase(),
    topics: log.topics.map((t) => t.toLowerCase()),
    data: log.data.toLowerCase(),
  };
  return {
    v: 1,
    kind: "log",
    chainId: stream.chainId,
    cluster: stream.cluster,
    epoch: stream.epoch,
    seq: stream.seq.toString(),
    blockNumber: log.blockNumber.toString(),
    blockHash: log.blockHash.toLowerCase(),
    txHash: log.transactionHash.toLowerCase(),
    logIndex: log.logIndex,
    removed,
    log: fields,
    repro: reproFor(fields, log.blockNumber),
  };
}

// ----------------------------------------------------------------- parsing

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

export function isHex(value: unknown, bytes?: number): value is string {
  if (typeof value !== "string" || !/^0x([0-9a-f]{2})*$/.test(value)) return false;
  return bytes === undefined || value.length === 2 + 2 * bytes;
}

const isDecimal = (v: unknown): v is string => typeof v === "string" && /^(0|[1-9][0-9]{0,19})$/.test(v);

function need(condition: boolean, field: string): void {
  if (!condition) throw invalid(`envelope field ${field} is missing or malformed`, { field });
}

/**
 * Checks the shape of a decoded envelope (types, hex lengths, lowercase hex) and returns it typed.
 * Says nothing about who signed it: call `verifyEnvelopeSignature` next.
 */
export function parseEnvelope(value: unknown): Envelope {
  if (!isObject(value)) throw invalid("an envelope must be a JSON object");
  const e = value;
  need(e.v === ENVELOPE_VERSION, "v");
  need(Number.isSafeInteger(e.chainId) && (e.chainId as number) > 0, "chainId");
  need(isHex(e.cluster, 20), "cluster");
  need(isHex(e.epoch, 16), "epoch");
  need(isDecimal(e.seq), "seq");
  need(isDecimal(e.blockNumber), "blockNumber");
  need(isHex(e.blockHash, 32), "blockHash");
  need(isHex(e.sig, 64), "sig");
  if (e.kind === "hello") {
    need(isHex(e.session, 32), "session");
    need(isDecimal(e.memberId), "memberId");
    need(isHex(e.quote) && (e.quote as string).length > 2, "quote");
    need(typeof e.gap === "boolean", "gap");
  } else if (e.kind === "log") {
    need(isHex(e.txHash, 32), "txHash");
    need(Number.isSafeInteger(e.logIndex) && (e.logIndex as number) >= 0, "logIndex");
    need(typeof e.removed === "boolean", "removed");
    const log = e.log;
    need(isObject(log), "log");
    const l = log as Record<string, unknown>;
    need(isHex(l.address, 20), "log.address");
    need(
      Array.isArray(l.topics) && l.topics.length <= 4 && l.topics.every((t) => isHex(t, 32)),
      "log.topics",
    );
    need(isHex(l.data), "log.data");
    const repro = e.repro;
    need(isObject(repro) && repro.method === "eth_getLogs", "repro.method");
    const params = (repro as Record<string, unknown>).params;
    need(Array.isArray(params) && params.length === 1 && isObject(params[0]), "repro.params");
    const p = (params as Record<string, unknown>[])[0]!;
    need(isHex(p.address, 20), "repro.params.address");
    need(typeof p.fromBlock === "string" && typeof p.toBlock === "string", "repro.params.block");
    need(Array.isArray(p.topics) && p.topics.every((t) => isHex(t, 32)), "repro.params.topics");
  } else {
    throw invalid(`unknown envelope kind ${JSON.stringify(e.kind)}`, { field: "kind" });
  }
  return e as unknown as Envelope;
}

// ---------------------------------------------------------------- encoding

export function toHex(bytes: Uint8Array): string {
  return `0x${Buffer.from(bytes).toString("hex")}`;
}

export function fromHex(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex.startsWith("0x") ? hex.slice(2) : hex, "hex"));
}
