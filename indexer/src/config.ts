// The indexer's configuration: environment variables only, parsed once at start. Every bad value is
// reported in one error that names the variable and how to fix it. `CONFIG_DOCS` is the README table.
import { type Address, getAddress, isAddress } from "viem";
import { fatalError } from "./errors.ts";

export interface IndexerConfig {
  readonly rpcUrl: string;
  /** The cluster diamonds served. */
  readonly clusters: readonly Address[];
  readonly chainId: number | undefined;
  /** First block read; undefined: the confirmed head at start (never genesis by default). */
  readonly startBlock: bigint | undefined;
  readonly confirmations: number;
  readonly batchBlocks: number;
  readonly pollIntervalMs: number;
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
  readonly logLevel: string;
}

export type Env = Readonly<Record<string, string | undefined>>;

interface Spec {
  readonly name: string;
  readonly key: keyof IndexerConfig;
  readonly required?: boolean;
  readonly default?: string;
  readonly description: string;
  readonly parse: (text: string) => unknown;
}

class Problem extends Error {}

const int =
  (min: number, max: number) =>
  (text: string): number => {
    const value = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new Problem(`${JSON.stringify(text)} is not a whole number in ${min}..${max}`);
    }
    return value;
  };

function address(text: string): Address {
  if (!isAddress(text, { strict: false }) || !/^0x[0-9a-fA-F]{40}$/.test(text)) {
    throw new Problem(`${JSON.stringify(text)} is not a 20-byte 0x address`);
  }
  return getAddress(text);
}

const SPECS: readonly Spec[] = [
  {
    name: "ATTESTMESH_INDEXER_RPC_URL",
    key: "rpcUrl",
    required: true,
    description: "JSON-RPC endpoint (http or https) of the chain the clusters live on.",
    parse: (text) => {
      if (!/^https?:\/\//.test(text)) throw new Problem("is not an http(s) URL");
      return text;
    },
  },
  {
    name: "ATTESTMESH_INDEXER_CLUSTERS",
    key: "clusters",
    required: true,
    description: "Comma-separated cluster diamond addresses to follow and serve.",
    parse: (text) => {
      const list = text
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "")
        .map(address);
      if (list.length === 0) throw new Problem("names no cluster");
      return [...new Set(list)];
    },
  },
  {
    name: "ATTESTMESH_INDEXER_CHAIN_ID",
    key: "chainId",
    description: "Expected chain id; the RPC's is checked against it at start.",
    parse: int(1, Number.MAX_SAFE_INTEGER),
  },
  {
    name: "ATTESTMESH_INDEXER_START_BLOCK",
    key: "startBlock",
    description:
      "First block to read logs from; unset: the confirmed head at start (never genesis by default).",
    parse: (text) => {
      if (!/^\d+$/.test(text)) throw new Problem(`${JSON.stringify(text)} is not a block number`);
      return BigInt(text);
    },
  },
  {
    name: "ATTESTMESH_INDEXER_CONFIRMATIONS",
    key: "confirmations",
    default: "2",
    description: "Blocks behind the head the indexer stays; logs are pushed once this deep.",
    parse: int(0, 1000),
  },
  {
    name: "ATTESTMESH_INDEXER_BATCH_BLOCKS",
    key: "batchBlocks",
    default: "1000",
    description: "Most blocks one eth_getLogs call spans while catching up.",
    parse: int(1, 100_000),
  },
  {
    name: "ATTESTMESH_INDEXER_POLL_INTERVAL_MS",
    key: "pollIntervalMs",
    default: "1000",
    description: "How often the head is polled, in milliseconds.",
    parse: int(50, 3_600_000),
  },
  {
    name: "ATTESTMESH_INDEXER_HOST",
    key: "host",
    default: "0.0.0.0",
    description: "Address the WebSocket, /healthz and /metrics server listens on.",
    parse: (text) => text,
  },
  {
    name: "ATTESTMESH_INDEXER_PORT",
    key: "port",
    default: "8787",
    description: "Port of that server (0 picks a free one).",
    parse: int(0, 65535),
  },
  {
    name: "DSTACK_SIMULATOR_ENDPOINT",
    key: "dstackEndpoint",
    description: "dstack guest agent (socket path or http URL); unset means /var/run/dstack.sock.",
    parse: (text) => text,
  },
  {
    name: "ATTESTMESH_INDEXER_WINDOW",
    key: "window",
    default: "256",
    description: "Envelopes a subscriber may leave unacknowledged before sending to it pauses.",
    parse: int(1, 100_000),
  },
  {
    name: "ATTESTMESH_INDEXER_ACK_TIMEOUT_MS",
    key: "ackTimeoutMs",
    default: "30000",
    description: "How long a subscriber's full window may go unacknowledged before it is cut off as stalled.",
    parse: int(10, 3_600_000),
  },
  {
    name: "ATTESTMESH_INDEXER_HISTORY",
    key: "history",
    default: "10000",
    description:
      "Envelopes kept per cluster so subscribers can resume from a cursor; a subscriber that falls further behind is cut off.",
    parse: int(1, 10_000_000),
  },
  {
    name: "ATTESTMESH_INDEXER_AUTH_TIMEOUT_MS",
    key: "authTimeoutMs",
    default: "10000",
    description: "How long a connection may take to send its signed subscribe message.",
    parse: int(100, 600_000),
  },
  {
    name: "ATTESTMESH_INDEXER_LOG_LEVEL",
    key: "logLevel",
    default: "info",
    description: "Log level: trace, debug, info, warn, error, fatal, silent.",
    parse: (text) => {
      if (!["trace", "debug", "info", "warn", "error", "fatal", "silent"].includes(text)) {
        throw new Problem(`${JSON.stringify(text)} is not a log level`);
      }
      return text;
    },
  },
];

/** Every variable, for the README. */
export const CONFIG_DOCS = SPECS.map((s) => ({
  name: s.name,
  required: s.required === true,
  default: s.default,
  description: s.description,
}));

export function parseConfig(env: Env): IndexerConfig {
  const values: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const s of SPECS) {
    const text = env[s.name]?.trim() ?? "";
    try {
      if (text === "") {
        if (s.required) throw new Problem(`is not set: ${s.description}`);
        values[s.key] = s.default === undefined ? undefined : s.parse(s.default);
      } else {
        values[s.key] = s.parse(text);
      }
    } catch (error) {
      if (!(error instanceof Problem)) throw error;
      problems.push(`${s.name}: ${error.message}`);
    }
  }
  if (problems.length > 0) {
    throw fatalError("InvalidConfig", `invalid configuration:\n  ${problems.join("\n  ")}`, {
      details: { problems },
    });
  }
  return Object.freeze(values) as unknown as IndexerConfig;
}
