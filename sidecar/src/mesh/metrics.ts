// Prometheus metrics of the mesh protocols, registered on the sidecar's registry.
import { metricsOn } from "@attestmesh/shared/service/metrics.ts";
import type { Registry } from "prom-client";

export type MeshMetrics = Readonly<ReturnType<typeof createMeshMetrics>>;

export function createMeshMetrics(registry: Registry) {
  const { counter, gauge } = metricsOn(registry);
  return {
    heartbeatsReceived: counter(
      "attestmesh_heartbeats_received_total",
      "Liveness datagrams (probes, acks, gossip) received, by result: accepted, or why one was dropped.",
      ["result"],
    ),
    heartbeatsSent: counter(
      "attestmesh_heartbeats_sent_total",
      "Liveness datagrams sent (a bounded few per probe period, whatever the mesh size).",
    ),
    meshBytes: counter(
      "attestmesh_mesh_bytes_total",
      "UDP payload bytes of the mesh protocols, by direction (sent, received) and message type.",
      ["direction", "type"],
    ),
    livePeers: gauge(
      "attestmesh_live_peers",
      "Peers live by their own signed word (alive or suspected, not declared dead).",
    ),
    converged: gauge(
      "attestmesh_converged",
      "1 when every live member reports the same live set as this node.",
    ),
    cskEpoch: gauge("attestmesh_csk_epoch", "Epoch of the CSK held (-1 when none)."),
    cskAcquired: gauge("attestmesh_csk_acquired", "1 when the CSK of the chain's current epoch is held."),
    cskServed: counter(
      "attestmesh_csk_requests_total",
      "CSK requests this node received, by outcome (served, not-held, or why it was refused).",
      ["outcome"],
    ),
    cskRejected: counter(
      "attestmesh_csk_rejected_total",
      "CSK answers from peers that were rejected, by reason (hash-mismatch = a bogus key).",
      ["reason"],
    ),
    cskCommits: counter("attestmesh_csk_commits_total", "CSK commitments this node attempted, by outcome.", [
      "outcome",
    ]),
    meshDropped: counter(
      "attestmesh_mesh_dropped_total",
      "Mesh datagrams dropped, by message type and reason (rate-limited, wrong-source, not-a-member, departed, ...).",
      ["type", "reason"],
    ),
  };
}
