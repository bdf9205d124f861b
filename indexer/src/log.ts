// The indexer's logger: the service kit's pino logger (one redaction list for every daemon).
import { createLogger as createServiceLogger, type LogLevel } from "@attestmesh/shared/service/log.ts";
import type { DestinationStream, Logger } from "pino";

export type { Logger } from "pino";

export function createLogger(options: { level?: LogLevel; destination?: DestinationStream } = {}): Logger {
  return createServiceLogger({ ...options, name: "attestmesh-indexer" });
}
