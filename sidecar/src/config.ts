// The sidecar's configuration: environment variables only, each parsed once at start. A bad value
// stops the sidecar with one error that names every offending variable, what is wrong with its
// value and how to fix it. `CONFIG_DOCS` is the same table, for the README.

import { DEFAULT_PCCS_URL } from "@attestmesh/shared/attestation/collateral.ts";
import type { ConfigDoc, ConfigProblem, Env, EnvTable } from "@attestmesh/shared/service/env.ts";
import * as kit from "@attestmesh/shared/service/env.ts";
import { type LogLevel, loggableConfig, redactUrl } from "@attestmesh/shared/service/log.ts";
import type { Address, Hex } from "viem";
import { entryPoint07Address } from "viem/account-abstraction";
import { TRANSPORT_MODES, type TransportMode } from "./model/transport.ts";
import type { Secret } from "./secret.ts";

export const WG_MODES = ["auto", "kernel", "userspace", "memory"] as const;
export type WgMode = (typeof WG_MODES)[number];

export type { ConfigDoc, ConfigProblem, Env } from "@attestmesh/shared/service/env.ts";

export interface SidecarConfig {
  /** One provider URL with credentials (kept for one-provider setups); must be a pinned host. */
  readonly rpcUrl: string | undefined;
  /** Provider URLs with credentials (API keys); each must be a host the attested compose pins. */
  readonly rpcUrls: readonly string[] | undefined;
  /** Providers that must agree on a read; undefined: a majority of the pinned providers. */
  readonly rpcQuorum: number | undefined;
  readonly cluster: Address;
  /** When set, the RPC's chain id must equal it. */
  readonly chainId: number | undefined;
  readonly confirmations: number;
  readonly pollIntervalMs: number;
  /** Pays registration gas; only needed when this node must register. */
  readonly gasKey: Secret<Hex> | undefined;
  /** ERC-4337 bundler; when set, every write is a sponsored UserOperation and the gas key is not used. */
  readonly bundlerUrl: string | undefined;
  /** The operator's sponsorship service (ERC-7677 paymaster web service). */
  readonly paymasterUrl: string | undefined;
  readonly entryPoint: Address;
  /** The cluster's member-account factory. */
  readonly accountFactory: Address | undefined;
  /** The dstack guest agent (unix socket path or http URL); undefined lets the SDK pick its default. */
  readonly dstackEndpoint: string | undefined;
  readonly wgInterface: string;
  readonly wgListenPort: number;
  readonly wgMode: WgMode;
  readonly wgNetns: string | undefined;
  /** 0 turns persistent keepalive off. */
  readonly wgKeepaliveSeconds: number;
  readonly endpointsFile: string | undefined;
  readonly transport: TransportMode;
  /** The dstack gateway's domain; undefined: no gateway bridge. */
  readonly gatewayDomain: string | undefined;
  /** Where to open the gateway's TCP connections instead of `<sni>:443`. */
  readonly gatewayAddress: { readonly host: string; readonly port: number } | undefined;
  readonly ingressPort: number;
  /** Time an inbound gateway connection has for its TLS handshake and signed hello. */
  readonly gatewayHelloTimeoutMs: number;
  readonly directRetrySeconds: number;
  readonly directRetryMaxSeconds: number;
  readonly healthHost: string;
  /** 0 picks a free port (tests). */
  readonly healthPort: number;
  readonly logLevel: LogLevel;
  readonly registerMaxBackoffMs: number;
  /** Subscribe to the cluster's registered indexer for wake-ups; off: polling alone. */
  readonly indexerPush: boolean;
  /** Percent of indexer pushes whose repro stub is run against our own RPC. */
  readonly indexerReproPercent: number;
  readonly indexerLagMs: number;
  /** PCCS that serves Intel's collateral for verifying TDX quotes. */
  readonly pccsUrl: string;
  /** Directory for the message cursor; undefined keeps it in memory only. */
  readonly stateDir: string | undefined;
  /** Unix socket of the application API; undefined turns the API off. */
  readonly apiSocket: string | undefined;
  /** Group name or gid that may use the API socket (mode 0660); undefined means 0600. */
  readonly apiSocketGroup: string | undefined;
  readonly apiQueueLength: number;
  readonly inboxMaxMessages: number;
  readonly indexerSubscriptions: number;
  readonly messagesStartBlock: number | undefined;
  /** The widest eth_getLogs span when searching history (member certificates). */
  readonly logsMaxBlocks: number;
  /** UDP port of heartbeats and CSK requests on every member's mesh IP. */
  readonly meshPort: number;
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly cskTakeoverMs: number;
  /** How often each peer's live attestation is fetched and verified again, in seconds. */
  readonly reattestIntervalS: number;
}

