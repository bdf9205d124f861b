// The devnet's stand-in for the dstack gateway: a TCP server that reads the SNI of each incoming TLS
// connection without terminating TLS, and forwards the connection byte for byte to port <port> of the
// node named by `<app-id>-<port>s.<domain>`. Like the real gateway it is routing only: it never sees
// plaintext, and a connection it cannot route (no SNI, another domain, an unknown app id, anything that
// is not a ClientHello) is closed.
import { connect, createServer, type Server, type Socket } from "node:net";
import { parseGatewayServerName } from "@attestmesh/shared/gateway/serverName.ts";
import type { Logger } from "pino";
import { MAX_CLIENT_HELLO_BYTES, parseClientHelloSni } from "./sni.ts";

export interface SniGatewayOptions {
  readonly host: string;
  readonly port: number;
  readonly domain: string;
  /** The address of the node running `appId` (0x + 40 lowercase hex), or undefined if none. */
  readonly route: (appId: `0x${string}`) => Promise<string | undefined> | string | undefined;
  readonly logger: Logger;
  /** Time for the client to send its ClientHello; default 10 s. */
  readonly helloTimeoutMs?: number;
  /** Time to reach the node; default 5 s. */
  readonly connectTimeoutMs?: number;
}

export type GatewayOutcome =
  | "routed"
  | "not-tls"
  | "no-sni"
  | "foreign-name"
  | "unknown-app"
  | "node-unreachable"
  | "hello-timeout";

export interface SniGateway {
  readonly port: number;
  /** Connections so far, by outcome. */
  stats(): Readonly<Partial<Record<GatewayOutcome, number>>>;
  close(): Promise<void>;
}

export async function startSniGateway(options: SniGatewayOptions): Promise<SniGateway> {
  const { logger } = options;
  const helloTimeoutMs = options.helloTimeoutMs ?? 10_000;
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  const stats: Partial<Record<GatewayOutcome, number>> = {};
  const sockets = new Set<Socket>();
  const count = (outcome: GatewayOutcome, details: Record<string, unknown> = {}) => {
    stats[outcome] = (stats[outcome] ?? 0) + 1;
    if (outcome === "routed") logger.debug(details, "connection routed");
    else logger.info({ outcome, ...details }, "connection refused");
  };
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };

  const server: Server = createServer((client) => {
    track(client);
    client.on("error", () => client.destroy());
    const chunks: Buffer[] = [];
    let received = 0;
    const timer = setTimeout(() => {
      count("hello-timeout");
      client.destroy();
    }, helloTimeoutMs);
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      const data = Buffer.concat(chunks, received);
      const sni = parseClientHelloSni(data);
      if (sni.kind === "incomplete" && received <= MAX_CLIENT_HELLO_BYTES + 1024) return;
      clearTimeout(timer);
      client.off("data", onData);
      client.pause();
      if (sni.kind !== "ok") {
        count("not-tls", { reason: sni.kind === "invalid" ? sni.reason : "ClientHello too large" });
        client.destroy();
        return;
      }
      if (sni.serverName === undefined) {
        count("no-sni");
        client.destroy();
        return;
      }
      const target = parseGatewayServerName(sni.serverName, options.domain);
      if (target === undefined) {
        count("foreign-name", { serverName: sni.serverName });
        client.destroy();
        return;
      }
      void forward(client, data, target.appId, target.port, sni.serverName);
    };
    client.on("data", onData);
    client.once("close", () => clearTimeout(timer));
  });

  async function forward(
    client: Socket,
    head: Buffer,
    appId: `0x${string}`,
    port: number,
    serverName: string,
  ) {
    let host: string | undefined;
    try {
      host = await options.route(appId);
    } catch (error) {
      logger.warn({ err: error }, "route lookup failed");
    }
    if (host === undefined) {
      count("unknown-app", { appId });
      client.destroy();
      return;
    }
    if (client.destroyed) return;
    const upstream = connect({ host, port, noDelay: true });
    track(upstream);
    const timer = setTimeout(() => upstream.destroy(new Error("connect timeout")), connectTimeoutMs);
    upstream.once("connect", () => {
      clearTimeout(timer);
      count("routed", { serverName, to: `${host}:${port}` });
      upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on("error", (error) => {
      clearTimeout(timer);
      if (!upstream.readyState || upstream.connecting)
        count("node-unreachable", { appId, error: error.message });
      client.destroy();
    });
    upstream.once("close", () => client.destroy());
    client.once("close", () => upstream.destroy());
    client.setNoDelay(true);
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  logger.info({ listen: `${options.host}:${port}`, domain: options.domain }, "SNI gateway listening");
  return {
    port,
    stats: () => ({ ...stats }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
