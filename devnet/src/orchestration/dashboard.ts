// The devnet's side of the dashboard (dev tooling, so it lives with the devnet). `npm run devnet` starts the dashboard for the devnet it runs and prints its URL; the
// nodes' /healthz URLs are re-read from the state file on every poll, so added nodes appear. When the
// dashboard cannot start (its port is taken, say) the devnet runs on without it.

import type { HealthTargets } from "@attestmesh/scripts/dashboard/health.ts";
import { DEFAULT_PORT } from "@attestmesh/scripts/dashboard/server.ts";
import { type DashboardOptions, startDashboard } from "@attestmesh/scripts/dashboard/start.ts";
import { processIo } from "@attestmesh/scripts/owner/io.ts";
import { readState } from "./state.ts";

export const devnetHealthTargets: HealthTargets = async () => {
  const state = await readState();
  return new Map((state?.nodes ?? []).map((n) => [n.appId.toLowerCase(), n.healthUrl]));
};

/** The dashboard options for the devnet running here: its chain, cluster, nodes and paymaster. */
export async function devnetDashboardOptions(): Promise<DashboardOptions> {
  const state = await readState();
  if (state === undefined) throw new Error("no devnet is running here; start one with `npm run devnet`");
  return {
    rpc: state.rpcUrl,
    cluster: state.diamond,
    fromBlock: BigInt(state.deployBlock),
    healthTargets: devnetHealthTargets,
    ...(state.sponsorship === undefined
      ? {}
      : {
          sponsorship: {
            entryPoint: state.sponsorship.entryPoint,
            paymaster: state.sponsorship.paymaster,
            accountFactory: state.sponsorship.accountFactory,
          },
        }),
  };
}

/** Starts the devnet's dashboard until SIGINT/SIGTERM; reports its URL (or why not) through `say`. */
export async function startDevnetDashboard(say: (line: string) => void, port = DEFAULT_PORT): Promise<void> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    const options = await devnetDashboardOptions();
    const server = await startDashboard(processIo(), { ...options, port }, controller.signal);
    say(`dashboard: ${server.url} (read-only)`);
  } catch (error) {
    controller.abort();
    say(`dashboard not started: ${(error as Error).message.split("\n")[0]}`);
  }
}