function interfaceName(text: string): string {
  // Linux allows at most IFNAMSIZ - 1 = 15 bytes; the WireGuard driver also refuses a leading '.', '-'.
  if (!/^[A-Za-z0-9_][A-Za-z0-9_=+.-]{0,14}$/.test(text)) {
    throw new kit.Problem(
      `${JSON.stringify(text)} is not a valid interface name`,
      "use 1 to 15 of A-Z a-z 0-9 _ = + . - (not starting with '.', '-', '=' or '+')",
    );
  }
  return text;
}

function netnsName(text: string): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(text) || text === "." || text === "..") {
    throw new kit.Problem(
      `${JSON.stringify(text)} is not a valid network namespace name`,
      "use the name `ip netns list` shows (letters, digits, '_', '.', '-')",
    );
  }
  return text;
}

function domainName(text: string): string {
  if (
    !/^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/.test(
      text,
    )
  ) {
    throw new kit.Problem(
      `${JSON.stringify(text)} is not a DNS domain`,
      "use the gateway's base domain as dstack shows it, e.g. dstack-prod5.phala.network",
    );
  }
  return text.toLowerCase();
}

function hostPort(text: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (match === null || port < 1 || port > 65535) {
    throw new kit.Problem(`${JSON.stringify(text)} is not host:port`, "use e.g. 198.18.0.1:443");
  }
  return { host: match[1] ?? match[2]!, port };
}

function urlList(text: string): readonly string[] {
  if (text.trim() === "") return [];
  return text.split(",").map((entry) => kit.httpUrl(entry.trim()));
}

