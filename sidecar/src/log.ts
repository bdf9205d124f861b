// The sidecar's logger: the service kit's pino logger (one redaction list for every daemon).
import { createLogger as createServiceLogger, type LogLevel } from "@attestmesh/shared/service/log.ts";
import type { DestinationStream, Logger } from "pino";

export { LOG_LEVELS, type LogLevel, REDACTED_PATHS } from "@attestmesh/shared/service/log.ts";
export type { Logger } from "pino";

export function createLogger(
  options: { level?: LogLevel; name?: string; destination?: DestinationStream } = {},
): Logger {
  return createServiceLogger({ ...options, name: options.name ?? "attestmesh-sidecar" });
}
