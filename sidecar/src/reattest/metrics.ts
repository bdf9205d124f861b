// Metrics of peer re-attestation: checks by outcome and their duration, attestation bytes fetched
// and served over the mesh, and how many peers are in each state now.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { AttestationStatus, CheckOutcome, PeerAttestation } from "./scheduler.ts";

export interface ReattestMetrics {
  readonly checks: Counter<"outcome">;
  readonly checkSeconds: Histogram<"outcome">;
  readonly bytes: Counter<"direction">;
  readonly peers: Gauge<"status">;
  observe(outcome: CheckOutcome, ms: number): void;
  publish(report: readonly PeerAttestation[]): void;
}

const STATUSES: readonly AttestationStatus[] = ["pending", "passed", "failed", "unreachable"];

export function createReattestMetrics(registry: Registry): ReattestMetrics {
  const registers = [registry];
  const checks = new Counter({
    name: "attestmesh_peer_attestation_checks_total",
    help: "Peer attestation checks, by outcome: passed/failed (a fetched quote judged), unreachable (no answer or no collateral), policy-passed/policy-failed (last evidence re-judged against the head's policy).",
    labelNames: ["outcome"] as const,
    registers,
  });
  const checkSeconds = new Histogram({
    name: "attestmesh_peer_attestation_check_seconds",
    help: "Time of one peer attestation check (fetch over the mesh, quote verification, policy reads), by outcome.",
    labelNames: ["outcome"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const bytes = new Counter({
    name: "attestmesh_peer_attestation_bytes_total",
    help: "Attestation document bytes over the mesh: received (fetched from peers) and sent (served to them).",
    labelNames: ["direction"] as const,
    registers,
  });
  const peers = new Gauge({
    name: "attestmesh_peer_attestations",
    help: "Peers by re-attestation status: pending, passed, failed (refused: not a WireGuard peer, no CSK), unreachable.",
    labelNames: ["status"] as const,
    registers,
  });
  return {
    checks,
    checkSeconds,
    bytes,
    peers,
    observe(outcome, ms) {
      checks.inc({ outcome });
      checkSeconds.observe({ outcome }, ms / 1000);
    },
    publish(report) {
      for (const status of STATUSES) peers.set({ status }, report.filter((p) => p.status === status).length);
    },
  };
}
