// GET /attestation over the mesh: the same handler as the health port's (attestation.ts), served on
// this member's mesh IP at the mesh port over TCP, so only a peer that came through WireGuard reaches
// it (the backend's port guard drops anything else addressed to the mesh IP), and fetched from a
// peer's mesh IP the same way. Sockets come from the mesh socket factory, so in the devnet they live in
// the node's namespace, and with the in-memory backend mesh IP a.b.c.d is served at 127.b.c.d.
import { createServer, request } from "node:http";
import type { Server, Socket } from "node:net";
import type { AttestationHandler } from "../attestation.ts";
import { AttestmeshError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { createNetnsSocketFactory } from "../meshnet/netnsSockets.ts";
import { loopbackFor, type MeshSocketMode } from "../meshnet/socket.ts";
import { createLocalSocketFactory, type SocketFactory } from "../meshnet/socketFactory.ts";

/** The largest attestation document accepted (a TDX quote, its event log and the app-compose). */
export const MAX_ATTESTATION_BYTES = 1 << 20;

export function meshSocketFactory(mode: MeshSocketMode, netns: string | undefined): SocketFactory {
  return mode === "netns" && netns !== undefined
    ? createNetnsSocketFactory({ netns })
    : createLocalSocketFactory();
}

const address = (mode: MeshSocketMode, meshIp: string) =>
  mode === "loopback" ? loopbackFor(meshIp) : meshIp;

export interface MeshAttestationServer {
  close(): Promise<void>;
}

/** Serves `handler` at GET /attestation on meshIp:port (TCP); nothing else. */
export async function startMeshAttestationServer(options: {
  readonly factory: SocketFactory;
  readonly mode: MeshSocketMode;
  readonly meshIp: string;
  readonly port: number;
  readonly handler: AttestationHandler;
  readonly logger: Logger;
}): Promise<MeshAttestationServer> {
  const { logger } = options;
  const http = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://mesh");
    if (url.pathname !== "/attestation" || req.method !== "GET") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: GET /attestation?nonce=\n");
      return;
    }
    options.handler(url).then(
      (answer) => res.writeHead(answer.status, answer.headers).end(answer.body),
      (err: unknown) => {
        logger.warn({ err }, "mesh attestation request failed");
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end("internal error\n");
      },
    );
  });
  http.headersTimeout = 5_000;
  http.requestTimeout = 10_000;
  const listener: Server = await options.factory.listen(address(options.mode, options.meshIp), options.port);
  const sockets = new Set<Socket>();
  listener.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    http.emit("connection", socket);
  });
  logger.info({ address: `${options.meshIp}:${options.port}` }, "GET /attestation served over the mesh");
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        listener.close(() => resolve());
      }),
  };
}

/** Fetches a peer's attestation for `nonce` from meshIp:port; throws a retryable error when it cannot. */
export async function fetchMeshAttestation(options: {
  readonly factory: SocketFactory;
  readonly mode: MeshSocketMode;
  readonly meshIp: string;
  readonly port: number;
  readonly nonce: Uint8Array;
  readonly timeoutMs: number;
  /** How long the TCP connection may take to open; default `timeoutMs`. */
  readonly connectTimeoutMs?: number;
  /** The connection is open (the peer is reachable): work that does not need the answer may start. */
  readonly onConnected?: () => void;
  /** Bytes received, for the traffic metric. */
  readonly onBytes?: (bytes: number) => void;
}): Promise<unknown> {
  const host = address(options.mode, options.meshIp);
  const fail = (why: string, cause?: unknown) =>
    new AttestmeshError(`no attestation from ${options.meshIp}: ${why}`, {
      code: "AttestationUnavailable",
      retryable: true,
      ...(cause === undefined ? {} : { cause }),
    });
  const socket = await options.factory.connect(
    host,
    options.port,
    options.connectTimeoutMs ?? options.timeoutMs,
  );
  options.onConnected?.();
  const path = `/attestation?nonce=0x${Buffer.from(options.nonce).toString("hex")}`;
  return new Promise<unknown>((resolve, reject) => {
    const timer = setTimeout(() => {
      req.destroy();
      reject(fail(`no answer within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    const req = request(
      // No agent: an agent would open its own connection from this namespace and ignore the mesh socket.
      { host, port: options.port, path, method: "GET", createConnection: () => socket },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ATTESTATION_BYTES) {
            clearTimeout(timer);
            req.destroy();
            reject(fail(`the answer exceeds ${MAX_ATTESTATION_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on("end", () => {
          clearTimeout(timer);
          socket.destroy();
          options.onBytes?.(size);
          if (res.statusCode !== 200) {
            reject(fail(`HTTP ${res.statusCode}`));
            return;
          }
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
          } catch (cause) {
            // Not JSON is bad evidence, not an unreachable peer: the verdict names it.
            resolve({ invalid: true, cause: String(cause) });
          }
        });
        res.on("error", (error) => {
          clearTimeout(timer);
          reject(fail(error.message, error));
        });
      },
    );
    req.on("error", (error) => {
      clearTimeout(timer);
      reject(fail(error.message, error));
    });
    req.end();
  });
}
