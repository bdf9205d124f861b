// Prometheus counters of sealed messages, registered in the sidecar's own registry.
import { metricsOn } from "@attestmesh/shared/service/metrics.ts";
import type { Registry } from "prom-client";

export type MessageMetrics = Readonly<ReturnType<typeof declareMessageMetrics>>;

const byRegistry = new WeakMap<Registry, MessageMetrics>();

/** The message counters of `registry`, created on first use (a retried start reuses them). */
export function createMessageMetrics(registry: Registry): MessageMetrics {
  let metrics = byRegistry.get(registry);
  if (metrics === undefined) {
    metrics = declareMessageMetrics(registry);
    byRegistry.set(registry, metrics);
  }
  return metrics;
}

function declareMessageMetrics(registry: Registry) {
  const { counter } = metricsOn(registry);
  return {
    received: counter(
      "attestmesh_messages_received_total",
      "Sealed messages opened, checked and delivered to the application API.",
    ),
    dropped: counter(
      "attestmesh_messages_dropped_total",
      "MessageSent logs for this member that were not delivered, by reason.",
      ["reason"],
    ),
    sent: counter("attestmesh_messages_sent_total", "Send requests, by outcome (sent, or the error code).", [
      "outcome",
    ]),
  };
}
