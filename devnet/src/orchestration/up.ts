// `devnet up`: a Hardhat node, the cluster deployed and allowlisted by its owner, and N nodes each in
// its own network namespace with a dstack simulator and a sidecar, waited on until every one is healthy.

import { mkdir } from "node:fs/promises";
import { join, relative } from "node:path";
import { readArtifact } from "@attestmesh/scripts/deploy/artifacts.ts";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { GuestApi } from "@attestmesh/shared/service/pinned.ts";
import { bundleSidecar, DIST_DIR } from "@attestmesh/sidecar/build/bundle.ts";
import type { Hex } from "viem";
import { createKmsRoot } from "../dstack-sim/simulator.ts";
import { buildUnlessUnchanged } from "./buildCache.ts";
import { type DevnetClients, deployDevnetCluster, devnetClients, devnetTrust } from "./chain.ts";
import { devnetDown } from "./down.ts";
import { run } from "./exec.ts";
import { devnetStatus, readHealth } from "./health.ts";
import { startIndexer } from "./indexer.ts";
import { createHub, deleteNamespace } from "./netns.ts";
import { devnetComposeHash, launchNode, type PreparedNode, prepareNode, startNode } from "./nodes.ts";
import { preflight } from "./preflight.ts";
import { REPO_ROOT, spawnDetached, stopProcess, waitFor } from "./processes.ts";
import { launchDevnetSponsorship } from "./sponsorship.ts";
import {
  DEVNET_DIR,
  type DevnetNode,
  type DevnetState,
  type DevnetTransport,
  GATEWAY_DOMAIN,
  GATEWAY_FAULTS_FILE,
  GATEWAY_PORT,
  GATEWAY_ROUTES_FILE,
  HUB_NETNS,
  MESH_CIDR,
  RPC_PORT,
  RPC_PROXY_PORTS,
  readState,
  UNDERLAY_HUB_IP,
  writeEndpoints,
  writeGatewayRoutes,
  writeState,
} from "./state.ts";

export interface UpOptions {
  readonly nodes: number;
  readonly timeoutMs: number;
  readonly progress: (message: string) => void;
  /** How sidecars reach each other; default auto (the gateway, upgraded to direct UDP where it works). */
  readonly transport?: DevnetTransport;
  /** Drop UDP between node namespaces (nftables), as dstack does: only the gateway path works. */
  readonly blockUdp?: boolean;
  /** Start and register the indexer (default true); without it the sidecars poll only. */
  readonly indexer?: boolean;
  /** How many indexers to start and register (default 1); sidecars subscribe to two at once. */
  readonly indexers?: number;
  /** TEST ONLY: start the indexer lying, suppressing every log of these (future) nodes, e.g. "node4". */
  readonly indexerSuppressNodes?: readonly string[];
  /** Nodes hold no ETH and send ERC-4337 operations the operator's paymaster pays (default true). */
  readonly sponsored?: boolean;
  /** The dstack guest API the cluster's compose pins for every node and the indexer (default v0). */
  readonly guestApi?: GuestApi;
  /**
   * The sidecars' ATTESTMESH_CONFIRMATIONS (default 0). Above 0 the Hardhat node also mines a block
   * every second besides each transaction, so head − confirmations moves while nothing is sent.
   */
  readonly confirmations?: number;
}

