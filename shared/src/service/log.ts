// Structured logs (pino, JSON lines on stdout) with one redaction list for every daemon. Secrets live
// in `Secret` boxes that print as "[secret]"; the field names below are censored as a second line of
// defence. URLs carry provider API keys in their userinfo, path and query (and viem's errors repeat
// the full URL in their message, their `url` field and their causes), so every URL a log line holds
// is cut to its scheme and host: error serializers do it field by field, and a last pass over each
// finished line catches any URL that reached it some other way (a message, a child binding).
import { type DestinationStream, type Logger, pino } from "pino";

export type { Logger } from "pino";

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const SECRET_FIELDS = ["gasKey", "signerKey", "privateKey", "secretKey", "secret", "key"] as const;

/** Field names that must never carry a value into a log line, at the top level and one level down. */
export const REDACTED_PATHS: readonly string[] = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((field) => `*.${field}`),
];

// A scheme, "://", then everything up to whitespace, a quote, an angle bracket or a JSON escape.
const URL_IN_TEXT = /\b([a-z][a-z0-9+.-]*):\/\/[^\s"'<>\\`]+/gi;
const TRAILING_PUNCTUATION = /[.,;:!?)\]}]+$/;

/**
 * A URL as it may be logged: scheme and host (with the port), without userinfo, path, query or
 * fragment, e.g. `https://base-sepolia.example.com`. Text that is not a URL becomes `[not a URL]`.
 */
export function redactUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1];
    return scheme === undefined ? "[not a URL]" : `${scheme.toLowerCase()}://[redacted]`;
  }
  return url.host === "" ? `${url.protocol}//[redacted]` : `${url.protocol}//${url.host}`;
}

/** `text` with every URL in it cut to its scheme and host (`redactUrl`); other text is kept. */
export function scrubUrls(text: string): string {
  if (!text.includes("://")) return text;
  return text.replace(URL_IN_TEXT, (match) => {
    const trailing = TRAILING_PUNCTUATION.exec(match)?.[0] ?? "";
    return redactUrl(match.slice(0, match.length - trailing.length)) + trailing;
  });
}

/** Fields of an error object never logged: viem's request bodies and response headers. */
const DROPPED_ERROR_FIELDS = new Set(["body", "headers", "request", "response", "config"]);

function scrubValue(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value === "string") return scrubUrls(value);
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Error) return serializeError(value, depth, seen);
  if (seen.has(value) || depth > 6) return "[nested]";
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, depth + 1, seen));
  if (value instanceof URL) return redactUrl(value.href);
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = scrubValue(v, depth + 1, seen);
  return out;
}

/**
 * An error as a log line may hold it: pino's standard serialization (type, message, stack, causes,
 * own fields), with every URL in every string cut to scheme and host, a `url` field likewise, and
 * request bodies and response headers dropped.
 */
export function serializeError(error: unknown, depth = 0, seen: WeakSet<object> = new WeakSet()): unknown {
  if (!(error instanceof Error)) return scrubValue(error, depth, seen);
  if (seen.has(error) || depth > 6) return "[nested error]";
  seen.add(error);
  const standard = pino.stdSerializers.err(error) as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(standard)) {
    if (DROPPED_ERROR_FIELDS.has(k)) continue;
    if (k === "cause" && v instanceof Error) out[k] = serializeError(v, depth + 1, seen);
    else out[k] = scrubValue(v, depth + 1, seen);
  }
  return out;
}

/**
 * A configuration as its start-up log line shows it: URL-valued strings cut to scheme and host,
 * `Secret` boxes as "set", unset values as "unset". Other values are kept as they are.
 */
export function loggableConfig(config: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    if (v === undefined) out[k] = "unset";
    else if (typeof v === "string" && /^[a-z][a-z0-9+.-]*:\/\//i.test(v)) out[k] = redactUrl(v);
    else if (
      typeof v === "object" &&
      v !== null &&
      typeof (v as { reveal?: unknown }).reveal === "function"
    ) {
      out[k] = "set";
    } else out[k] = typeof v === "string" ? scrubUrls(v) : v;
  }
  return out;
}

export interface LoggerOptions {
  /** The daemon's name, e.g. `attestmesh-sidecar`. */
  readonly name: string;
  readonly level?: LogLevel | undefined;
  readonly destination?: DestinationStream | undefined;
}

export function createLogger(options: LoggerOptions): Logger {
  const errors = (value: unknown) => serializeError(value);
  const settings = {
    level: options.level ?? "info",
    name: options.name,
    redact: { paths: [...REDACTED_PATHS], censor: "[redacted]" },
    serializers: { err: errors, error: errors, cause: errors },
    // The last pass: whatever reached the finished line (a message, a binding, a field no serializer
    // knows) loses its URL paths, queries and credentials too.
    hooks: { streamWrite: scrubUrls },
  };
  return options.destination === undefined ? pino(settings) : pino(settings, options.destination);
}
