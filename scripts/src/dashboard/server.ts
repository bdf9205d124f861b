// The dashboard's HTTP server: the page, its bundle, and a read-only JSON API (GET /api/view, and
// GET /api/events, a server-sent event stream of views). It binds loopback unless told otherwise, answers
// only requests addressed to the host it listens on (a web page elsewhere cannot reach it through DNS
// rebinding), and every method other than GET and HEAD is 405: writes stay in the CLI.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isIP } from "node:net";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { Bundle } from "./bundle.ts";
import type { DashboardSource, LiveState } from "./live.ts";

export const DEFAULT_PORT = 8787;

export interface DashboardServerOptions {
  readonly source: DashboardSource;
  readonly bundle: Pick<Bundle, "html" | "js" | "css">;
  readonly host?: string;
  readonly port?: number;
  /** Allow a non-loopback address: the page then reaches anyone who reaches the port. */
  readonly listenAny?: boolean;
}

export interface DashboardServer {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "::1", "[::1]"]);

export function isLoopback(host: string): boolean {
  if (LOOPBACK_NAMES.has(host.toLowerCase())) return true;
  return isIP(host) === 4 && host.startsWith("127.");
}

/** Refuses a non-loopback bind address unless `listenAny` is set. */
export function checkBindAddress(host: string, listenAny: boolean): void {
  if (isLoopback(host) || listenAny) return;
  throw new AttestmeshError(
    `refusing to serve the dashboard on ${host}: it is not a loopback address. The page shows the whole cluster to whoever reaches it; pass --listen-any to do it anyway`,
    { code: "NonLoopbackBind", details: { host } },
  );
}

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, head = false): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    "content-type": type,
    "content-length": Buffer.byteLength(body),
  });
  res.end(head ? undefined : body);
}

const stateJson = (state: LiveState) =>
  JSON.stringify({ view: state.view ?? null, error: state.error ?? null });

export async function startDashboardServer(options: DashboardServerOptions): Promise<DashboardServer> {
  const host = options.host ?? "127.0.0.1";
  const listenAny = options.listenAny === true;
  checkBindAddress(host, listenAny);
  const { source, bundle } = options;
  const streams = new Set<ServerResponse>();
  let allowedHosts: Set<string> = new Set();

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") {
      res.writeHead(405, { ...SECURITY_HEADERS, allow: "GET, HEAD", "content-type": "text/plain" });
      res.end("the dashboard is read-only: use the attestmesh CLI to change the cluster\n");
      return;
    }
    // DNS rebinding: a hostile page's name resolving to 127.0.0.1 still sends its own name as Host.
    if (!listenAny && !allowedHosts.has((req.headers.host ?? "").toLowerCase())) {
      send(res, 421, "text/plain", "misdirected request: open the dashboard by its loopback address\n");
      return;
    }
    const head = method === "HEAD";
    const path = new URL(req.url ?? "/", "http://dashboard").pathname;
    switch (path) {
      case "/":
      case "/index.html":
        return send(res, 200, "text/html; charset=utf-8", bundle.html, head);
      case "/assets/app.js":
        return send(res, 200, "text/javascript; charset=utf-8", bundle.js, head);
      case "/assets/app.css":
        return send(res, 200, "text/css; charset=utf-8", bundle.css, head);
      case "/api/view":
        return send(res, 200, "application/json", stateJson(source.current()), head);
      case "/api/events": {
        res.writeHead(200, {
          ...SECURITY_HEADERS,
          "content-type": "text/event-stream",
          connection: "keep-alive",
        });
        if (head) return void res.end();
        res.write(`event: view\ndata: ${stateJson(source.current())}\n\n`);
        streams.add(res);
        req.on("close", () => streams.delete(res));
        return;
      }
      default:
        return send(res, 404, "text/plain", "not found\n", head);
    }
  };

  const server = createServer(handle);
  const unsubscribe = source.subscribe((state) => {
    const frame = `event: view\ndata: ${stateJson(state)}\n\n`;
    for (const stream of streams) stream.write(frame);
  });
  const keepAlive = setInterval(() => {
    for (const stream of streams) stream.write(": keep-alive\n\n");
  }, 15_000);
  keepAlive.unref();

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? DEFAULT_PORT, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  allowedHosts = new Set([`${shown}:${port}`, `localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]);
  return {
    url: `http://${shown}:${port}/`,
    server,
    async close() {
      unsubscribe();
      clearInterval(keepAlive);
      for (const stream of streams) stream.end();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
