// A minimal client for the application API over its unix socket (node:http), for tests.
import { request } from "node:http";

export interface ApiResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: unknown;
}

/** One request; the body is parsed as JSON when the response says it is JSON. */
export function apiRequest(
  socketPath: string,
  method: string,
  path: string,
  options: { body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: options.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        const isJson = String(res.headers["content-type"] ?? "").startsWith("application/json");
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: isJson ? JSON.parse(text) : text,
        });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.end(options.body);
  });
}

export const postJson = (socketPath: string, path: string, value: unknown) =>
  apiRequest(socketPath, "POST", path, {
    body: JSON.stringify(value),
    headers: { "content-type": "application/json" },
  });

export interface NdjsonStream {
  /** Every line so far, parsed. */
  readonly lines: Array<Record<string, unknown>>;
  pause(): void;
  resume(): void;
  close(): void;
  /** Resolves when the server ends the stream. */
  readonly ended: Promise<void>;
}

/** Opens an NDJSON stream; resolves once the response headers arrived (status 200 expected). */
export function openStream(socketPath: string, path: string): Promise<NdjsonStream> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method: "GET", path }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`stream ${path} answered ${res.statusCode}`));
        res.resume();
        return;
      }
      const lines: Array<Record<string, unknown>> = [];
      let partial = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        partial += chunk;
        let newline = partial.indexOf("\n");
        while (newline >= 0) {
          lines.push(JSON.parse(partial.slice(0, newline)) as Record<string, unknown>);
          partial = partial.slice(newline + 1);
          newline = partial.indexOf("\n");
        }
      });
      const ended = new Promise<void>((done) => {
        res.on("end", done);
        res.on("close", done);
      });
      resolve({
        lines,
        pause: () => res.pause(),
        resume: () => res.resume(),
        close: () => req.destroy(),
        ended,
      });
    });
    req.on("error", reject);
    req.end();
  });
}
