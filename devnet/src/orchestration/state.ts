// The devnet's state on disk (.devnet/state.json): what `up` created, so `status`, `add-node`,
// `evict` and `down` can find it again, even after a crash of the CLI.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { GuestApi } from "@attestmesh/shared/service/pinned.ts";
import type { Address, Hex } from "viem";

export const DEVNET_DIR = join(new URL("../../..", import.meta.url).pathname, ".devnet");
export const STATE_FILE = join(DEVNET_DIR, "state.json");
export const ENDPOINTS_FILE = join(DEVNET_DIR, "endpoints.json");
/** Every network namespace the devnet creates starts with this, so `down` can find strays. */
export const NETNS_PREFIX = "amdev-";
export const HUB_NETNS = `${NETNS_PREFIX}hub`;
export const BRIDGE = "amdevbr0";
/** Underlay between namespaces: the benchmarking range (RFC 2544), never routed anywhere. */
export const UNDERLAY_PREFIX = "198.18.0";
export const UNDERLAY_HUB_IP = `${UNDERLAY_PREFIX}.1`;
export const WG_LISTEN_PORT = 51820;
export const MESH_CIDR = "10.77.0.0/16";
export const RPC_PORT = 8545;
/** The pass-through RPC proxies every sidecar has beside the Hardhat node (its pinned providers). */
export const RPC_PROXY_PORTS: readonly number[] = [8546, 8547];
export const HEALTH_PORT_BASE = 9100;
/** The devnet's stand-in for the dstack gateway: SNI routing on the hub, like `<app-id>-<port>s.<domain>:443`. */
export const GATEWAY_DOMAIN = "gateway.devnet.attestmesh.test";
export const GATEWAY_PORT = 443;
export const GATEWAY_ROUTES_FILE = join(DEVNET_DIR, "gateway-routes.json");
/** Faults the gateway applies (`--faults`; the soak's gateway-delay): {"connectDelayMs": n}. */
export const GATEWAY_FAULTS_FILE = join(DEVNET_DIR, "gateway-faults.json");
/** Each node's TLS ingress, the CVM port the gateway forwards to. */
export const INGRESS_PORT = 51822;
export const TRANSPORTS = ["gateway", "udp", "auto"] as const;
export type DevnetTransport = (typeof TRANSPORTS)[number];
export const INDEXER_PORT = 8790;

export interface DevnetNode {
  readonly name: string;
  readonly index: number;
  readonly netns: string;
  readonly underlayIp: string;
  readonly wgInterface: string;
  readonly appId: Address;
  readonly gasAccountIndex: number;
  readonly healthUrl: string;
  readonly socketPath: string;
  readonly simPid: number;
  readonly sidecarPid: number;
  readonly logDir: string;
  /** Set when the node runs a compose of its own (`add-node --compose-variant`): its hash. */
  readonly composeHash?: Hex;
}

/** The sponsored-gas stack (ERC-4337 contracts, bundler, sponsor webhook) that sponsorship.ts starts. */
export interface DevnetSponsorship {
  readonly entryPoint: Address;
  readonly accountFactory: Address;
  readonly paymaster: Address;
  readonly bundlerUrl: string;
  readonly paymasterUrl: string;
  readonly bundlerPid: number;
  readonly sponsorPid: number;
}

/** The devnet's indexer process and its simulator, as indexer.ts starts them. */
export interface DevnetIndexer {
  readonly url: string;
  readonly healthUrl: string;
  readonly appId: Address;
  readonly pid: number;
  readonly simPid: number;
  readonly logDir: string;
  /** TEST ONLY: app ids the indexer suppresses (lying mode); absent when it tells the truth. */
  readonly suppressedAppIds?: readonly Address[];
}

export interface DevnetState {
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly diamond: Address;
  readonly deployBlock: string;
  readonly composeHash: Hex;
  readonly kmsRoot: Address;
  readonly hardhatPid: number;
  /**
   * The pass-through RPC proxies in front of the Hardhat node: with it, the providers the compose pins
   * for every sidecar (quorum 2 of 3). Absent in states written before they existed.
   */
  readonly rpcProxies?: readonly { readonly url: string; readonly pid: number }[];
  /** Present when nodes are sponsored (the default); absent when they pay with funded keys. */
  readonly sponsorship?: DevnetSponsorship;
  readonly nodes: DevnetNode[];
  /** How sidecars reach each other (ATTESTMESH_TRANSPORT); absent in states written before it existed. */
  readonly transport?: DevnetTransport;
  /** The SNI gateway process in the hub namespace. */
  readonly gatewayPid?: number;
  /** UDP between node namespaces is dropped (nftables), as dstack does. */
  readonly blockUdp?: boolean;
  /** Absent when the devnet runs without an indexer. */
  readonly indexer?: DevnetIndexer;
  /** Indexers beyond the first (`devnet up --indexers n`), registered beside it. */
  readonly moreIndexers?: readonly DevnetIndexer[];
  /**
   * The dstack guest API the cluster pins (x-attestmesh.guest_api in the compose every simulator
   * returns); absent in states written before it existed, which ran v0.
   */
  readonly guestApi?: GuestApi;
  /** The sidecars' ATTESTMESH_CONFIRMATIONS; absent means 0. */
  readonly confirmations?: number;
}

export async function readState(): Promise<DevnetState | undefined> {
  try {
    return JSON.parse(await readFile(STATE_FILE, "utf8")) as DevnetState;
  } catch {
    return undefined;
  }
}

export async function writeState(state: DevnetState): Promise<void> {
  await mkdir(DEVNET_DIR, { recursive: true });
  await writeFile(STATE_FILE, `${JSON.stringify(state, null, 2)}\n`);
}

export async function writeEndpoints(nodes: readonly DevnetNode[]): Promise<void> {
  const endpoints = Object.fromEntries(nodes.map((n) => [n.appId, `${n.underlayIp}:${WG_LISTEN_PORT}`]));
  await mkdir(DEVNET_DIR, { recursive: true });
  await writeFile(`${ENDPOINTS_FILE}.tmp`, `${JSON.stringify(endpoints, null, 2)}\n`);
  // Atomic replace: sidecars re-read the file on every reconcile.
  const { rename } = await import("node:fs/promises");
  await rename(`${ENDPOINTS_FILE}.tmp`, ENDPOINTS_FILE);
}

/** The gateway's routes: app id → the node's underlay address (re-read by the gateway on change). */
export async function writeGatewayRoutes(nodes: readonly DevnetNode[]): Promise<void> {
  const routes = Object.fromEntries(nodes.map((n) => [n.appId.toLowerCase(), n.underlayIp]));
  await mkdir(DEVNET_DIR, { recursive: true });
  await writeFile(`${GATEWAY_ROUTES_FILE}.tmp`, `${JSON.stringify(routes, null, 2)}\n`);
  const { rename } = await import("node:fs/promises");
  await rename(`${GATEWAY_ROUTES_FILE}.tmp`, GATEWAY_ROUTES_FILE);
}

export async function clearState(): Promise<void> {
  await rm(DEVNET_DIR, { recursive: true, force: true });
}