export async function devnetUp(options: UpOptions) {
  const { progress } = options;
  await preflight(progress);
  if (await readState()) {
    progress("removing the previous devnet");
  }
  await devnetDown(progress);

  // The chain starts first: the Hardhat node and the RPC proxies boot while the contracts and the
  // sidecar are built, which the chain does not need until the cluster is deployed.
  const rpcUrl = `http://127.0.0.1:${RPC_PORT}`;
  progress(`starting a Hardhat node on ${rpcUrl}`);
  const hardhatPid = spawnDetached(
    join(REPO_ROOT, "node_modules/.bin/hardhat"),
    ["node", "--hostname", "127.0.0.1", "--port", String(RPC_PORT)],
    {
      logFile: join(DEVNET_DIR, "hardhat-node.log"),
      env: { ...process.env, HARDHAT_DISABLE_TELEMETRY_PROMPT: "true" },
    },
  );
  const rpcProxies = RPC_PROXY_PORTS.map((port) => {
    const url = `http://127.0.0.1:${port}`;
    const pid = spawnDetached(
      process.execPath,
      [
        join(REPO_ROOT, "devnet/src/rpc-proxy/main.ts"),
        "--upstream",
        rpcUrl,
        "--listen",
        `127.0.0.1:${port}`,
      ],
      { logFile: join(DEVNET_DIR, `rpc-proxy-${port}.log`) },
    );
    return { url, pid };
  });
  const [chain, ...builds] = await Promise.allSettled([
    waitForChain(rpcUrl, rpcProxies),
    buildContracts(progress),
    buildSidecar(progress),
  ]);
  const failed = [chain, ...builds].find((r) => r.status === "rejected");
  if (failed !== undefined || chain.status === "rejected") {
    // Nothing records these processes yet, so `devnet down` would not find them.
    await Promise.all([hardhatPid, ...rpcProxies.map((p) => p.pid)].map((pid) => stopProcess(pid)));
    throw (failed as PromiseRejectedResult).reason;
  }
  const chainId = chain.value;
  const clients = devnetClients(rpcUrl, chainId);
  // Hardhat's `node` task logs every JSON-RPC request it serves, in the one process every sidecar,
  // proxy and the indexer read from, on the cores the devnet measures (issue 15). Off unless asked for.
  if (process.env.ATTESTMESH_DEVNET_CHAIN_LOG !== "1") await clients.test.setLoggingEnabled(false);
  progress(
    `RPC providers for every sidecar: ${[rpcUrl, ...rpcProxies.map((p) => p.url)].join(", ")} (quorum 2)`,
  );

  progress(`dstack simulators serve guest API v0 and v1; the compose pins ${options.guestApi ?? "v0"}`);
  progress("deploying the cluster and allowlisting the devnet KMS root, compose hash and any device");
  const kmsRoot = createKmsRoot().address;
  // Every node runs one compose: it pins the guest API, the chain and its providers, and the trust values
  // (the cluster among them), so its hash is known once the cluster is deployed.
  const nodeCompose: { hash?: Hex } = {};
  const deployed = await deployDevnetCluster(clients, {
    kmsRoot,
    meshCidr: MESH_CIDR,
    composeHash: async (diamond) => {
      const trust = await devnetTrust(clients, {
        chainId,
        diamond,
        kmsRoot,
        rpcUrl,
        guestApi: options.guestApi,
      });
      const providers = [rpcUrl, ...rpcProxies.map((p) => p.url)];
      nodeCompose.hash = devnetComposeHash(options.guestApi ?? "v0", { ...trust, providers });
      return nodeCompose.hash;
    },
  });
  const composeHash = nodeCompose.hash;
  if (composeHash === undefined) throw new Error("the devnet cluster was deployed without its compose hash");
  let state: DevnetState = {
    rpcUrl,
    chainId,
    diamond: deployed.diamond,
    deployBlock: deployed.deployBlock.toString(),
    composeHash,
    kmsRoot,
    hardhatPid,
    rpcProxies,
    nodes: [],
    transport: options.transport ?? "auto",
    blockUdp: options.blockUdp ?? false,
    guestApi: options.guestApi ?? "v0",
    ...(options.confirmations ? { confirmations: options.confirmations } : {}),
  };
  if (options.confirmations) {
    progress(`sidecars follow at head − ${options.confirmations}; Hardhat mines a block every second`);
    await clients.client.request({ method: "evm_setIntervalMining", params: [1000] } as never);
  }
  await writeState(state);

  progress("creating the network hub");
  await createHub();
  progress(`starting the SNI gateway on ${UNDERLAY_HUB_IP}:${GATEWAY_PORT} (*.${GATEWAY_DOMAIN})`);
  await writeGatewayRoutes([]);
  const gatewayPid = spawnGateway();
  state = { ...state, gatewayPid };
  await writeState(state);
  // Namespaces and simulators need no chain state but the cluster's: they come up while the sponsorship
  // and the indexer start. Nothing joins the cluster until both are in place.
  progress(`preparing ${options.nodes} node namespaces and dstack simulators`);
  const preparing = prepareNodes(clients, state, options.nodes);
  try {
    state = await startServices(clients, state, options);
  } catch (error) {
    await preparing.then(
      (nodes) => Promise.all(nodes.map((node) => stopProcess(node.simPid))),
      () => undefined,
    );
    throw error;
  }
  const prepared = await preparing;
  for (const node of prepared) {
    progress(`starting ${node.name}`);
    state = await recordNode(state, await launchNode(clients, state, node));
    // One registration at a time, so node I is member I with mesh IP 10.77.0.I, as the README says.
    if (node.index < options.nodes) await waitRegistered(state.nodes.at(-1)!, options.timeoutMs);
  }
  await waitHealthy(state, state.nodes, options.timeoutMs, progress);
  return devnetStatus(state);
}

