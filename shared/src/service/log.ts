// Structured logs (pino, JSON lines on stdout) with one redaction list for every daemon. Secrets live
// in `Secret` boxes that print as "[secret]"; the paths below are censored as a second line of defence.
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

export interface LoggerOptions {
  /** The daemon's name, e.g. `attestmesh-sidecar`. */
  readonly name: string;
  readonly level?: LogLevel | undefined;
  readonly destination?: DestinationStream | undefined;
}

export function createLogger(options: LoggerOptions): Logger {
  const settings = {
    level: options.level ?? "info",
    name: options.name,
    redact: { paths: [...REDACTED_PATHS], censor: "[redacted]" },
    serializers: { err: pino.stdSerializers.err },
  };
  return options.destination === undefined ? pino(settings) : pino(settings, options.destination);
}
