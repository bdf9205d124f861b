// The application API: HTTP/1.1 + JSON on a unix socket (socket.ts). Read-only views of the sidecar,
// sending a sealed message, acknowledging received ones, and two NDJSON streams: received messages,
// read page by page from the inbox (inbox.ts) at the pace the client reads, so nothing is dropped; and
// peer events, fed from bounded per-subscriber queues. A bad request gets a 4xx with
// `{"error":{"code","message"}}` and changes nothing. Documented in docs/api.md.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { scrubUrls } from "@attestmesh/shared/service/log.ts";
import type { Address, Hex } from "viem";
import { AttestmeshError, type SidecarCode } from "../errors.ts";
import { attestationJson, healthReport } from "../health.ts";
import type { Logger } from "../log.ts";
import type { MessageSender } from "../messages/sender.ts";
import type { SidecarStatus } from "../status.ts";
import type { Hub, Sequenced, Subscription } from "./hub.ts";
import type { Inbox, StoredMessage } from "./inbox.ts";
import type { PeerEvent } from "./peerEvents.ts";
import type { CskReader, PeerLiveness, PeerLivenessEntry } from "./providers.ts";
import { listenUnix } from "./socket.ts";

/** Largest accepted request body. */
export const MAX_BODY_BYTES = 16 * 1024;
/** Messages read from the inbox at a time for one stream. */
const STREAM_PAGE = 64;
const UINT64_MAX = (1n << 64n) - 1n;

/** This node's public identity (no secrets), once its keys are derived. */
export interface SelfKeys {
  readonly memberAddress: Address;
  readonly identityPublicKey: Hex;
  readonly x25519PublicKey: Hex;
  readonly wireguardPublicKey: string;
}

export interface ApiDeps {
  readonly status: () => SidecarStatus;
  readonly selfKeys: () => SelfKeys | undefined;
  readonly liveness: () => PeerLiveness;
  readonly csk: () => CskReader | undefined;
  /** Undefined until the node has keys and a chain connection. */
  readonly sender: () => MessageSender | undefined;
  readonly inbox: Inbox;
  readonly peerEvents: Hub<PeerEvent>;
  readonly logger: Logger;
}

export interface ApiServer {
  readonly path: string;
  close(): Promise<void>;
}

class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

const json = (value: unknown) => `${JSON.stringify(value)}\n`;
const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res
    .writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...headers })
    .end(json(body));
}

