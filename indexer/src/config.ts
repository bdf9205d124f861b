// The indexer's configuration: environment variables only, parsed once at start with the service kit's
// env table. Every bad value is reported in one error that names the variable and how to fix it.
// `CONFIG_DOCS` is the README table.

import type { ConfigDoc, Env, EnvTable } from "@attestmesh/shared/service/env.ts";
import * as kit from "@attestmesh/shared/service/env.ts";
import type { LogLevel } from "@attestmesh/shared/service/log.ts";
import type { Address } from "viem";

export type { Env } from "@attestmesh/shared/service/env.ts";

export interface IndexerConfig {
  readonly rpcUrl: string;
  /** WebSocket JSON-RPC endpoint of the same chain, for new-head wake-ups; undefined: polling alone. */
  readonly wsUrl: string | undefined;
  /** The cluster diamonds served. */
  readonly clusters: readonly Address[];
  readonly chainId: number | undefined;
  /** First block read; undefined: the confirmed head at start (never genesis by default). */
  readonly startBlock: bigint | undefined;
  readonly confirmations: number;
  readonly batchBlocks: number;
  readonly pollIntervalMs: number;
  /** The poll interval while the new-heads subscription is up (never shorter than `pollIntervalMs`). */
  readonly subscribedPollIntervalMs: number;
  readonly host: string;
  readonly port: number;
  readonly dstackEndpoint: string | undefined;
  /** Envelopes sent but not acknowledged before sending pauses. */
  readonly window: number;
  /** How long a full window may go unacknowledged before the subscriber is cut off. */
  readonly ackTimeoutMs: number;
  /** Envelopes kept per cluster for resuming subscribers. */
  readonly history: number;
  readonly authTimeoutMs: number;
  readonly logLevel: LogLevel;
}

const VARIABLES: EnvTable<IndexerConfig> = {
  rpcUrl: {
    name: "ATTESTMESH_INDEXER_RPC_URL",
    required: true,
    description: "JSON-RPC endpoint (http or https) of the chain the clusters live on.",
    parse: kit.httpUrl,
  },
  wsUrl: {
    name: "ATTESTMESH_INDEXER_WS_URL",
    description:
      "WebSocket JSON-RPC endpoint (ws or wss) of the same chain; each new head wakes the follow step at once, which still reads only over the RPC URL. Unset or down: polling alone.",
    parse: kit.webSocketUrl,
  },
  clusters: {
    name: "ATTESTMESH_INDEXER_CLUSTERS",
    required: true,
    description: "Comma-separated cluster diamond addresses to follow and serve.",
    parse: kit.addressList({ checksum: false }),
  },
  chainId: {
    name: "ATTESTMESH_INDEXER_CHAIN_ID",
    description: "Expected chain id; the RPC's is checked against it at start.",
    parse: kit.integer(1, Number.MAX_SAFE_INTEGER),
  },
  startBlock: {
    name: "ATTESTMESH_INDEXER_START_BLOCK",
    description:
      "First block to read logs from; unset: the confirmed head at start (never genesis by default).",
    parse: kit.bigInteger("blocks"),
  },
  confirmations: {
    name: "ATTESTMESH_INDEXER_CONFIRMATIONS",
    default: "2",
    description: "Blocks behind the head the indexer stays; logs are pushed once this deep.",
    parse: kit.integer(0, 1000),
  },
  batchBlocks: {
    name: "ATTESTMESH_INDEXER_BATCH_BLOCKS",
    default: "1000",
    description:
      "Most blocks one eth_getLogs call spans while catching up; halved while the provider refuses the range.",
    parse: kit.integer(1, 100_000),
  },
  pollIntervalMs: {
    name: "ATTESTMESH_INDEXER_POLL_INTERVAL_MS",
    default: "1000",
    description:
      "How often the head is polled, in milliseconds; with a WebSocket URL, while its subscription is down.",
    parse: kit.integer(50, 3_600_000, " ms"),
  },
  subscribedPollIntervalMs: {
    name: "ATTESTMESH_INDEXER_SUBSCRIBED_POLL_INTERVAL_MS",
    default: "10000",
    description:
      "How often the head is still polled while the new-heads subscription is up: a block whose head is lost is pushed within this long. Keep it well under the sidecars' ATTESTMESH_INDEXER_LAG_MS.",
    parse: kit.integer(50, 3_600_000, " ms"),
  },
  host: {
    name: "ATTESTMESH_INDEXER_HOST",
    default: "0.0.0.0",
    description: "Address the WebSocket, /healthz and /metrics server listens on.",
    parse: kit.hostName,
  },
  port: {
    name: "ATTESTMESH_INDEXER_PORT",
    default: "8787",
    description: "Port of that server (0 picks a free one).",
    parse: kit.integer(0, 65535),
  },
  dstackEndpoint: kit.dstackEndpointVariable,
  window: {
    name: "ATTESTMESH_INDEXER_WINDOW",
    default: "256",
    description: "Envelopes a subscriber may leave unacknowledged before sending to it pauses.",
    parse: kit.integer(1, 100_000),
  },
  ackTimeoutMs: {
    name: "ATTESTMESH_INDEXER_ACK_TIMEOUT_MS",
    default: "30000",
    description: "How long a subscriber's full window may go unacknowledged before it is cut off as stalled.",
    parse: kit.integer(10, 3_600_000, " ms"),
  },
  history: {
    name: "ATTESTMESH_INDEXER_HISTORY",
    default: "10000",
    description:
      "Envelopes kept per cluster so subscribers can resume from a cursor; a subscriber that falls further behind is cut off.",
    parse: kit.integer(1, 10_000_000),
  },
  authTimeoutMs: {
    name: "ATTESTMESH_INDEXER_AUTH_TIMEOUT_MS",
    default: "10000",
    description: "How long a connection may take to send its signed subscribe message.",
    parse: kit.integer(100, 600_000, " ms"),
  },
  logLevel: kit.logLevelVariable("ATTESTMESH_INDEXER_LOG_LEVEL"),
};

/** Every variable, for the README. */
export const CONFIG_DOCS: readonly ConfigDoc[] = kit.configDocs(VARIABLES);

export function parseConfig(env: Env): IndexerConfig {
  return kit.parseEnv(VARIABLES, env);
}
