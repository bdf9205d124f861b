// Prometheus metrics of the gateway bridge's ingress, registered on the sidecar's registry.
import { metricsOn } from "@attestmesh/shared/service/metrics.ts";
import type { Registry } from "prom-client";

export type TransportMetrics = Readonly<ReturnType<typeof createTransportMetrics>>;

export function createTransportMetrics(registry: Registry) {
  const { counter, gauge } = metricsOn(registry);
  return {
    /** Each refusal is also logged. */
    ingressRefused: counter(
      "attestmesh_gateway_ingress_refused_total",
      "Inbound gateway streams refused and closed, by reason (bad-signature, stale-hello, replayed-hello, unknown-peer, no-hello-in-time, pending-evicted, ...).",
      ["reason"],
    ),
    ingressAccepted: counter(
      "attestmesh_gateway_ingress_accepted_total",
      "Inbound gateway streams whose signed hello verified, attached to their peer's link.",
    ),
    ingressPending: gauge(
      "attestmesh_gateway_ingress_pending",
      "Inbound gateway connections waiting for their hello.",
    ),
  };
}
