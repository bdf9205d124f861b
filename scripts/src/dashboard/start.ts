// Wires the dashboard together: the cluster context (the CLI's --rpc/--network/--cluster, or the
// devnet's state file), the chain reader, the health targets, the bundle and the server.

import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { Address } from "viem";
import { readState } from "../devnet/state.ts";
import { clusterContext } from "../owner/context.ts";
import type { CliIo } from "../owner/io.ts";
import { ensureBundle } from "./bundle.ts";
import { createChainReader, type SponsorshipAddresses } from "./chainFacts.ts";
import { devnetHealthTargets, fileHealthTargets, type HealthTargets, noHealthTargets } from "./health.ts";
import { createLiveSource } from "./live.ts";
import { checkBindAddress, type DashboardServer, startDashboardServer } from "./server.ts";

export interface DashboardOptions {
  readonly rpc?: string;
  readonly network?: string;
  readonly cluster?: string;
  /** Read the chain, cluster, health URLs and paymaster from the running devnet's state file. */
  readonly devnet?: boolean;
  readonly host?: string;
  readonly port?: number;
  readonly listenAny?: boolean;
  readonly healthUrls?: string;
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
  let chainOptions: { rpc?: string; network?: string; cluster?: string } = {};
  let healthTargets: HealthTargets = noHealthTargets;
  let fromBlock = options.fromBlock;
  let sponsorship = options.sponsorship;
  if (options.devnet) {
    const state = await readState();
    if (state === undefined) {
      throw new AttestmeshError("no devnet is running here; start one with `npm run devnet`", {
        code: "DevnetNotRunning",
      });
    }
    chainOptions = { rpc: state.rpcUrl, cluster: state.diamond };
    healthTargets = devnetHealthTargets;
    fromBlock ??= BigInt(state.deployBlock);
    if (state.sponsorship !== undefined) {
      sponsorship ??= {
        entryPoint: state.sponsorship.entryPoint,
        paymaster: state.sponsorship.paymaster,
        accountFactory: state.sponsorship.accountFactory as Address,
      };
    }
  } else {
    chainOptions = {
      ...(options.rpc === undefined ? {} : { rpc: options.rpc }),
      ...(options.network === undefined ? {} : { network: options.network }),
      ...(options.cluster === undefined ? {} : { cluster: options.cluster }),
    };
  }
  if (options.healthUrls !== undefined) healthTargets = fileHealthTargets(options.healthUrls);
  const ctx = await clusterContext(io, chainOptions);
  const reader = createChainReader(ctx, {
    ...(fromBlock === undefined ? {} : { fromBlock }),
    ...(sponsorship === undefined ? {} : { sponsorship }),
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
