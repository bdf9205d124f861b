// Prometheus counters of sealed messages, registered in the sidecar's own registry.
import { Counter, type Registry } from "prom-client";

export interface MessageMetrics {
  readonly received: Counter;
  readonly dropped: Counter<"reason">;
  readonly sent: Counter<"outcome">;
}

const byRegistry = new WeakMap<Registry, MessageMetrics>();

/** The message counters of `registry`, created on first use (a retried start reuses them). */
export function createMessageMetrics(registry: Registry): MessageMetrics {
  const existing = byRegistry.get(registry);
  if (existing !== undefined) return existing;
  const registers = [registry];
  const metrics: MessageMetrics = {
    received: new Counter({
      name: "attestmesh_messages_received_total",
      help: "Sealed messages opened, checked and delivered to the application API.",
      registers,
    }),
    dropped: new Counter({
      name: "attestmesh_messages_dropped_total",
      help: "MessageSent logs for this member that were not delivered, by reason.",
      labelNames: ["reason"] as const,
      registers,
    }),
    sent: new Counter({
      name: "attestmesh_messages_sent_total",
      help: "Send requests, by outcome (sent, or the error code).",
      labelNames: ["outcome"] as const,
      registers,
    }),
  };
  byRegistry.set(registry, metrics);
  return metrics;
}
