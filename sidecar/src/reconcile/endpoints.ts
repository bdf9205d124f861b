// Peer endpoints from a JSON file `{ "<appId>": "host:port" }`, re-read on every reconcile. An endpoint
// is routing, not security: WireGuard authenticates each peer by its on-chain key, so a wrong endpoint
// can only stop traffic, never redirect it to someone else. Bad entries are dropped and logged; a file
// that cannot be read or parsed keeps the last good endpoints.
import { readFile } from "node:fs/promises";
import { fatalError } from "../errors.ts";
import type { Logger } from "../log.ts";

/** Endpoints by lowercase app id. */
export type Endpoints = ReadonlyMap<string, string>;

const EMPTY: Endpoints = new Map();

/** `host:port` with a DNS name or IPv4 host, or `[ipv6]:port`; port 1..65535. */
export function isEndpoint(text: string): boolean {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)):(\d{1,5})$/.exec(
    text,
  );
  if (!match) return false;
  const port = Number(match[3]);
  return port >= 1 && port <= 65535;
}

export interface ParsedEndpoints {
  readonly endpoints: Endpoints;
  /** Entries that were dropped, and why. */
  readonly problems: readonly string[];
}

export function parseEndpoints(text: string): ParsedEndpoints {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw fatalError(
      "InvalidEndpointsFile",
      `not valid JSON (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw fatalError("InvalidEndpointsFile", 'not a JSON object like {"0x<appId>": "host:port"}');
  }
  const endpoints = new Map<string, string>();
  const problems: string[] = [];
  for (const [key, value] of Object.entries(json)) {
    if (!/^0x[0-9a-fA-F]{40}$/.test(key)) {
      problems.push(`key ${JSON.stringify(key)} is not an app id (0x + 40 hex digits)`);
    } else if (typeof value !== "string" || !isEndpoint(value)) {
      problems.push(`endpoint of ${key} is ${JSON.stringify(value)}, not "host:port"`);
    } else {
      endpoints.set(key.toLowerCase(), value);
    }
  }
  return { endpoints, problems };
}

export interface EndpointsSource {
  read(): Promise<Endpoints>;
}

/** Reads `path` on every call; logs only when what it finds changes, so a steady file is silent. */
export function createEndpointsFile(path: string | undefined, logger: Logger): EndpointsSource {
  if (path === undefined) return { read: async () => EMPTY };
  let lastGood: Endpoints = EMPTY;
  let lastText: string | undefined;
  let lastProblem: string | undefined;

  const complain = (problem: string) => {
    if (problem !== lastProblem)
      logger.warn({ file: path, problem }, "endpoints file unusable; keeping the last good endpoints");
    lastProblem = problem;
  };

  return {
    async read() {
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? "error";
        complain(code === "ENOENT" ? "missing (not written yet?)" : `unreadable (${code})`);
        return lastGood;
      }
      if (text === lastText) return lastGood;
      try {
        const parsed = parseEndpoints(text);
        for (const problem of parsed.problems)
          logger.warn({ file: path, problem }, "endpoints file entry dropped");
        logger.info({ file: path, endpoints: parsed.endpoints.size }, "endpoints file loaded");
        lastGood = parsed.endpoints;
        lastText = text;
        lastProblem = undefined;
      } catch (error) {
        complain(error instanceof Error ? error.message : String(error));
      }
      return lastGood;
    },
  };
}
