// One devnet node: a network namespace on the hub bridge, a member app from the cluster factory, a
// dstack simulator socket with that app id, and a sidecar whose WireGuard lives in the namespace.
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { GuestApi } from "@attestmesh/shared/service/pinned.ts";
import { bundleSidecar, SIDECAR_BUNDLE, SIDECAR_NODE_OPTIONS } from "@attestmesh/sidecar/build/bundle.ts";
import { type Address, bytesToHex, getAddress, type Hex } from "viem";
import { createKmsRoot, createSimulatedCvm } from "../dstack-sim/simulator.ts";
import { devnetAccount, devnetPrivateKey } from "./accounts.ts";
import {
  createMemberApp,
  type DevnetClients,
  devnetTrust,
  fundAccount,
  predictMemberAppId,
  setComposeHashAllowed,
} from "./chain.ts";
import { type DevnetPins, devnetAppCompose, startDstackSim } from "./dstackSim.ts";
import { blockUdp, createNodeNamespace } from "./netns.ts";
import { spawnDetached } from "./processes.ts";
import { sponsoredNodeEnv } from "./sponsorship.ts";
import {
  DEVNET_DIR,
  type DevnetNode,
  type DevnetState,
  ENDPOINTS_FILE,
  GATEWAY_DOMAIN,
  GATEWAY_PORT,
  HEALTH_PORT_BASE,
  INGRESS_PORT,
  NETNS_PREFIX,
  UNDERLAY_HUB_IP,
  UNDERLAY_PREFIX,
  WG_LISTEN_PORT,
} from "./state.ts";

/**
 * The compose hash every devnet node's simulator reports: sha256 of the exact app-compose document it
 * serves (the one pinning `guestApi`), as dstack measures it, so a node's attestation verifies.
 */
export function devnetComposeHash(guestApi: GuestApi = "v0", pins?: DevnetPins, variant?: string) {
  const cvm = createSimulatedCvm({
    kmsRoot: createKmsRoot(),
    appId: new Uint8Array(20),
    appCompose: devnetAppCompose(guestApi, pins, variant),
  });
  return bytesToHex(cvm.info().composeHash);
}

export async function startNode(
  clients: DevnetClients,
  state: DevnetState,
  index: number,
  /** Another sidecar entry point (tests: a member that misbehaves); default the real binary. */
  sidecarEntry?: string,
  /** A device of its own (tests: revoke it without touching the others); default the shared one. */
  deviceId?: Hex,
  /**
   * A compose of its own (the app name in it carries this label), whose hash the owner allows here
   * (tests: withdraw it without touching the others); default the compose every node runs.
   */
  composeVariant?: string,
): Promise<DevnetNode> {
  return launchNode(
    clients,
    state,
    await prepareNode(clients, state, index, deviceId, composeVariant),
    sidecarEntry,
  );
}

/** A node made ready to join but not yet joining: its namespace, and its simulator serving its app id. */
export interface PreparedNode {
  readonly name: string;
  readonly index: number;
  readonly netns: string;
  readonly underlayIp: string;
  readonly logDir: string;
  readonly socketPath: string;
  readonly healthPort: number;
  readonly wgInterface: string;
  /** The app id the cluster's factory will give it (CREATE2), which its simulator already serves. */
  readonly appId: Address;
  readonly simPid: number;
  /** Its own compose hash, allowed when it launches (see `startNode`'s `composeVariant`). */
  readonly ownCompose?: Hex;
}

/**
 * Everything of a node that touches no chain state: its namespace, and a dstack simulator serving the
 * app id `createMemberApp` will give it. Nodes prepare concurrently; they join one at a time.
 */
export async function prepareNode(
  clients: DevnetClients,
  state: DevnetState,
  index: number,
  deviceId?: Hex,
  composeVariant?: string,
): Promise<PreparedNode> {
  const name = `node${index}`;
  const netns = `${NETNS_PREFIX}${name}`;
  const underlayIp = `${UNDERLAY_PREFIX}.${10 + index}`;
  const logDir = join(DEVNET_DIR, name);
  const socketPath = join(logDir, "dstack.sock");
  const healthPort = HEALTH_PORT_BASE + index;
  // wireguard-go's control socket (/var/run/wireguard/<name>.sock) is host-wide, not per namespace,
  // so devnet nodes sharing one host need distinct interface names; a real CVM uses attestmesh0.
  const wgInterface = `attestmesh${index}`;

  await createNodeNamespace(netns, index, underlayIp);
  if (state.blockUdp) await blockUdp(netns);
  const [appId, trust] = await Promise.all([
    predictMemberAppId(clients, state.diamond, name),
    devnetTrust(clients, state),
  ]);
  const rpc = {
    chainId: state.chainId,
    providers: [state.rpcUrl, ...(state.rpcProxies ?? []).map((p) => p.url)],
  };
  const ownCompose =
    composeVariant === undefined
      ? undefined
      : devnetComposeHash(state.guestApi ?? "v0", { ...trust, ...rpc }, composeVariant);
  const simPid = await startDstackSim({
    socketPath,
    appId,
    composeHash: ownCompose ?? state.composeHash,
    ...(composeVariant === undefined ? {} : { composeVariant }),
    trust,
    ...(state.guestApi === undefined ? {} : { guestApi: state.guestApi }),
    // The compose pins the chain and its providers: the Hardhat node and the devnet's RPC proxies.
    rpc,
    appName: `attestmesh-devnet-${name}`,
    logFile: join(logDir, "dstack-sim.log"),
    owner: name,
    ...(deviceId === undefined ? {} : { deviceId }),
  });
  return {
    name,
    index,
    netns,
    underlayIp,
    logDir,
    socketPath,
    healthPort,
    wgInterface,
    appId,
    simPid,
    ...(ownCompose === undefined ? {} : { ownCompose }),
  };
}

