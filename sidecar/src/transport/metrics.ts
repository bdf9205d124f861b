// Prometheus metrics of the gateway bridge's ingress, registered on the sidecar's registry.
import { Counter, Gauge, type Registry } from "prom-client";

export interface TransportMetrics {
  /** Inbound streams refused, by reason (each also logged). */
  readonly ingressRefused: Counter<"reason">;
  /** Inbound streams whose hello verified and that a peer's link adopted. */
  readonly ingressAccepted: Counter;
  /** Connections waiting for their hello now. */
  readonly ingressPending: Gauge;
}

export function createTransportMetrics(registry: Registry): TransportMetrics {
  const registers = [registry];
  return {
    ingressRefused: new Counter({
      name: "attestmesh_gateway_ingress_refused_total",
      help: "Inbound gateway streams refused and closed, by reason (bad-signature, stale-hello, replayed-hello, unknown-peer, no-hello-in-time, pending-evicted, ...).",
      labelNames: ["reason"] as const,
      registers,
    }),
    ingressAccepted: new Counter({
      name: "attestmesh_gateway_ingress_accepted_total",
      help: "Inbound gateway streams whose signed hello verified, attached to their peer's link.",
      registers,
    }),
    ingressPending: new Gauge({
      name: "attestmesh_gateway_ingress_pending",
      help: "Inbound gateway connections waiting for their hello.",
      registers,
    }),
  };
}
