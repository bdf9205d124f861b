// Structured logs (pino, JSON lines on stdout). The signing key's secret never reaches a log line.
import { type DestinationStream, type Logger, pino } from "pino";

export type { Logger } from "pino";

export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  const settings = {
    level: options.level ?? "info",
    name: "attestmesh-indexer",
    redact: { paths: ["secret", "*.secret", "secretKey", "*.secretKey"], censor: "[redacted]" },
    serializers: { err: pino.stdSerializers.err },
  };
  return options.destination === undefined ? pino(settings) : pino(settings, options.destination);
}