/**
 * The sponsorship (unless funded keys) and the indexers (unless none), each recorded once started. The
 * indexers start while the bundler boots: they need the chain and the cluster, not the bundler, and
 * nothing sends a UserOperation before the nodes start, after both.
 */
async function startServices(clients: DevnetClients, initial: DevnetState, options: UpOptions) {
  const { progress } = options;
  let state = initial;
  let sponsorshipReady: Promise<void> = Promise.resolve();
  if (options.sponsored ?? true) {
    progress(
      "deploying the EntryPoint, member-account factory and paymaster; starting the bundler and the sponsor",
    );
    const { sponsorship, ready } = await launchDevnetSponsorship(clients, {
      rpcUrl: state.rpcUrl,
      chainId: state.chainId,
      cluster: state.diamond,
    });
    // Recorded before they serve, so `devnet down` stops them even if they never do.
    state = { ...state, sponsorship };
    await writeState(state);
    sponsorshipReady = ready;
  }

  if (options.indexer !== false) {
    state = { ...state, indexer: await startIndexer(clients, state, progress, options.indexerSuppressNodes) };
    await writeState(state);
    for (let index = 1; index < (options.indexers ?? 1); index++) {
      const more = await startIndexer(clients, state, progress, [], index);
      state = { ...state, moreIndexers: [...(state.moreIndexers ?? []), more] };
      await writeState(state);
    }
  }
  if (options.sponsored ?? true) progress("waiting for the bundler and the sponsorship service");
  await sponsorshipReady;
  return state;
}

/** Where `devnet up` records what it last built (Hardhat's cache folder, ignored by git). */
const BUILD_STAMPS = join(REPO_ROOT, "cache/devnet");
/** What every build reads besides its sources: the dependencies' versions and the workspace's settings. */
const SHARED_INPUTS = ["pnpm-lock.yaml", "package.json", "tsconfig.base.json", "tsconfig.json"];

/**
 * Compiles the contracts before they are deployed: a fresh clone has no artifacts, and a checkout that
 * pulled new contracts has stale ones (a devnet deployed from them lacks the new functions). Skipped when
 * neither the Solidity tree nor the artifacts changed since the last devnet's build (buildCache.ts):
 * Hardhat's start alone takes seconds of CPU, on the cores the Hardhat node is booting on.
 */
async function buildContracts(progress: (message: string) => void): Promise<void> {
  const fresh = await Promise.all([readArtifact("Diamond"), readArtifact("EntryPoint")]).then(
    () => false,
    () => true,
  );
  await mkdir(BUILD_STAMPS, { recursive: true });
  const built = await buildUnlessUnchanged(
    REPO_ROOT,
    join(BUILD_STAMPS, "contracts.json"),
    { inputs: ["contracts", "hardhat.config.ts", ...SHARED_INPUTS], outputs: ["artifacts"] },
    async () => {
      progress(
        fresh
          ? "compiling the contracts (hardhat build; the first time takes a minute)"
          : "compiling the contracts if they changed (hardhat build)",
      );
      await run(join(REPO_ROOT, "node_modules/.bin/hardhat"), [
        "--config",
        join(REPO_ROOT, "hardhat.config.ts"),
        "build",
        "--quiet",
      ]);
    },
  );
  if (!built) progress("the contracts are built and unchanged since the last devnet");
}

/** Bundles the sidecar the nodes run, unless its sources and the bundle are as the last devnet left them. */
async function buildSidecar(progress: (message: string) => void): Promise<void> {
  await mkdir(BUILD_STAMPS, { recursive: true });
  const built = await buildUnlessUnchanged(
    REPO_ROOT,
    join(BUILD_STAMPS, "sidecar.json"),
    {
      inputs: [
        "sidecar/src",
        "sidecar/build",
        "sidecar/package.json",
        "shared/src",
        "shared/package.json",
        ...SHARED_INPUTS,
      ],
      // dist/ holds only what bundleSidecar writes there.
      outputs: [relative(REPO_ROOT, DIST_DIR)],
    },
    async () => {
      progress("building the sidecar (esbuild: sidecar/dist/attestmesh-sidecar.mjs)");
      await bundleSidecar();
    },
  );
  if (!built) progress("the sidecar bundle is built and unchanged since the last devnet");
}

