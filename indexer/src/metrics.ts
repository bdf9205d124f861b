// Prometheus metrics of one indexer, in a registry of its own (tests run several in one process).
import { metricsOn } from "@attestmesh/shared/service/metrics.ts";
import { Registry } from "prom-client";

export type IndexerMetrics = Readonly<ReturnType<typeof createMetrics>>;

export function createMetrics() {
  const registry = new Registry();
  const { counter, gauge } = metricsOn(registry);
  return {
    registry,
    lagBlocks: gauge(
      "attestmesh_indexer_lag_blocks",
      "Blocks between the chain head and the last block processed, per cluster.",
      ["cluster"],
    ),
    subscribers: gauge("attestmesh_indexer_subscribers", "Authenticated subscribers, per cluster.", [
      "cluster",
    ]),
    pushes: counter(
      "attestmesh_indexer_pushes_total",
      "Envelopes sent to subscribers (rate() gives pushes per second).",
      ["cluster"],
    ),
    envelopes: counter(
      "attestmesh_indexer_envelopes_total",
      "Envelopes signed, per cluster; removed=true for reorg retractions.",
      ["cluster", "removed"],
    ),
    reorgs: counter("attestmesh_indexer_reorgs_total", "Reorgs detected by block hash, per cluster.", [
      "cluster",
    ]),
    refused: counter("attestmesh_indexer_subscribe_refused_total", "Subscriptions refused, by reason.", [
      "reason",
    ]),
    cutOff: counter(
      "attestmesh_indexer_subscribers_cut_off_total",
      "Subscribers cut off for falling behind, by reason.",
      ["reason"],
    ),
    followErrors: counter(
      "attestmesh_indexer_follow_errors_total",
      "Failed follow ticks (RPC errors), per cluster; the next tick retries.",
      ["cluster"],
    ),
    polls: counter(
      "attestmesh_indexer_polls_total",
      "Follow steps started by the poll timer (every poll interval; the subscribed interval while new heads wake it).",
    ),
    heads: counter(
      "attestmesh_indexer_heads_total",
      "New-head notifications received on the WebSocket subscription (each wakes the follow step).",
    ),
    headOutages: counter(
      "attestmesh_indexer_head_subscription_outages_total",
      "Times the new-heads subscription went down (polling alone follows until it is back).",
    ),
    headSubscribed: gauge(
      "attestmesh_indexer_head_subscription_up",
      "1 while the new-heads subscription is up, 0 while it is down or not configured.",
    ),
  };
}
