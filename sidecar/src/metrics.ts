// Prometheus metrics of one sidecar, in a registry of its own (several sidecars can share a process in
// tests). Served on GET /metrics by the health server.
import { metricsOn, SECONDS_BUCKETS } from "@attestmesh/shared/service/metrics.ts";
import { Registry } from "prom-client";
import { PHASES, type Phase } from "./phase.ts";

export type SidecarMetrics = Readonly<ReturnType<typeof createMetrics>>;

export function createMetrics() {
  const registry = new Registry();
  const { counter, gauge, histogram } = metricsOn(registry);
  const phase = gauge("attestmesh_phase", "1 for the sidecar's current phase, 0 for the others.", ["phase"]);
  return {
    registry,
    reconciles: counter("attestmesh_reconcile_total", "Reconcile passes, by outcome.", ["outcome"]),
    reconcileSeconds: histogram(
      "attestmesh_reconcile_duration_seconds",
      "Duration of reconcile passes.",
      SECONDS_BUCKETS,
    ),
    rpcCalls: counter("attestmesh_rpc_calls_total", "JSON-RPC calls made to the chain, by method.", [
      "method",
    ]),
    rpcDisagreements: counter(
      "attestmesh_rpc_disagreements_total",
      "Quorum reads on which RPC providers returned different answers (adversarial: a provider lied or served another chain), by read. The outvoted answer is never acted on.",
      ["read"],
    ),
    rpcProviderFailures: counter(
      "attestmesh_rpc_provider_failures_total",
      "RPC calls a provider did not answer (down, timeout, rate-limited), by provider origin.",
      ["provider"],
    ),
    wgOperations: counter(
      "attestmesh_wireguard_operations_total",
      "WireGuard peer changes applied (set or remove).",
    ),
    wgRestarts: counter(
      "attestmesh_wireguard_restarts_total",
      "WireGuard interfaces brought up again after they went away by themselves, by reason: daemon-exited (wireguard-go died: crash, OOM kill) or interface-gone (deleted from outside).",
      ["reason"],
    ),
    wgStartFailures: counter(
      "attestmesh_wireguard_start_failures_total",
      "Attempts to bring the WireGuard interface up that failed (wireguard-go missing or dying as it starts, a command refused), by reason: start-failed (not up since the node became a member) or restart-failed (bringing back one that went away by itself).",
      ["reason"],
    ),
    peers: gauge(
      "attestmesh_peers",
      "Peers by state: desired (from chain), handshaken (completed a WireGuard handshake), via-gateway and via-udp (the path their traffic takes).",
      ["state"],
    ),
    droppedRecords: gauge(
      "attestmesh_dropped_member_records",
      "Active member records that could not become a peer in the last reconcile.",
    ),
    registrationAttempts: counter(
      "attestmesh_registration_attempts_total",
      "Registration attempts, by outcome (registered, already-member, or the refusal).",
      ["outcome"],
    ),
    lastReconcileBlock: gauge(
      "attestmesh_last_reconcile_block",
      "The confirmed block the last successful reconcile read membership at.",
    ),
    phase,
    setPhase(current: Phase): void {
      for (const p of PHASES) phase.set({ phase: p }, p === current ? 1 : 0);
    },
  };
}
