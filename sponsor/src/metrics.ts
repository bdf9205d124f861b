// Prometheus metrics of the sponsorship service, in a registry of its own. Served on GET /metrics.
import { Counter, Histogram, Registry } from "prom-client";

export interface SponsorMetrics {
  readonly registry: Registry;
  /** Every decision: method (stub or final), approved or refused, the refusal reason, the function. */
  readonly decisions: Counter<"method" | "decision" | "reason" | "function">;
  /** The most the approved operations can cost the paymaster, by function. */
  readonly approvedMaxCostWei: Counter<"function">;
  readonly decisionSeconds: Histogram<"method">;
}

export function createSponsorMetrics(): SponsorMetrics {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    decisions: new Counter({
      name: "attestmesh_sponsor_decisions_total",
      help: "Sponsorship decisions, by JSON-RPC method, decision, refusal reason and cluster function.",
      labelNames: ["method", "decision", "reason", "function"] as const,
      registers,
    }),
    approvedMaxCostWei: new Counter({
      name: "attestmesh_sponsor_approved_max_cost_wei_total",
      help: "Maximum cost (gas limits times maxFeePerGas) of approved operations, in wei.",
      labelNames: ["function"] as const,
      registers,
    }),
    decisionSeconds: new Histogram({
      name: "attestmesh_sponsor_decision_duration_seconds",
      help: "Time to decide on one request, chain reads included.",
      labelNames: ["method"] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
  };
}
