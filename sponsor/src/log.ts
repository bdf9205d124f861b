// The sponsorship service's logger: the service kit's pino logger, whose one redaction list covers the
// signer key.
import { createLogger as createServiceLogger, type LogLevel } from "@attestmesh/shared/service/log.ts";
import type { DestinationStream, Logger } from "pino";

export type { Logger } from "pino";

export function createLogger(options: { level?: LogLevel; destination?: DestinationStream } = {}): Logger {
  return createServiceLogger({ ...options, name: "attestmesh-sponsor" });
}
