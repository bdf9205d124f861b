// A pass-through JSON-RPC proxy: real HTTP in front of an upstream node, so the devnet gives every
// sidecar several RPC providers and the quorum path is the one the devnet exercises. It can be told
// to misbehave (lies.ts): lie about membership, hide an eviction, forge a MessageSent log, answer for
// another chain, be down or rate-limited. Tests switch its behaviour with
// `POST /__proxy/behaviour {"behaviour": "...", ...}` and read what it served at `GET /__proxy/stats`.
// Development tooling: it trusts whoever reaches its control path, and binds where it is told.
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { BEHAVIOURS, type Behaviour, type ForgedLog, rewrite } from "./lies.ts";

export const CONTROL_PATH = "/__proxy/behaviour";
export const STATS_PATH = "/__proxy/stats";

export interface JsonRpcRequest {
  readonly jsonrpc: "2.0";
  readonly id: number | string | null;
  readonly method: string;
  readonly params?: unknown[];
}

export interface JsonRpcResponse {
  readonly jsonrpc: "2.0";
  readonly id: number | string | null;
  readonly result?: unknown;
  readonly error?: unknown;
}

export interface ProxySettings {
  readonly behaviour: Behaviour;
  /** The log `forge-message` adds to a matching eth_getLogs answer. */
  readonly forgedLog?: ForgedLog | undefined;
}

export interface RpcProxy {
  readonly url: string;
  settings(): ProxySettings;
  set(settings: ProxySettings): void;
  /** Requests served, by method, and answers the proxy changed. */
  stats(): { readonly calls: Readonly<Record<string, number>>; readonly rewritten: number };
  close(): Promise<void>;
}

async function body(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** POSTs `text` to `url` over a kept-alive connection of `agent`; the upstream's status and body bytes. */
function post(url: URL, agent: Agent, text: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      url,
      {
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(text) },
      },
      (incoming) => {
        const chunks: Buffer[] = [];
        incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
        incoming.on("end", () =>
          resolve({ status: incoming.statusCode ?? 502, body: Buffer.concat(chunks) }),
        );
        incoming.on("error", reject);
      },
    );
    outgoing.on("error", reject);
    outgoing.end(text);
  });
}

function json(response: ServerResponse, status: number, value: unknown): void {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(value));
}

export function parseSettings(value: unknown): ProxySettings {
  const v = value as { behaviour?: unknown; forgedLog?: unknown } | null;
  if (typeof v?.behaviour !== "string" || !(BEHAVIOURS as readonly string[]).includes(v.behaviour)) {
    throw new Error(`behaviour must be one of ${BEHAVIOURS.join(", ")}`);
  }
  const behaviour = v.behaviour as Behaviour;
  if (behaviour === "forge-message" && (typeof v.forgedLog !== "object" || v.forgedLog === null)) {
    throw new Error("forge-message needs forgedLog {address, topics, data}");
  }
  return { behaviour, forgedLog: v.forgedLog as ForgedLog | undefined };
}

/** Starts a proxy in front of `upstream` (an http URL) on host:port (port 0: a free one). */
export async function startRpcProxy(options: {
  readonly upstream: string;
  readonly host?: string;
  readonly port?: number;
  readonly settings?: ProxySettings;
  readonly logger?: Logger;
}): Promise<RpcProxy> {
  let settings: ProxySettings = options.settings ?? { behaviour: "honest" };
  const calls = new Map<string, number>();
  let rewritten = 0;

  // Node's http client on kept-alive connections, not fetch: at the moment of a join every sidecar's
  // reads pass through here, and fetch's streams cost this process more CPU than the upstream's answer
  // (issue 15's profile: the two proxies, busier than any sidecar).
  const upstream = new URL(options.upstream);
  const agent = new Agent({ keepAlive: true });
  const forward = async (payload: unknown): Promise<unknown> =>
    JSON.parse((await post(upstream, agent, JSON.stringify(payload))).body.toString("utf8"));
  const upstreamCall = async (method: string, params: unknown[]): Promise<unknown> => {
    const reply = (await forward({ jsonrpc: "2.0", id: 1, method, params })) as JsonRpcResponse;
    if (reply.error !== undefined) throw new Error(`upstream ${method} failed`);
    return reply.result;
  };

  async function serve(request: JsonRpcRequest): Promise<JsonRpcResponse> {
    calls.set(request.method, (calls.get(request.method) ?? 0) + 1);
    const honest = (await forward(request)) as JsonRpcResponse;
    if (settings.behaviour === "honest" || honest.error !== undefined) return honest;
    const changed = await rewrite(settings, request, honest, upstreamCall);
    if (changed !== honest) rewritten += 1;
    return changed;
  }

  const server: Server = createServer((request, response) => {
    void (async () => {
      try {
        const text = await body(request);
        if (request.url === CONTROL_PATH && request.method === "POST") {
          try {
            settings = parseSettings(JSON.parse(text));
          } catch (error) {
            json(response, 400, { error: (error as Error).message });
            return;
          }
          options.logger?.info({ behaviour: settings.behaviour }, "rpc proxy behaviour changed");
          json(response, 200, { behaviour: settings.behaviour });
          return;
        }
        if (request.url === STATS_PATH) {
          json(response, 200, { calls: Object.fromEntries(calls), rewritten, behaviour: settings.behaviour });
          return;
        }
        if (settings.behaviour === "down") {
          request.socket.destroy();
          return;
        }
        if (settings.behaviour === "rate-limited") {
          json(response, 429, { jsonrpc: "2.0", id: null, error: { code: -32005, message: "rate limited" } });
          return;
        }
        const parsed = JSON.parse(text) as JsonRpcRequest | JsonRpcRequest[];
        if (settings.behaviour === "honest") {
          // Honest: the request as it came, in one upstream call, and the answer's bytes as they came
          // back (no per-element calls for a batch, no parsing and re-encoding of the answer).
          for (const r of Array.isArray(parsed) ? parsed : [parsed])
            calls.set(r.method, (calls.get(r.method) ?? 0) + 1);
          const reply = await post(upstream, agent, text);
          response.writeHead(reply.status, { "content-type": "application/json" });
          response.end(reply.body);
          return;
        }
        const reply = Array.isArray(parsed) ? await Promise.all(parsed.map(serve)) : await serve(parsed);
        json(response, 200, reply);
      } catch (error) {
        options.logger?.warn({ err: error }, "rpc proxy request failed");
        if (!response.headersSent) json(response, 502, { error: "upstream failed" });
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    settings: () => settings,
    set(next) {
      settings = next;
    },
    stats: () => ({ calls: Object.fromEntries(calls), rewritten }),
    close: () =>
      new Promise<void>((resolve) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Switches a running proxy's behaviour over HTTP (e.g. a devnet proxy from a test). */
export async function setProxyBehaviour(url: string, settings: ProxySettings): Promise<void> {
  const reply = await fetch(new URL(CONTROL_PATH, url), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(settings),
  });
  if (!reply.ok) throw new Error(`the proxy at ${url} refused the behaviour: ${await reply.text()}`);
}
