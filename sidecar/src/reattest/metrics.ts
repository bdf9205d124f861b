// Metrics of peer re-attestation: checks by outcome and their duration, attestation bytes fetched
// and served over the mesh, and how many peers are in each state now.
import { metricsOn, SECONDS_BUCKETS } from "@attestmesh/shared/service/metrics.ts";
import type { Registry } from "prom-client";
import type { AttestationStatus, CheckOutcome, PeerAttestation } from "./scheduler.ts";

const STATUSES: readonly AttestationStatus[] = ["pending", "passed", "failed", "unreachable"];

export type ReattestMetrics = Readonly<ReturnType<typeof createReattestMetrics>>;

export function createReattestMetrics(registry: Registry) {
  const { counter, gauge, histogram } = metricsOn(registry);
  const checks = counter(
    "attestmesh_peer_attestation_checks_total",
    "Peer attestation checks, by outcome: passed/failed (a fetched quote judged), unreachable (no answer or no collateral), policy-passed/policy-failed (last evidence re-judged against the head's policy).",
    ["outcome"],
  );
  const checkSeconds = histogram(
    "attestmesh_peer_attestation_check_seconds",
    "Time of one peer attestation check (fetch over the mesh, quote verification, policy reads), by outcome.",
    SECONDS_BUCKETS,
    ["outcome"],
  );
  const bytes = counter(
    "attestmesh_peer_attestation_bytes_total",
    "Attestation document bytes over the mesh: received (fetched from peers) and sent (served to them).",
    ["direction"],
  );
  const peers = gauge(
    "attestmesh_peer_attestations",
    "Peers by re-attestation status: pending, passed, failed (refused: not a WireGuard peer, no CSK), unreachable.",
    ["status"],
  );
  return {
    checks,
    checkSeconds,
    bytes,
    peers,
    observe(outcome: CheckOutcome, ms: number): void {
      checks.inc({ outcome });
      checkSeconds.observe({ outcome }, ms / 1000);
    },
    publish(report: readonly PeerAttestation[]): void {
      for (const status of STATUSES) peers.set({ status }, report.filter((p) => p.status === status).length);
    },
  };
}
