// Prometheus metrics of the mesh protocols, registered on the sidecar's registry.
import { Counter, Gauge, type Registry } from "prom-client";

export interface MeshMetrics {
  readonly heartbeatsReceived: Counter<"result">;
  readonly heartbeatsSent: Counter;
  readonly meshBytes: Counter<"direction" | "type">;
  readonly livePeers: Gauge;
  readonly converged: Gauge;
  readonly cskEpoch: Gauge;
  readonly cskAcquired: Gauge;
  readonly cskServed: Counter<"outcome">;
  readonly cskRejected: Counter<"reason">;
  readonly cskCommits: Counter<"outcome">;
  readonly meshDropped: Counter<"type" | "reason">;
}

export function createMeshMetrics(registry: Registry): MeshMetrics {
  const registers = [registry];
  return {
    heartbeatsReceived: new Counter({
      name: "attestmesh_heartbeats_received_total",
      help: "Heartbeats received, by result: accepted, or why one was not counted.",
      labelNames: ["result"] as const,
      registers,
    }),
    heartbeatsSent: new Counter({
      name: "attestmesh_heartbeats_sent_total",
      help: "Heartbeat datagrams sent (one per peer per interval).",
      registers,
    }),
    meshBytes: new Counter({
      name: "attestmesh_mesh_bytes_total",
      help: "UDP payload bytes of the mesh protocols, by direction (sent, received) and message type.",
      labelNames: ["direction", "type"] as const,
      registers,
    }),
    livePeers: new Gauge({
      name: "attestmesh_live_peers",
      help: "Peers whose heartbeats currently count.",
      registers,
    }),
    converged: new Gauge({
      name: "attestmesh_converged",
      help: "1 when every live member reports the same live set as this node.",
      registers,
    }),
    cskEpoch: new Gauge({
      name: "attestmesh_csk_epoch",
      help: "Epoch of the CSK held (-1 when none).",
      registers,
    }),
    cskAcquired: new Gauge({
      name: "attestmesh_csk_acquired",
      help: "1 when the CSK of the chain's current epoch is held.",
      registers,
    }),
    cskServed: new Counter({
      name: "attestmesh_csk_requests_total",
      help: "CSK requests this node received, by outcome (served, not-held, or why it was refused).",
      labelNames: ["outcome"] as const,
      registers,
    }),
    cskRejected: new Counter({
      name: "attestmesh_csk_rejected_total",
      help: "CSK answers from peers that were rejected, by reason (hash-mismatch = a bogus key).",
      labelNames: ["reason"] as const,
      registers,
    }),
    cskCommits: new Counter({
      name: "attestmesh_csk_commits_total",
      help: "CSK commitments this node attempted, by outcome.",
      labelNames: ["outcome"] as const,
      registers,
    }),
    meshDropped: new Counter({
      name: "attestmesh_mesh_dropped_total",
      help: "Mesh datagrams dropped, by message type and reason (rate-limited, wrong-source, not-a-member, departed, ...).",
      labelNames: ["type", "reason"] as const,
      registers,
    }),
  };
}