/** The owner creates the prepared node's member app (and allows its own compose), then its sidecar starts. */
export async function launchNode(
  clients: DevnetClients,
  state: DevnetState,
  prepared: PreparedNode,
  /** Another sidecar entry point (tests: a member that misbehaves); default the real binary. */
  sidecarEntry?: string,
): Promise<DevnetNode> {
  const { name, index, netns, underlayIp, logDir, socketPath, healthPort, wgInterface, simPid, ownCompose } =
    prepared;
  const appId = await createMemberApp(clients, state.diamond, name);
  if (getAddress(appId) !== getAddress(prepared.appId)) {
    throw new Error(
      `${name}'s member app is ${appId}, not the predicted ${prepared.appId} its simulator serves`,
    );
  }
  // Sponsored nodes hold no ETH at all; a funded-key node gets its gas account its own balance
  // (Hardhat funds only its first 20 accounts).
  if (state.sponsorship === undefined) await fundAccount(clients, devnetAccount(index).address);
  if (ownCompose !== undefined) await setComposeHashAllowed(clients, state.diamond, ownCompose, true);

  // The built sidecar, as the deploy image runs it (devnetUp rebuilds it; a node added later reuses it).
  if (sidecarEntry === undefined && !existsSync(SIDECAR_BUNDLE)) await bundleSidecar();
  const entry = sidecarEntry ?? SIDECAR_BUNDLE;
  const sidecarPid = spawnDetached(process.execPath, [entry], {
    logFile: join(logDir, "sidecar.log"),
    env: {
      ...process.env,
      ATTESTMESH_RPC_URL: state.rpcUrl,
      ATTESTMESH_CLUSTER: state.diamond,
      ATTESTMESH_CHAIN_ID: String(state.chainId),
      ATTESTMESH_CONFIRMATIONS: String(state.confirmations ?? 0),
      ATTESTMESH_POLL_INTERVAL_MS: "1000",
      // Peers re-attest each other every minute here (production: ATTESTMESH_REATTEST_INTERVAL_S, 600 s).
      ATTESTMESH_REATTEST_INTERVAL_S: process.env.ATTESTMESH_DEVNET_REATTEST_INTERVAL_S ?? "60",
      // Flag a lagging (or lying) indexer within seconds rather than the production 30 s.
      ATTESTMESH_INDEXER_LAG_MS: "5000",
      ...(state.sponsorship === undefined
        ? { ATTESTMESH_GAS_KEY: devnetPrivateKey(index) }
        : sponsoredNodeEnv(state.sponsorship)),
      DSTACK_SIMULATOR_ENDPOINT: socketPath,
      ATTESTMESH_WG_INTERFACE: wgInterface,
      ATTESTMESH_WG_LISTEN_PORT: String(WG_LISTEN_PORT),
      ATTESTMESH_WG_MODE: "auto",
      ATTESTMESH_WG_NETNS: netns,
      ATTESTMESH_ENDPOINTS_FILE: ENDPOINTS_FILE,
      ATTESTMESH_TRANSPORT: state.transport ?? "udp",
      ATTESTMESH_GATEWAY_DOMAIN: GATEWAY_DOMAIN,
      ATTESTMESH_GATEWAY_ADDRESS: `${UNDERLAY_HUB_IP}:${GATEWAY_PORT}`,
      ATTESTMESH_INGRESS_PORT: String(INGRESS_PORT),
      ATTESTMESH_HEALTH_HOST: "127.0.0.1",
      ATTESTMESH_HEALTH_PORT: String(healthPort),
      ATTESTMESH_API_SOCKET: join(logDir, "api.sock"),
      ATTESTMESH_STATE_DIR: join(logDir, "state"),
      // The image's Node options; ATTESTMESH_DEVNET_SIDECAR_NODE_OPTIONS replaces them for the sidecars
      // alone (V8 heap experiments with devnet/bench/idle-cost.ts).
      NODE_OPTIONS: process.env.ATTESTMESH_DEVNET_SIDECAR_NODE_OPTIONS ?? SIDECAR_NODE_OPTIONS,
    },
  });

  return {
    name,
    index,
    netns,
    underlayIp,
    wgInterface,
    appId,
    gasAccountIndex: index,
    healthUrl: `http://127.0.0.1:${healthPort}/healthz`,
    socketPath,
    simPid,
    sidecarPid,
    logDir,
    ...(ownCompose === undefined ? {} : { composeHash: ownCompose }),
  };
}