function peerJson(p: PeerLivenessEntry, attestations?: SidecarStatus["peerAttestations"]) {
  const a = attestations?.find((x) => x.memberId === p.memberId);
  return {
    memberId: p.memberId.toString(),
    appId: p.appId,
    meshIp: p.meshIp,
    live: p.live,
    lastHeartbeat: iso(p.lastHeartbeatMs),
    // Its live attestation as this node judged it last (null before the first check).
    ...(attestations === undefined ? {} : { attestation: a === undefined ? null : attestationJson(a) }),
  };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function messageJson({ seq, message: m }: StoredMessage) {
  let text: string | null = null;
  try {
    text = utf8.decode(m.payload);
  } catch {
    // Not UTF-8: the application reads `base64`.
  }
  return {
    type: "message",
    seq,
    envelopeId: m.envelopeId,
    from: { memberId: m.senderId.toString(), appId: m.senderAppId ?? null },
    to: m.recipientId.toString(),
    base64: Buffer.from(m.payload).toString("base64"),
    text,
    block: m.blockNumber.toString(),
    txHash: m.txHash,
  };
}

function peerEventJson({ seq, item }: Sequenced<PeerEvent>) {
  switch (item.kind) {
    case "converged":
      return { type: "peer", seq, event: item.kind, live: item.live.map(String) };
    case "diverged":
      return { type: "peer", seq, event: item.kind };
    default:
      return { type: "peer", seq, event: item.kind, ...peerJson(item.peer) };
  }
}

/** Reads the body, refusing more than `MAX_BODY_BYTES`. */
async function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > MAX_BODY_BYTES) {
    throw new HttpError(413, "BodyTooLarge", `the request body may be at most ${MAX_BODY_BYTES} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) {
      throw new HttpError(413, "BodyTooLarge", `the request body may be at most ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Reads a body sent as `application/json` (refused with a 415 otherwise), like `readBody`. */
async function readJsonBody(req: IncomingMessage): Promise<Buffer> {
  const type = req.headers["content-type"] ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw new HttpError(415, "UnsupportedMediaType", "send the body as content-type: application/json");
  }
  return readBody(req);
}

/**
 * A request body that must be a JSON object with no field but `fields`; refused with a 400 that shows
 * `example` (not an object) or says to `use` the known fields (an unknown one).
 */
function jsonObjectBody(
  body: Buffer,
  shape: { readonly example: string; readonly fields: readonly string[]; readonly use: string },
): Record<string, unknown> {
  let data: unknown;
  try {
    data = JSON.parse(body.toString("utf8"));
  } catch {
    throw new HttpError(400, "InvalidJson", "the body is not JSON");
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new HttpError(400, "InvalidBody", `the body must be a JSON object like ${shape.example}`);
  }
  const record = data as Record<string, unknown>;
  const unknown = Object.keys(record).filter((k) => !shape.fields.includes(k));
  if (unknown.length > 0) {
    throw new HttpError(400, "UnknownField", `unknown field(s) ${unknown.join(", ")}; use ${shape.use}`);
  }
  return record;
}

/** The body of POST /v1/messages: `{"to": "<member id>", "text": "…"}` or `{"to": …, "base64": "…"}`. */
export function parseSendRequest(body: Buffer): { to: bigint; payload: Uint8Array } {
  const record = jsonObjectBody(body, {
    example: '{"to":"2","text":"hello"}',
    fields: ["to", "text", "base64"],
    use: "to, and text or base64",
  });
  const rawTo = record.to;
  let to: bigint | undefined;
  if (typeof rawTo === "string" && /^\d{1,20}$/.test(rawTo)) to = BigInt(rawTo);
  else if (typeof rawTo === "number" && Number.isSafeInteger(rawTo)) to = BigInt(rawTo);
  if (to === undefined || to < 1n || to > UINT64_MAX) {
    throw new HttpError(
      400,
      "InvalidRecipient",
      "to must be a member id: a whole number from 1 (a string or a number)",
    );
  }
  const { text, base64 } = record;
  if ((text === undefined) === (base64 === undefined)) {
    throw new HttpError(400, "InvalidPayload", "give exactly one of text (a UTF-8 string) or base64");
  }
  let payload: Uint8Array;
  if (text !== undefined) {
    if (typeof text !== "string") throw new HttpError(400, "InvalidPayload", "text must be a string");
    payload = new TextEncoder().encode(text);
  } else {
    if (typeof base64 !== "string" || base64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) {
      throw new HttpError(400, "InvalidPayload", "base64 must be standard padded base64");
    }
    payload = new Uint8Array(Buffer.from(base64, "base64"));
  }
  if (payload.length === 0) throw new HttpError(400, "InvalidPayload", "the payload is empty");
  return { to, payload };
}

/** The HTTP status for a send that the sidecar or the chain refused, by code; anything else is 409. */
const SEND_ERROR_STATUS: Readonly<Partial<Record<SidecarCode, number>>> = {
  RecipientNotFound: 404,
  PayloadTooLarge: 413,
  MessageTooLarge: 413,
  NotRegistered: 503,
  GasKeyMissing: 503,
  GasKeyUnfunded: 503,
  RpcError: 502,
  SendReverted: 502,
};

function sendErrorStatus(error: AttestmeshError): number {
  return SEND_ERROR_STATUS[error.code as SidecarCode] ?? 409;
}

function sinceParam(
  url: URL,
  sequence: { lastSeq(): number },
  fallback: "all" | "latest" | "acked",
  acked = 0,
): number {
  const raw = url.searchParams.get("since") ?? fallback;
  if (raw === "all" || raw === "acked") return acked;
  if (raw === "latest") return sequence.lastSeq();
  if (!/^\d{1,15}$/.test(raw)) {
    throw new HttpError(
      400,
      "InvalidSince",
      `since must be a sequence number, "all" or "latest"${fallback === "acked" ? ' or "acked"' : ""}`,
    );
  }
  return Number(raw);
}

/** The body of POST /v1/messages/ack: `{"seq": n}`, optionally with the `space` the client read it in. */
export function parseAckRequest(body: Buffer): { seq: number; space: string | undefined } {
  const record = jsonObjectBody(body, {
    example: '{"seq":12}',
    fields: ["seq", "space"],
    use: "seq, and space",
  });
  const raw = record.seq;
  let seq: number | undefined;
  if (typeof raw === "number" && Number.isSafeInteger(raw)) seq = raw;
  else if (typeof raw === "string" && /^\d{1,15}$/.test(raw)) seq = Number(raw);
  if (seq === undefined || seq < 1) {
    throw new HttpError(
      400,
      "InvalidSeq",
      "seq must be the sequence number of a received message: a whole number from 1",
    );
  }
  const space = record.space;
  if (space !== undefined && typeof space !== "string") {
    throw new HttpError(400, "InvalidSpace", "space must be the string the stream's hello line named");
  }
  return { seq, space };
}

export async function startApiServer(options: {
  readonly path: string;
  readonly gid?: number | undefined;
  readonly deps: ApiDeps;
}): Promise<ApiServer> {
  const { deps } = options;
  const { logger } = deps;
  const streams = new Set<ServerResponse>();

  function stream<T>(
    req: IncomingMessage,
    res: ServerResponse,
    sub: Subscription<T>,
    hello: unknown,
    format: (entry: Sequenced<T>) => unknown,
  ): void {
    res.writeHead(200, {
      "content-type": "application/x-ndjson",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    });
    streams.add(res);
    let waiting = false;
    let closed = false;
    const write = (value: unknown): boolean => res.write(json(value));
    const flush = () => {
      if (waiting || closed) return;
      for (;;) {
        const lost = sub.queue.takeLost();
        if (lost > 0 && !write({ type: "lost", count: lost })) break;
        const entry = sub.queue.shift();
        if (entry === undefined) return;
        if (!write(format(entry))) break;
      }
      waiting = true;
      res.once("drain", () => {
        waiting = false;
        flush();
      });
    };
    const close = () => {
      if (closed) return;
      closed = true;
      sub.close();
      streams.delete(res);
    };
    req.on("close", close);
    res.on("close", close);
    res.on("error", close);
    if (!write(hello)) {
      waiting = true;
      res.once("drain", () => {
        waiting = false;
        flush();
      });
    }
    sub.onReady(flush);
  }

  let messageStreams = 0;

  /**
   * The messages stream: every stored message with a sequence number above `since`, in order, then
   * each new one as it is stored. Pages come from the inbox only while the socket takes them, so a
   * slow reader holds back nothing but its own position.
   */
  function messageStream(req: IncomingMessage, res: ServerResponse, since: number): void {
    const { inbox } = deps;
    res.writeHead(200, {
      "content-type": "application/x-ndjson",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    });
    streams.add(res);
    messageStreams++;
    let position = since;
    let waiting = false;
    let closed = false;
    const write = (value: unknown): boolean => res.write(json(value));
    const wait = () => {
      waiting = true;
      res.once("drain", () => {
        waiting = false;
        pump();
      });
    };
    function pump(): void {
      if (waiting || closed) return;
      try {
        for (;;) {
          const page = inbox.after(position, STREAM_PAGE);
          if (page.length === 0) return;
          for (const entry of page) {
            position = entry.seq;
            if (!write(messageJson(entry))) {
              wait();
              return;
            }
          }
        }
      } catch (err) {
        logger.error({ err }, "reading the message inbox failed; closing the stream (the client resumes)");
        res.destroy();
      }
    }
    const unsubscribe = inbox.onStored(pump);
    const close = () => {
      if (closed) return;
      closed = true;
      messageStreams--;
      unsubscribe();
      streams.delete(res);
    };
    req.on("close", close);
    res.on("close", close);
    res.on("error", close);
    const hello = {
      type: "hello",
      stream: "messages",
      space: inbox.space,
      lastSeq: inbox.lastSeq(),
      acked: inbox.acked(),
    };
    if (!write(hello)) wait();
    else pump();
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const only = (method: "GET" | "POST") => {
      if (req.method !== method) {
        throw new HttpError(405, "MethodNotAllowed", `${url.pathname} takes ${method}`, { allow: method });
      }
    };
    switch (url.pathname) {
      case "/v1/status": {
        only("GET");
        const status = deps.status();
        send(res, 200, {
          ...healthReport(status),
          messages: {
            space: deps.inbox.space,
            lastSeq: deps.inbox.lastSeq(),
            acked: deps.inbox.acked(),
            pending: deps.inbox.pending(),
            subscribers: messageStreams,
          },
        });
        return;
      }
      case "/v1/self": {
        only("GET");
        const status = deps.status();
        const keys = deps.selfKeys();
        send(res, 200, {
          memberId: status.memberId?.toString() ?? null,
          appId: status.appId ?? null,
          meshIp: status.meshIp ?? null,
          phase: status.phase,
          memberAddress: keys?.memberAddress ?? null,
          identityPublicKey: keys?.identityPublicKey ?? null,
          x25519PublicKey: keys?.x25519PublicKey ?? null,
          wireguardPublicKey: keys?.wireguardPublicKey ?? null,
        });
        return;
      }
      case "/v1/peers": {
        only("GET");
        const liveness = deps.liveness();
        const attestations = deps.status().peerAttestations;
        send(res, 200, {
          source: liveness.source ?? "heartbeat",
          peers: liveness.peers().map((p) => peerJson(p, attestations)),
          // Refused peers are not peers any more; their verdicts are here.
          attestations: attestations.map(attestationJson),
        });
        return;
      }
      case "/v1/cluster-shared-key": {
        only("GET");
        const status = deps.status();
        if (status.phase !== "healthy") {
          throw new HttpError(
            503,
            "NotHealthy",
            `the node is ${status.phase}; the key is served only when healthy`,
          );
        }
        const current = deps.csk()?.current();
        if (current === undefined) {
          throw new HttpError(
            503,
            "CskUnavailable",
            "this node does not hold the cluster shared key of the current epoch",
          );
        }
        send(res, 200, {
          epoch: current.epoch.toString(),
          key: `0x${Buffer.from(current.key.reveal()).toString("hex")}`,
        });
        return;
      }
      case "/v1/messages": {
        only("POST");
        const { to, payload } = parseSendRequest(await readJsonBody(req));
        const sender = deps.sender();
        if (sender === undefined) {
          throw new HttpError(503, "NotReady", "the sidecar has no chain connection yet; try again shortly");
        }
        if (payload.length > sender.maxPayloadBytes()) {
          throw new HttpError(
            413,
            "PayloadTooLarge",
            `the payload is ${payload.length} bytes; at most ${sender.maxPayloadBytes()} fit one message`,
          );
        }
        try {
          const sent = await sender.send(to, payload);
          send(res, 200, {
            envelopeId: sent.envelopeId,
            from: sent.senderId.toString(),
            to: sent.recipientId.toString(),
            txHash: sent.txHash,
            block: sent.blockNumber.toString(),
          });
        } catch (error) {
          if (!(error instanceof AttestmeshError)) throw error;
          throw new HttpError(sendErrorStatus(error), error.code, error.message);
        }
        return;
      }
      case "/v1/messages/ack": {
        only("POST");
        const { seq, space } = parseAckRequest(await readJsonBody(req));
        const { inbox } = deps;
        if (space !== undefined && space !== inbox.space) {
          throw new HttpError(
            409,
            "SpaceMismatch",
            `the inbox is sequence space ${inbox.space}, not ${space} (a new inbox: its sequence numbers are not the ones you read); read the stream again from its hello line`,
          );
        }
        if (seq > inbox.lastSeq()) {
          throw new HttpError(
            409,
            "SeqNotDelivered",
            `no message has sequence number ${seq} yet (the last is ${inbox.lastSeq()}); acknowledge only what the stream gave you`,
          );
        }
        try {
          const result = inbox.ack(seq);
          send(res, 200, {
            space: inbox.space,
            ...result,
            lastSeq: inbox.lastSeq(),
            pending: inbox.pending(),
          });
        } catch (error) {
          if (!(error instanceof AttestmeshError)) throw error;
          logger.error({ err: error }, "acknowledging messages failed");
          throw new HttpError(503, error.code, error.message);
        }
        return;
      }
      case "/v1/messages/stream": {
        only("GET");
        const since = sinceParam(url, deps.inbox, "acked", deps.inbox.acked());
        messageStream(req, res, since);
        return;
      }
      case "/v1/peer-events/stream": {
        only("GET");
        const since = sinceParam(url, deps.peerEvents, "latest");
        const sub = deps.peerEvents.subscribe({ since });
        const liveness = deps.liveness();
        stream(
          req,
          res,
          sub,
          {
            type: "hello",
            stream: "peer-events",
            lastSeq: deps.peerEvents.lastSeq(),
            source: liveness.source ?? "heartbeat",
            peers: liveness.peers().map((p) => peerJson(p)),
          },
          peerEventJson,
        );
        return;
      }
      default:
        throw new HttpError(
          404,
          "NotFound",
          `no such endpoint ${url.pathname}; see /v1/status, /v1/self, /v1/peers, /v1/cluster-shared-key, /v1/messages, /v1/messages/ack, /v1/messages/stream, /v1/peer-events/stream`,
        );
    }
  }

  const server = createServer((req, res) => {
    route(req, res).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (error instanceof HttpError) {
        logger.debug({ status: error.status, code: error.code, path: req.url }, "api request refused");
        const body = { error: { code: error.code, message: scrubUrls(error.message) } };
        send(res, error.status, body, error.headers);
        return;
      }
      logger.error({ err: error, path: req.url }, "api request failed");
      send(res, 500, { error: { code: "Internal", message: "internal error; see the sidecar log" } });
    });
  });
  const listener = await listenUnix(server, options.path, { gid: options.gid });
  logger.info({ socket: options.path, group: options.gid ?? null }, "application API listening");
  return {
    path: options.path,
    async close() {
      for (const res of streams) res.end();
      streams.clear();
      const closing = listener.close();
      server.closeAllConnections();
      await closing;
    },
  };
}
