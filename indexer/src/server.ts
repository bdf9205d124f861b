// The indexer's one listening socket: GET /healthz and GET /metrics over HTTP, and the subscription
// protocol over WebSocket on any other path. A connection gets a fresh challenge, must answer with a
// signed subscribe within the auth timeout, then receives a signed hello (quote included) followed by
// its cluster's envelopes from its cursor on.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { type HelloEnvelope, signEnvelope, toHex } from "@attestmesh/shared/indexer/envelope.ts";
import { CLOSE, parseCursor, parseFrame } from "@attestmesh/shared/indexer/protocol.ts";
import { listenHttp } from "@attestmesh/shared/service/listen.ts";
import type { Hex } from "viem";
import { type WebSocket, WebSocketServer } from "ws";
import type { Authenticator } from "./auth.ts";
import type { Logger } from "./log.ts";
import type { IndexerMetrics } from "./metrics.ts";
import { createSession, type Session, type SessionLimits } from "./session.ts";
import type { ClusterStream } from "./stream.ts";

export interface PushServer {
  readonly url: string;
  readonly port: number;
  subscriberCount(): number;
  /** Closes every subscription (1001) and the listener. */
  close(): Promise<void>;
}

export async function startPushServer(options: {
  readonly host: string;
  readonly port: number;
  readonly chainId: number;
  readonly streams: ReadonlyMap<string, ClusterStream>;
  readonly auth: Authenticator;
  readonly secretKey: Uint8Array;
  readonly signingKey: Hex;
  readonly quote: Hex;
  readonly limits: SessionLimits;
  readonly authTimeoutMs: number;
  readonly metrics: IndexerMetrics;
  readonly logger: Logger;
  readonly health: () => Record<string, unknown>;
}): Promise<PushServer> {
  const { logger, metrics } = options;
  const sessions = new Set<Session>();

  async function http(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    if (req.method !== "GET") {
      res.writeHead(405, { allow: "GET" }).end();
      return;
    }
    if (path === "/healthz") {
      const body = options.health();
      res
        .writeHead(body.ok === true ? 200 : 503, {
          "content-type": "application/json",
          "cache-control": "no-store",
        })
        .end(`${JSON.stringify(body)}\n`);
      return;
    }
    if (path === "/metrics") {
      res
        .writeHead(200, { "content-type": metrics.registry.contentType })
        .end(await metrics.registry.metrics());
      return;
    }
    res
      .writeHead(426, { "content-type": "text/plain" })
      .end("connect with a WebSocket, or GET /healthz or /metrics\n");
  }

  const server = createServer((req, res) => {
    http(req, res).catch((err: unknown) => {
      logger.error({ err }, "http request failed");
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  const wss = new WebSocketServer({ server, maxPayload: 16 * 1024 });

  function refuse(ws: WebSocket, reason: string, remote: string | undefined): void {
    metrics.refused.inc({ reason });
    logger.warn({ reason, remote }, "subscription refused");
    ws.send(JSON.stringify({ type: "error", code: reason, message: `subscription refused: ${reason}` }));
    ws.close(CLOSE.refused, reason);
  }

  wss.on("connection", (ws, req) => {
    const remote = req.socket.remoteAddress;
    const challenge = toHex(randomBytes(32)) as Hex;
    let session: Session | undefined;
    let authenticating = false;
    const timer = setTimeout(() => {
      if (session === undefined) ws.close(CLOSE.timeout, "no subscribe message in time");
    }, options.authTimeoutMs);
    ws.on("error", (err) => logger.debug({ err, remote }, "subscriber socket error"));
    ws.on("close", () => {
      clearTimeout(timer);
      if (session !== undefined) {
        session.close();
        sessions.delete(session);
        metrics.subscribers.dec({ cluster: session.stream.cluster });
        logger.info(
          { memberId: session.memberId.toString(), cluster: session.stream.cluster },
          "subscriber left",
        );
      }
    });
    ws.on("message", (data) => {
      const message = parseFrame(data);
      if (message === undefined) {
        ws.close(CLOSE.protocol, "frames are JSON objects");
        return;
      }
      if (session !== undefined) {
        const seq = message.seq;
        if (message.type === "ack" && typeof seq === "string" && /^\d{1,20}$/.test(seq))
          session.ack(BigInt(seq));
        else ws.close(CLOSE.protocol, "only ack messages are allowed after subscribe");
        return;
      }
      if (authenticating || message.type !== "subscribe") {
        ws.close(CLOSE.protocol, "the first message must be one subscribe");
        return;
      }
      authenticating = true;
      options.auth.authenticate(message, challenge).then(
        (result) => {
          if (ws.readyState !== ws.OPEN) return;
          if (!result.ok) {
            refuse(ws, result.reason, remote);
            return;
          }
          const stream = options.streams.get(result.cluster.toLowerCase())!;
          const cursor = result.cursor === undefined ? undefined : parseCursor(result.cursor);
          const resumable =
            cursor !== undefined &&
            cursor.epoch === stream.epoch &&
            cursor.seq + 1n >= stream.firstSeq() &&
            cursor.seq <= stream.lastSeq();
          const after = resumable ? cursor.seq : stream.lastSeq();
          const head = stream.head();
          const hello: HelloEnvelope = {
            v: 1,
            kind: "hello",
            chainId: options.chainId,
            cluster: result.cluster.toLowerCase(),
            epoch: stream.epoch,
            seq: after.toString(),
            blockNumber: (head?.number ?? 0n).toString(),
            blockHash: head?.hash ?? `0x${"00".repeat(32)}`,
            session: challenge,
            memberId: result.memberId.toString(),
            quote: options.quote,
            gap: result.cursor !== undefined && !resumable,
          };
          ws.send(JSON.stringify({ type: "envelope", envelope: signEnvelope(hello, options.secretKey) }));
          session = createSession({
            ws,
            stream,
            memberId: result.memberId,
            after,
            limits: options.limits,
            onSent: (count) => metrics.pushes.inc({ cluster: stream.cluster }, count),
            onCutOff: (reason) => {
              metrics.cutOff.inc({ reason });
              logger.warn({ memberId: result.memberId.toString(), reason }, "subscriber cut off");
            },
          });
          sessions.add(session);
          metrics.subscribers.inc({ cluster: stream.cluster });
          logger.info(
            {
              memberId: result.memberId.toString(),
              cluster: stream.cluster,
              resumedAfter: after.toString(),
              remote,
            },
            "subscriber authenticated",
          );
          session.pump();
        },
        (err: unknown) => {
          logger.warn({ err, remote }, "subscription check failed (chain read); closing");
          metrics.refused.inc({ reason: "CheckFailed" });
          ws.close(1011, "could not check the subscription; retry");
        },
      );
    });
    ws.send(
      JSON.stringify({
        type: "challenge",
        challenge,
        chainId: options.chainId,
        signingKey: options.signingKey,
      }),
    );
  });

  const unsubscribe = [...options.streams.values()].map((stream) =>
    stream.onPublish(() => {
      for (const s of sessions) if (s.stream === stream) s.pump();
    }),
  );

  const listener = await listenHttp(server, options.host, options.port);
  return {
    url: `ws://${listener.host}:${listener.port}`,
    port: listener.port,
    subscriberCount: () => sessions.size,
    async close() {
      for (const off of unsubscribe) off();
      for (const ws of wss.clients) ws.close(CLOSE.goingAway, "indexer shutting down");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          for (const ws of wss.clients) ws.terminate();
        }, 1000);
        wss.close(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await listener.close();
    },
  };
}
