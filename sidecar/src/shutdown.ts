// The sidecar's shutdown registry is the service kit's (one AbortSignal, closers in reverse order).
export { createShutdown, exitOnSignals, type Shutdown } from "@attestmesh/shared/service/shutdown.ts";