function groupName(text: string): string {
  if (!/^(\d{1,10}|[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?)$/.test(text)) {
    throw new kit.Problem(
      `${JSON.stringify(text)} is neither a group name nor a gid`,
      "use a group name or a number",
    );
  }
  return text;
}

const VARIABLES: EnvTable<SidecarConfig> = {
  rpcUrl: {
    name: "ATTESTMESH_RPC_URL",
    description:
      "One RPC provider URL with its credentials (API key in the path or query). Its host must be one the attested compose pins (x-attestmesh.rpc_providers); any other host stops the sidecar at start.",
    parse: kit.httpUrl,
  },
  rpcUrls: {
    name: "ATTESTMESH_RPC_URLS",
    description:
      "Comma-separated RPC provider URLs with credentials, at most one per pinned host; each host must be one the attested compose pins (x-attestmesh.rpc_providers), any other stops the sidecar at start. Pinned hosts without an entry are called without credentials.",
    parse: urlList,
  },
  rpcQuorum: {
    name: "ATTESTMESH_RPC_QUORUM",
    description:
      "How many pinned RPC providers must return the same answer, at the same block hash, before a read that decides membership, epochs or messages counts; default a majority. At least a majority, at most the number of pinned providers.",
    parse: kit.integer(1, 16),
  },
  cluster: {
    name: "ATTESTMESH_CLUSTER",
    required: true,
    description: "Address of the cluster diamond.",
    parse: kit.address(),
  },
  chainId: {
    name: "ATTESTMESH_CHAIN_ID",
    description: "Expected chain id; checked against the RPC at start, so a wrong RPC is refused.",
    parse: kit.integer(1, Number.MAX_SAFE_INTEGER),
  },
  confirmations: {
    name: "ATTESTMESH_CONFIRMATIONS",
    default: "2",
    description: "Blocks behind the head at which membership is read (the devnet uses 0).",
    parse: kit.integer(0, 1000),
  },
  pollIntervalMs: {
    name: "ATTESTMESH_POLL_INTERVAL_MS",
    default: "2000",
    description:
      "How often the chain is polled and WireGuard reconciled, in milliseconds; 4× as long at rest, while a verified indexer subscription is up and nothing happened for 30 s (every push restores it).",
    parse: kit.integer(100, 3_600_000, " ms"),
  },
  gasKey: {
    name: "ATTESTMESH_GAS_KEY",
    description:
      "0x private key of a funded account that pays registration gas; needed only when this node must register. Never logged.",
    parse: kit.privateKey("use the funded account's private key as 0x-prefixed hex"),
  },
  bundlerUrl: {
    name: "ATTESTMESH_BUNDLER_URL",
    description:
      "ERC-4337 bundler (http or https). When set, the node's writes go out as UserOperations from its member account, paid by the operator's paymaster, and ATTESTMESH_GAS_KEY is not used; needs ATTESTMESH_PAYMASTER_URL and ATTESTMESH_ACCOUNT_FACTORY.",
    parse: kit.httpUrl,
  },
  paymasterUrl: {
    name: "ATTESTMESH_PAYMASTER_URL",
    description: "The operator's sponsorship service (an ERC-7677 paymaster web service, http or https).",
    parse: kit.httpUrl,
  },
  entryPoint: {
    name: "ATTESTMESH_ENTRY_POINT",
    default: entryPoint07Address,
    description: "ERC-4337 EntryPoint v0.7 address (the default is the canonical one on Base).",
    parse: kit.address(),
  },
  accountFactory: {
    name: "ATTESTMESH_ACCOUNT_FACTORY",
    description:
      "The cluster's member-account factory; the node's account address is derived from it and its member key.",
    parse: kit.address(),
  },
  dstackEndpoint: kit.dstackEndpointVariable,
  wgInterface: {
    name: "ATTESTMESH_WG_INTERFACE",
    default: "attestmesh0",
    description: "WireGuard interface name.",
    parse: interfaceName,
  },
  wgListenPort: {
    name: "ATTESTMESH_WG_LISTEN_PORT",
    default: "51820",
    description: "WireGuard UDP listen port.",
    parse: kit.integer(1, 65535),
  },
  wgMode: {
    name: "ATTESTMESH_WG_MODE",
    default: "auto",
    description:
      "WireGuard driver: auto (kernel if available, else userspace), kernel, userspace (wireguard-go), memory (tests only).",
    parse: kit.oneOf(WG_MODES),
  },
  wgNetns: {
    name: "ATTESTMESH_WG_NETNS",
    description: "Network namespace that holds the WireGuard interface (the devnet runs one per node).",
    parse: netnsName,
  },
  wgKeepaliveSeconds: {
    name: "ATTESTMESH_WG_KEEPALIVE_SECONDS",
    default: "15",
    description: "Persistent keepalive for every peer (0 = off); it also makes WireGuard handshake at once.",
    parse: kit.integer(0, 65535, " s"),
  },
  endpointsFile: {
    name: "ATTESTMESH_ENDPOINTS_FILE",
    description:
      'JSON file {"<appId>": "host:port"} with peer endpoints, re-read on every reconcile. Routing only: WireGuard authenticates each peer by its on-chain key.',
    parse: kit.filePath,
  },
  transport: {
    name: "ATTESTMESH_TRANSPORT",
    default: "auto",
    description:
      "Path of WireGuard traffic per peer: gateway (a TLS stream through the dstack gateway), udp (direct to the endpoints file's address), auto (gateway first, direct UDP once a handshake over it succeeds; direct only when no gateway domain is set).",
    parse: kit.oneOf(TRANSPORT_MODES),
  },
  gatewayDomain: {
    name: "ATTESTMESH_GATEWAY_DOMAIN",
    description:
      "dstack gateway base domain; a peer is reached as <app-id>-<ingress port>s.<domain>:443 (TLS passthrough). Needed for transport gateway.",
    parse: domainName,
  },
  gatewayAddress: {
    name: "ATTESTMESH_GATEWAY_ADDRESS",
    description:
      "host:port to open gateway connections to instead of resolving <sni>:443 (the devnet has no DNS); the SNI stays the same.",
    parse: hostPort,
  },
  ingressPort: {
    name: "ATTESTMESH_INGRESS_PORT",
    default: "51822",
    description:
      "TCP port of this node's TLS ingress that the gateway forwards to; the same on every node, since peers put it in their SNI.",
    parse: kit.integer(1, 65535),
  },
  gatewayHelloTimeoutMs: {
    name: "ATTESTMESH_GATEWAY_HELLO_TIMEOUT_MS",
    default: "2000",
    description:
      "Time an inbound gateway connection has for its TLS handshake and signed hello before it is closed; short, so idle connections cannot hold the ingress's waiting room.",
    parse: kit.integer(200, 60_000, " ms"),
  },
  directRetrySeconds: {
    name: "ATTESTMESH_DIRECT_RETRY_SECONDS",
    default: "30",
    description:
      "auto transport: first pause before testing direct UDP to a peer again after a failed test or a fallback; doubles up to ATTESTMESH_DIRECT_RETRY_MAX_SECONDS.",
    parse: kit.integer(1, 86_400, " s"),
  },
  directRetryMaxSeconds: {
    name: "ATTESTMESH_DIRECT_RETRY_MAX_SECONDS",
    default: "900",
    description:
      "auto transport: the longest pause between direct UDP tests to a peer; lower it where the path may open at any time (a failed test costs the gateway path well under a second).",
    parse: kit.integer(1, 86_400, " s"),
  },
  healthHost: {
    name: "ATTESTMESH_HEALTH_HOST",
    default: "0.0.0.0",
    description: "Address the /healthz and /metrics server listens on.",
    parse: kit.hostName,
  },
  healthPort: {
    name: "ATTESTMESH_HEALTH_PORT",
    default: "9090",
    description: "Port of the /healthz and /metrics server (0 picks a free port).",
    parse: kit.integer(0, 65535),
  },
  logLevel: kit.logLevelVariable("ATTESTMESH_LOG_LEVEL"),
  registerMaxBackoffMs: {
    name: "ATTESTMESH_REGISTER_MAX_BACKOFF_MS",
    default: "30000",
    description:
      "Longest wait between registration attempts the owner can unblock (e.g. app id not allowed yet).",
    parse: kit.integer(100, 3_600_000, " ms"),
  },
  indexerPush: {
    name: "ATTESTMESH_INDEXER",
    default: "on",
    description:
      "on: subscribe to the indexer named in the cluster's registry; each verified push wakes the reconcile loop early (polling always runs). off: polling alone.",
    parse: kit.onOff,
  },
  indexerReproPercent: {
    name: "ATTESTMESH_INDEXER_REPRO_PERCENT",
    default: "10",
    description:
      "Percent of indexer pushes whose repro stub (eth_getLogs) is run against our own RPC before the wake-up; a push that does not reproduce tears the subscription down.",
    parse: kit.integer(0, 100, " %"),
  },
  indexerSubscriptions: {
    name: "ATTESTMESH_INDEXER_SUBSCRIPTIONS",
    default: "2",
    description:
      "How many of the registry's indexers (the oldest registered first) to subscribe to at once; a verified push from any of them is a wake-up, and each one's lag is flagged on its own.",
    parse: kit.integer(1, 8),
  },
  indexerLagMs: {
    name: "ATTESTMESH_INDEXER_LAG_MS",
    default: "30000",
    description:
      "A log polling saw but no verified push named within this long flags the indexer as lagging.",
    parse: kit.integer(100, 3_600_000, " ms"),
  },
  pccsUrl: {
    name: "ATTESTMESH_PCCS_URL",
    default: DEFAULT_PCCS_URL,
    description:
      "PCCS serving Intel's collateral (TCB info, QE identity, CRLs) for verifying TDX quotes (the indexer's, peers'); cached per platform until its nextUpdate.",
    parse: kit.httpUrl,
  },
  stateDir: {
    name: "ATTESTMESH_STATE_DIR",
    description:
      "Directory for the sealed-message log cursor and the application's message inbox (SQLite: received messages until the application acknowledges them; no key, never the CSK), so a restarted node replays what it missed and redelivers what the application had not acknowledged; unset keeps both in memory.",
    parse: kit.absolutePath,
  },
  apiSocket: {
    name: "ATTESTMESH_API_SOCKET",
    description:
      "Unix socket of the application API (HTTP+JSON, mode 0600), e.g. /run/attestmesh/api.sock; unset turns the API off.",
    parse: kit.absolutePath,
  },
  apiSocketGroup: {
    name: "ATTESTMESH_API_SOCKET_GROUP",
    description:
      "Group (name or gid) that may use the API socket; the socket is then mode 0660 instead of 0600.",
    parse: groupName,
  },
  apiQueueLength: {
    name: "ATTESTMESH_API_QUEUE_LENGTH",
    default: "256",
    description:
      "Peer events each API stream subscriber may have queued; a slower subscriber loses the oldest and is told how many (the message stream reads the inbox and loses nothing).",
    parse: kit.integer(1, 100_000),
  },
  inboxMaxMessages: {
    name: "ATTESTMESH_INBOX_MAX_MESSAGES",
    default: "10000",
    description:
      "Received messages the inbox holds unacknowledged; when it is full, new messages wait on the chain (the message cursor stops) until the application acknowledges some.",
    parse: kit.integer(1, 1_000_000),
  },
  messagesStartBlock: {
    name: "ATTESTMESH_MESSAGES_START_BLOCK",
    description: "Block to read sealed messages from when there is no cursor yet; default the current block.",
    parse: kit.integer(0, Number.MAX_SAFE_INTEGER),
  },
  logsMaxBlocks: {
    name: "ATTESTMESH_LOGS_MAX_BLOCKS",
    default: "10000",
    description:
      "Most blocks one eth_getLogs call spans when searching history (a member's certificate); a provider that refuses a span gets half of it, down to one block.",
    parse: kit.integer(1, 1_000_000),
  },
  meshPort: {
    name: "ATTESTMESH_MESH_PORT",
    default: "51821",
    description:
      "UDP port on every member's mesh IP for heartbeats and CSK requests (the same on every node of a cluster).",
    parse: kit.integer(1, 65535),
  },
  heartbeatIntervalMs: {
    name: "ATTESTMESH_HEARTBEAT_INTERVAL_MS",
    default: "1000",
    description:
      "The liveness probe period in milliseconds: each period a member probes one other member (SWIM), so its traffic does not grow with the mesh.",
    parse: kit.integer(100, 600_000, " ms"),
  },
  heartbeatTimeoutMs: {
    name: "ATTESTMESH_HEARTBEAT_TIMEOUT_MS",
    default: "4000",
    description:
      "A suspected member that does not refute the suspicion within this many milliseconds is declared dead (no longer live). Must exceed the interval.",
    parse: kit.integer(200, 3_600_000, " ms"),
  },
  cskTakeoverMs: {
    name: "ATTESTMESH_CSK_TAKEOVER_MS",
    default: "10000",
    description:
      "When a new CSK epoch stays uncommitted, the live member ranked r (by member id) commits after r times this.",
    parse: kit.integer(100, 3_600_000, " ms"),
  },
  reattestIntervalS: {
    name: "ATTESTMESH_REATTEST_INTERVAL_S",
    default: "600",
    description:
      "Peers re-attest each other: each node fetches a fresh attestation (its own nonce) from every peer over the mesh when it first peers with it, then once per this many seconds (spread over the period), and stops peering with one whose evidence or policy fails. A policy change re-judges every peer at once.",
    parse: kit.integer(10, 86_400, " s"),
  },
};

/** Every variable the sidecar reads, in the order of the README table. */
export const CONFIG_DOCS: readonly ConfigDoc[] = kit.configDocs(VARIABLES);

/** `CONFIG_DOCS` as a Markdown table. */
export function configDocsMarkdown(): string {
  return kit.configDocsMarkdown(CONFIG_DOCS);
}

/**
 * Reads the configuration from `env`. An empty value counts as unset. Throws one fatal
 * `InvalidConfig` error listing every problem (details.problems), so one restart fixes them all.
 */
export function parseConfig(env: Env): SidecarConfig {
  return kit.parseEnv(VARIABLES, env, { check: crossChecks });
}

/** Problems that involve several variables. */
function crossChecks(values: Partial<SidecarConfig>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (values.bundlerUrl !== undefined) {
    for (const [name, key] of [
      ["ATTESTMESH_PAYMASTER_URL", "paymasterUrl"],
      ["ATTESTMESH_ACCOUNT_FACTORY", "accountFactory"],
    ] as const) {
      if (values[key] === undefined) {
        problems.push({
          variable: name,
          problem: "is not set but ATTESTMESH_BUNDLER_URL is",
          fix: "set it for sponsored operations, or unset ATTESTMESH_BUNDLER_URL to pay with ATTESTMESH_GAS_KEY",
        });
      }
    }
  }
  if (values.transport === "gateway" && values.gatewayDomain === undefined) {
    problems.push({
      variable: "ATTESTMESH_GATEWAY_DOMAIN",
      problem: "is not set, but ATTESTMESH_TRANSPORT is gateway",
      fix: "set the dstack gateway's domain, or use ATTESTMESH_TRANSPORT=auto or udp",
    });
  }
  if (
    typeof values.heartbeatTimeoutMs === "number" &&
    typeof values.heartbeatIntervalMs === "number" &&
    values.heartbeatTimeoutMs <= values.heartbeatIntervalMs
  ) {
    problems.push({
      variable: "ATTESTMESH_HEARTBEAT_TIMEOUT_MS",
      problem: `${values.heartbeatTimeoutMs} ms is not above the heartbeat interval (${values.heartbeatIntervalMs} ms)`,
      fix: "use a timeout of about three intervals",
    });
  }
  return problems;
}

/** The configuration as it may be logged: URLs as scheme and host, the gas key only as whether it is set. */
export function describeConfig(config: SidecarConfig): Record<string, unknown> {
  return {
    ...loggableConfig(config),
    rpcUrls: config.rpcUrls === undefined ? "unset" : config.rpcUrls.map((url) => redactUrl(url)),
  };
}
