// Structured logs (pino, JSON lines on stdout). Secrets never reach a log line: key material lives in
// `Secret` boxes that print as "[secret]", and the paths below are censored as a second line of defence.
import { type DestinationStream, type Logger, pino } from "pino";

export type { Logger } from "pino";

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Field names that must never carry a value into a log line. */
export const REDACTED_PATHS: readonly string[] = [
  "gasKey",
  "privateKey",
  "secret",
  "key",
  "*.gasKey",
  "*.privateKey",
  "*.secret",
  "*.key",
];

export function createLogger(
  options: { level?: LogLevel; name?: string; destination?: DestinationStream } = {},
): Logger {
  const settings = {
    level: options.level ?? "info",
    name: options.name ?? "attestmesh-sidecar",
    redact: { paths: [...REDACTED_PATHS], censor: "[redacted]" },
    serializers: { err: pino.stdSerializers.err },
  };
  return options.destination === undefined ? pino(settings) : pino(settings, options.destination);
}
