// Wires the dashboard together: the cluster context (the CLI's --rpc/--network/--cluster), the chain
// reader, the members' health targets, the bundle and the server. It knows nothing of the devnet: the
// devnet passes its own options (dashboard/devnet.ts), so the owner's package never imports dev tooling.

import { clusterContext } from "../owner/context.ts";
import type { CliIo } from "../owner/io.ts";
import { ensureBundle } from "./bundle.ts";
import { createChainReader, type SponsorshipAddresses } from "./chainFacts.ts";
import { fileHealthTargets, type HealthTargets, noHealthTargets } from "./health.ts";
import { createLiveSource } from "./live.ts";
import { checkBindAddress, type DashboardServer, startDashboardServer } from "./server.ts";

export interface DashboardOptions {
  readonly rpc?: string;
  readonly network?: string;
  readonly cluster?: string;
  readonly host?: string;
  readonly port?: number;
  readonly listenAny?: boolean;
  /** A JSON file of app id → /healthz URL (`--health-urls`). */
  readonly healthUrls?: string;
  /** Where the members' /healthz are, when not from a file (the devnet passes its own). */
  readonly healthTargets?: HealthTargets;
  readonly fromBlock?: bigint;
  readonly sponsorship?: SponsorshipAddresses;
  readonly intervalMs?: number;
}

export async function startDashboard(
  io: CliIo,
  options: DashboardOptions,
  signal: AbortSignal,
): Promise<DashboardServer> {
  // Bad input fails before any connection.
  checkBindAddress(options.host ?? "127.0.0.1", options.listenAny === true);
  const healthTargets =
    options.healthUrls !== undefined
      ? fileHealthTargets(options.healthUrls)
      : (options.healthTargets ?? noHealthTargets);
  const ctx = await clusterContext(io, {
    ...(options.rpc === undefined ? {} : { rpc: options.rpc }),
    ...(options.network === undefined ? {} : { network: options.network }),
    ...(options.cluster === undefined ? {} : { cluster: options.cluster }),
  });
  const reader = createChainReader(ctx, {
    ...(options.fromBlock === undefined ? {} : { fromBlock: options.fromBlock }),
    ...(options.sponsorship === undefined ? {} : { sponsorship: options.sponsorship }),
  });
  const source = createLiveSource({
    readChain: () => reader.read(),
    healthTargets,
    ...(options.intervalMs === undefined ? {} : { intervalMs: options.intervalMs }),
  });
  const bundle = await ensureBundle();
  const server = await startDashboardServer({
    source,
    bundle,
    ...(options.host === undefined ? {} : { host: options.host }),
    ...(options.port === undefined ? {} : { port: options.port }),
    ...(options.listenAny === undefined ? {} : { listenAny: options.listenAny }),
  });
  signal.addEventListener("abort", () => void server.close(), { once: true });
  await source.start(signal);
  return server;
}
