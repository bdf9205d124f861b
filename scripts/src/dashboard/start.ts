// Wires the dashboard together: the cluster context (the CLI's --rpc/--network/--cluster), the chain
// reader, the members' health targets, the bundle and the server. It knows nothing of the devnet: the
// devnet passes its own options (dashboard/devnet.ts), so the owner's package never imports dev tooling.

import { DEFAULT_PCCS_URL, pccsCollateral } from "@attestmesh/shared/attestation/collateral.ts";
import { createPublicClient } from "viem";
import { verificationReport } from "../owner/attest.ts";
import { type ClusterContext, clusterContext } from "../owner/context.ts";
import type { CliIo } from "../owner/io.ts";
import { createAttestationChecker } from "./attestation.ts";
import { ensureBundle } from "./bundle.ts";
import { createChainReader, type SponsorshipAddresses } from "./chainFacts.ts";
import { fileHealthTargets, type HealthTargets, noHealthTargets } from "./health.ts";
import { pollIndexers } from "./indexers.ts";
import { createLiveSource } from "./live.ts";
import { quorumTransport } from "./quorum.ts";
import { checkBindAddress, type DashboardServer, startDashboardServer } from "./server.ts";

export interface DashboardOptions {
  readonly rpc?: string;
  /** More RPC URLs of the same chain: with them every read needs `quorum` matching answers. */
  readonly moreRpcs?: readonly string[];
  /** Matching answers a read needs (default: a strict majority of the providers). */
  readonly quorum?: number;
  /** PCCS for the collateral of real TDX quotes (default: ATTESTMESH_PCCS_URL, else Phala's). */
  readonly pccs?: string;
  /** How often each member's attestation is checked; default 60 s. */
  readonly attestEveryMs?: number;
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
  const first = await clusterContext(io, {
    ...(options.rpc === undefined ? {} : { rpc: options.rpc }),
    ...(options.network === undefined ? {} : { network: options.network }),
    ...(options.cluster === undefined ? {} : { cluster: options.cluster }),
  });
  let ctx: ClusterContext = first;
  let reads = "one RPC (pass --rpc more than once for quorum reads)";
  if ((options.moreRpcs?.length ?? 0) > 0) {
    const q = quorumTransport([first.net.rpcUrl, ...options.moreRpcs!], options.quorum);
    const client = createPublicClient({ chain: first.net.chain, transport: q.transport });
    // Every provider must serve the chain the first one does (a quorum over two chains is no quorum).
    const chainId = await client.getChainId();
    if (chainId !== first.net.chain.id) {
      throw new Error(`the RPC providers do not agree that they serve chain ${first.net.chain.id}`);
    }
    ctx = { ...first, net: { ...first.net, transport: q.transport, client } };
    reads = `quorum reads: ${q.quorum} of ${q.providers} RPC providers must agree, at one block`;
  }
  const reader = createChainReader(ctx, {
    reads,
    ...(options.fromBlock === undefined ? {} : { fromBlock: options.fromBlock }),
    ...(options.sponsorship === undefined ? {} : { sponsorship: options.sponsorship }),
  });
  const collateral = pccsCollateral({ url: options.pccs ?? io.env.ATTESTMESH_PCCS_URL ?? DEFAULT_PCCS_URL });
  const attest = createAttestationChecker({
    verify: (evidence, member) =>
      verificationReport(ctx, evidence, { collateral, at: Math.floor(Date.now() / 1000), member }),
  });
  const source = createLiveSource({
    readChain: () => reader.read(),
    healthTargets,
    attest,
    pollIndexers: (records) => pollIndexers(records),
    ...(options.attestEveryMs === undefined ? {} : { attestEveryMs: options.attestEveryMs }),
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
