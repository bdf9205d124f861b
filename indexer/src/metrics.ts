// Prometheus metrics of one indexer, in a registry of its own (tests run several in one process).
import { Counter, Gauge, Registry } from "prom-client";

export interface IndexerMetrics {
  readonly registry: Registry;
  /** Blocks between the chain head and the last processed block, per cluster. */
  readonly lagBlocks: Gauge<"cluster">;
  readonly subscribers: Gauge<"cluster">;
  /** Envelopes sent to subscribers; pushes per second is its rate. */
  readonly pushes: Counter<"cluster">;
  readonly envelopes: Counter<"cluster" | "removed">;
  readonly reorgs: Counter<"cluster">;
  readonly refused: Counter<"reason">;
  readonly cutOff: Counter<"reason">;
  readonly followErrors: Counter<"cluster">;
}

export function createMetrics(): IndexerMetrics {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    lagBlocks: new Gauge({
      name: "attestmesh_indexer_lag_blocks",
      help: "Blocks between the chain head and the last block processed, per cluster.",
      labelNames: ["cluster"] as const,
      registers,
    }),
    subscribers: new Gauge({
      name: "attestmesh_indexer_subscribers",
      help: "Authenticated subscribers, per cluster.",
      labelNames: ["cluster"] as const,
      registers,
    }),
    pushes: new Counter({
      name: "attestmesh_indexer_pushes_total",
      help: "Envelopes sent to subscribers (rate() gives pushes per second).",
      labelNames: ["cluster"] as const,
      registers,
    }),
    envelopes: new Counter({
      name: "attestmesh_indexer_envelopes_total",
      help: "Envelopes signed, per cluster; removed=true for reorg retractions.",
      labelNames: ["cluster", "removed"] as const,
      registers,
    }),
    reorgs: new Counter({
      name: "attestmesh_indexer_reorgs_total",
      help: "Reorgs detected by block hash, per cluster.",
      labelNames: ["cluster"] as const,
      registers,
    }),
    refused: new Counter({
      name: "attestmesh_indexer_subscribe_refused_total",
      help: "Subscriptions refused, by reason.",
      labelNames: ["reason"] as const,
      registers,
    }),
    cutOff: new Counter({
      name: "attestmesh_indexer_subscribers_cut_off_total",
      help: "Subscribers cut off for falling behind, by reason.",
      labelNames: ["reason"] as const,
      registers,
    }),
    followErrors: new Counter({
      name: "attestmesh_indexer_follow_errors_total",
      help: "Failed follow ticks (RPC errors), per cluster; the next tick retries.",
      labelNames: ["cluster"] as const,
      registers,
    }),
  };
}
