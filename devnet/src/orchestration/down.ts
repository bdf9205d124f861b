// Removes everything a devnet created — processes, namespaces (with their veths and WireGuard
// interfaces), state — even after a crash left only part of it behind.
import { deleteNamespace, listDevnetNamespaces } from "./netns.ts";
import { stopProcess } from "./processes.ts";
import { clearState, readState } from "./state.ts";

export async function devnetDown(progress: (message: string) => void = () => {}): Promise<void> {
  const state = await readState();
  if (state) {
    progress("stopping sidecars and simulators");
    await Promise.all(state.nodes.map((n) => stopProcess(n.sidecarPid)));
    await Promise.all(state.nodes.map((n) => stopProcess(n.simPid)));
    if (state.gatewayPid !== undefined) await stopProcess(state.gatewayPid);
    if (state.indexer) {
      progress("stopping the indexer");
      await stopProcess(state.indexer.pid);
      await stopProcess(state.indexer.simPid);
    }
    for (const more of state.moreIndexers ?? []) {
      await stopProcess(more.pid);
      await stopProcess(more.simPid);
    }
    if (state.sponsorship) {
      progress("stopping the sponsorship service and the bundler");
      await stopProcess(state.sponsorship.sponsorPid);
      await stopProcess(state.sponsorship.bundlerPid);
    }
    for (const proxy of state.rpcProxies ?? []) await stopProcess(proxy.pid);
    progress("stopping the Hardhat node");
    await stopProcess(state.hardhatPid);
  }
  const namespaces = await listDevnetNamespaces().catch(() => []);
  if (namespaces.length > 0) progress(`removing ${namespaces.length} network namespaces`);
  for (const netns of namespaces) await deleteNamespace(netns);
  await clearState();
}
