// Removes everything a devnet created — processes, namespaces (with their veths and WireGuard
// interfaces), state — even after a crash left only part of it behind.
import { deleteNamespace, listDevnetNamespaces } from "./netns.ts";
import { stopProcess } from "./processes.ts";
import { clearState, readState } from "./state.ts";

export async function devnetDown(progress: (message: string) => void = () => {}): Promise<void> {
  const state = await readState();
  if (state) {
    // The sidecars first, so each takes its WireGuard interface down while everything it talks to is
    // still there; then every other process at once, the chain last.
    progress("stopping sidecars");
    await Promise.all(state.nodes.map((n) => stopProcess(n.sidecarPid)));
    progress("stopping simulators, the gateway, indexers, sponsorship service and bundler");
    const indexers = [...(state.indexer ? [state.indexer] : []), ...(state.moreIndexers ?? [])];
    await Promise.all(
      [
        ...state.nodes.map((n) => n.simPid),
        ...(state.gatewayPid === undefined ? [] : [state.gatewayPid]),
        ...indexers.flatMap((i) => [i.pid, i.simPid]),
        ...(state.sponsorship ? [state.sponsorship.sponsorPid, state.sponsorship.bundlerPid] : []),
      ].map((pid) => stopProcess(pid)),
    );
    progress("stopping the RPC proxies and the Hardhat node");
    await Promise.all(
      [...(state.rpcProxies ?? []).map((p) => p.pid), state.hardhatPid].map((pid) => stopProcess(pid)),
    );
  }
  const namespaces = await listDevnetNamespaces().catch(() => []);
  if (namespaces.length > 0) progress(`removing ${namespaces.length} network namespaces`);
  await Promise.all(namespaces.map((netns) => deleteNamespace(netns)));
  await clearState();
}
