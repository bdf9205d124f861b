// Prometheus metrics of one sidecar, in a registry of its own (several sidecars can share a process in
// tests). Served on GET /metrics by the health server.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { PHASES, type Phase } from "./phase.ts";

export interface SidecarMetrics {
  readonly registry: Registry;
  readonly reconciles: Counter<"outcome">;
  readonly reconcileSeconds: Histogram;
  readonly rpcCalls: Counter<"method">;
  readonly rpcDisagreements: Counter<"read">;
  readonly rpcProviderFailures: Counter<"provider">;
  readonly wgOperations: Counter;
  readonly peers: Gauge<"state">;
  readonly droppedRecords: Gauge;
  readonly registrationAttempts: Counter<"outcome">;
  readonly lastReconcileBlock: Gauge;
  readonly phase: Gauge<"phase">;
  setPhase(phase: Phase): void;
}

export function createMetrics(): SidecarMetrics {
  const registry = new Registry();
  const registers = [registry];
  const phase = new Gauge({
    name: "attestmesh_phase",
    help: "1 for the sidecar's current phase, 0 for the others.",
    labelNames: ["phase"] as const,
    registers,
  });
  const metrics: SidecarMetrics = {
    registry,
    reconciles: new Counter({
      name: "attestmesh_reconcile_total",
      help: "Reconcile passes, by outcome.",
      labelNames: ["outcome"] as const,
      registers,
    }),
    reconcileSeconds: new Histogram({
      name: "attestmesh_reconcile_duration_seconds",
      help: "Duration of reconcile passes.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    rpcCalls: new Counter({
      name: "attestmesh_rpc_calls_total",
      help: "JSON-RPC calls made to the chain, by method.",
      labelNames: ["method"] as const,
      registers,
    }),
    rpcDisagreements: new Counter({
      name: "attestmesh_rpc_disagreements_total",
      help: "Quorum reads on which RPC providers returned different answers (adversarial: a provider lied or served another chain), by read. The outvoted answer is never acted on.",
      labelNames: ["read"] as const,
      registers,
    }),
    rpcProviderFailures: new Counter({
      name: "attestmesh_rpc_provider_failures_total",
      help: "RPC calls a provider did not answer (down, timeout, rate-limited), by provider origin.",
      labelNames: ["provider"] as const,
      registers,
    }),
    wgOperations: new Counter({
      name: "attestmesh_wireguard_operations_total",
      help: "WireGuard peer changes applied (set or remove).",
      registers,
    }),
    peers: new Gauge({
      name: "attestmesh_peers",
      help: "Peers by state: desired (from chain), handshaken (completed a WireGuard handshake), via-gateway and via-udp (the path their traffic takes).",
      labelNames: ["state"] as const,
      registers,
    }),
    droppedRecords: new Gauge({
      name: "attestmesh_dropped_member_records",
      help: "Active member records that could not become a peer in the last reconcile.",
      registers,
    }),
    registrationAttempts: new Counter({
      name: "attestmesh_registration_attempts_total",
      help: "Registration attempts, by outcome (registered, already-member, or the refusal).",
      labelNames: ["outcome"] as const,
      registers,
    }),
    lastReconcileBlock: new Gauge({
      name: "attestmesh_last_reconcile_block",
      help: "The confirmed block the last successful reconcile read membership at.",
      registers,
    }),
    phase,
    setPhase(current) {
      for (const p of PHASES) phase.set({ phase: p }, p === current ? 1 : 0);
    },
  };
  return metrics;
}
