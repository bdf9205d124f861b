// What the application API reads from the rest of the sidecar, as small provider interfaces. The
// heartbeat and CSK modules implement `PeerLiveness` and `CskReader` (the heartbeat peer table and the
// CSK custody fit as they are); until they are wired, liveness comes from
// WireGuard's latest handshake and the cluster shared key is unavailable (503).
import type { Address } from "viem";
import type { CskHolder } from "../csk/holder.ts";
import type { HeartbeatEvent } from "../heartbeat/service.ts";
import type { SidecarStatus } from "../status.ts";

/** One peer as the API reports it. */
export interface PeerLivenessEntry {
  readonly memberId: bigint;
  readonly appId: Address;
  readonly meshIp: string;
  /** Whether the peer counts as live right now. */
  readonly live: boolean;
  /** When the last heartbeat that counted arrived (ms since the epoch); undefined if none yet. */
  readonly lastHeartbeatMs: number | undefined;
}

export interface PeerLivenessEntry {
  readonly memberId: bigint;
  readonly appId: Address;
  readonly meshIp: string;
  /** Whether the peer counts as live right now. */
  readonly live: boolean;
  /** When the last heartbeat that counted arrived (ms since the epoch); undefined if none yet. */
  readonly lastHeartbeatMs: number | undefined;
}

/** A mesh-wide event a liveness source may publish; `converged` and `diverged` reach the app. */
export interface MeshEvent {
  readonly type: string;
  /** For `converged`: the live set every live member agrees on. */
  readonly live?: readonly bigint[];
}

export interface PeerLiveness {
  /** Names the evidence behind `live`; absent means signed heartbeats ("heartbeat"). */
  readonly source?: string;
  /** Every desired peer (active members but this node), in member-id order. */
  peers(): readonly PeerLivenessEntry[];
  /** Mesh-wide events (convergence), if the source has them; returns an unsubscribe function. */
  onEvent?(listener: (event: HeartbeatEvent) => void): () => void;
}

/** The read side of the CSK custody the API needs: the key of the current epoch, when this node holds it. */
export type CskReader = Pick<CskHolder, "current">;

/**
 * WireGuard's view, until signed heartbeats exist: a peer is live while its latest handshake is younger
 * than `maxAgeSeconds` (default 180 s: WireGuard re-handshakes every 2 minutes on an active tunnel,
 * and persistent keepalive keeps it active).
 */
export function handshakeLiveness(
  status: () => SidecarStatus,
  options: { readonly maxAgeSeconds?: number; readonly now?: () => number } = {},
): PeerLiveness {
  const maxAge = options.maxAgeSeconds ?? 180;
  const now = options.now ?? Date.now;
  return {
    source: "wireguard-handshake",
    peers() {
      const nowSeconds = now() / 1000;
      return [...status().peers]
        .sort((a, b) => (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0))
        .map((p) => ({
          memberId: p.memberId,
          appId: p.appId,
          meshIp: p.meshIp,
          live: p.latestHandshake > 0 && nowSeconds - p.latestHandshake <= maxAge,
          lastHeartbeatMs: p.latestHandshake > 0 ? p.latestHandshake * 1000 : undefined,
        }));
    },
  };
}