/** Waits until the Hardhat node and every RPC proxy in front of it answer; returns the chain id. */
async function waitForChain(rpcUrl: string, proxies: ReadonlyArray<{ url: string }>): Promise<number> {
  const probe = devnetClients(rpcUrl, 31337);
  const chainId = await waitFor("the Hardhat node", async () => probe.client.getChainId(), 60_000);
  await Promise.all(
    proxies.map((proxy) => {
      const through = devnetClients(proxy.url, chainId);
      return waitFor(`the RPC proxy ${proxy.url}`, async () => through.client.getChainId(), 30_000);
    }),
  );
  return chainId;
}

async function waitRegistered(node: DevnetNode, timeoutMs: number): Promise<void> {
  await waitFor(
    `${node.name} to register`,
    async () => ((await readHealth(node)).health?.memberId != null ? true : undefined),
    timeoutMs,
    250,
  );
}

/** Starts the devnet gateway in the hub namespace with its routes file and its (soak) faults file. */
export function spawnGateway(): number {
  return spawnDetached(
    "ip",
    [
      "netns",
      "exec",
      HUB_NETNS,
      process.execPath,
      join(REPO_ROOT, "devnet/src/orchestration/gateway-main.ts"),
      "--listen",
      `${UNDERLAY_HUB_IP}:${GATEWAY_PORT}`,
      "--domain",
      GATEWAY_DOMAIN,
      "--routes",
      GATEWAY_ROUTES_FILE,
      "--faults",
      GATEWAY_FAULTS_FILE,
    ],
    { logFile: join(DEVNET_DIR, "gateway.log") },
  );
}

export async function addNodeToState(
  clients: ReturnType<typeof devnetClients>,
  state: DevnetState,
  index: number,
  sidecarEntry?: string,
  deviceId?: Hex,
  composeVariant?: string,
): Promise<DevnetState> {
  return recordNode(state, await startNode(clients, state, index, sidecarEntry, deviceId, composeVariant));
}

/** Nodes 1..`count` prepared at once; if one fails, the simulators of the others are stopped. */
async function prepareNodes(clients: DevnetClients, state: DevnetState, count: number) {
  const results = await Promise.allSettled(
    Array.from({ length: count }, (_, i) => prepareNode(clients, state, i + 1)),
  );
  const failed = results.find((r) => r.status === "rejected");
  if (failed === undefined) return results.map((r) => (r as PromiseFulfilledResult<PreparedNode>).value);
  await Promise.all(results.map((r) => (r.status === "fulfilled" ? stopProcess(r.value.simPid) : undefined)));
  throw failed.reason;
}

/** Adds a started node to the state, the endpoints file and the gateway's routes. */
async function recordNode(state: DevnetState, node: DevnetNode): Promise<DevnetState> {
  const next = { ...state, nodes: [...state.nodes, node] };
  await writeEndpoints(next.nodes);
  await writeGatewayRoutes(next.nodes);
  await writeState(next);
  return next;
}

/** Stops `node` (sidecar and simulator), deletes its namespace and takes it out of the state. */
export async function removeNodeFromState(state: DevnetState, node: DevnetNode): Promise<DevnetState> {
  await stopProcess(node.sidecarPid);
  await stopProcess(node.simPid);
  await deleteNamespace(node.netns);
  const next = { ...state, nodes: state.nodes.filter((n) => n !== node) };
  await writeEndpoints(next.nodes);
  await writeGatewayRoutes(next.nodes);
  await writeState(next);
  return next;
}

export async function waitHealthy(
  state: DevnetState,
  nodes: readonly DevnetNode[],
  timeoutMs: number,
  progress: (message: string) => void,
): Promise<void> {
  progress(`waiting for ${nodes.length} node(s) to be healthy (handshakes, CSK held, heartbeats converged)`);
  try {
    await waitFor(
      "every node to report healthy",
      async () => {
        const results = await Promise.all(nodes.map(readHealth));
        return results.every((r) => r.ok) ? true : undefined;
      },
      timeoutMs,
      250,
    );
  } catch (error) {
    const status = await devnetStatus(state);
    const stuck = status.nodes
      .filter((n) => nodes.some((m) => m.name === n.name) && n.phase !== "healthy")
      .map((n) => `${n.name}: ${n.phase} (log: ${join(DEVNET_DIR, n.name, "sidecar.log")})`);
    throw new AttestmeshError(`${(error as Error).message}; not healthy: ${stuck.join("; ")}`, {
      code: "DevnetNotHealthy",
      cause: error,
    });
  }
}
