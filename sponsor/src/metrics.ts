// Prometheus metrics of the sponsorship service, in a registry of its own. Served on GET /metrics.
import { metricsOn } from "@attestmesh/shared/service/metrics.ts";
import { Registry } from "prom-client";

export type SponsorMetrics = Readonly<ReturnType<typeof createSponsorMetrics>>;

export function createSponsorMetrics() {
  const registry = new Registry();
  const { counter, histogram } = metricsOn(registry);
  return {
    registry,
    decisions: counter(
      "attestmesh_sponsor_decisions_total",
      "Sponsorship decisions, by JSON-RPC method, decision, refusal reason and cluster function.",
      ["method", "decision", "reason", "function"],
    ),
    approvedMaxCostWei: counter(
      "attestmesh_sponsor_approved_max_cost_wei_total",
      "Maximum cost (gas limits times maxFeePerGas) of approved operations, in wei.",
      ["function"],
    ),
    decisionSeconds: histogram(
      "attestmesh_sponsor_decision_duration_seconds",
      "Time to decide on one request, chain reads included.",
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      ["method"],
    ),
  };
}
