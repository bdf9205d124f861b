// Who starts the first handshake with a new peer. WireGuard sends a keepalive, and so a handshake
// initiation, the moment a peer with a persistent keepalive is added. When two nodes add each other at
// nearly the same moment (a newcomer and an existing node reconciling on the same block), both
// initiations cross: each side's responder overwrites its own pending initiation when it consumes the
// peer's, drops the response to its own, and both wait out WireGuard's 5 s retry.
//
// The tie-break: of the two, the side with the lower WireGuard public key (bytes compared) initiates
// at once; the other adds the peer without its persistent keepalive for a short hold, so adding it
// sends nothing. The endpoint stays: wireguard-go stamps a handshake attempt before sending it, and an
// attempt without an endpoint would hold back every initiation for the next 5 s (measured: joins took
// 5.4–7 s). Traffic to the peer during the hold still starts a handshake, as before. The hold ends early
// once the peer has handshaken, and at its end the keepalive goes in, which starts a handshake at once
// if the lower side's initiation never came (it added this node first, and this node did not know it
// yet). A re-add (a direct-path test, a fallback to the gateway) is held the same way: both sides of a
// pair run the same transport schedule, so they re-add each other together and their initiations
// would cross just as on a join (measured on the gateway e2e: each crossing stalled the pair for 5 s,
// right after a failed direct test, and a TCP stream through the gateway timed out). A restart with the
// peer already configured starts at once.
//
// Whoever learns of the other second initiates at once, whatever the keys: when the peer already tried
// to reach this node and was refused because this node did not know it yet (the gateway bridge verifies
// that attempt's signed hello once the peer's key is known: transport/bridge.ts), the peer's initiation
// is gone and WireGuard will not resend it for 5 s, so holding would only wait. On a join that is the
// newcomer: existing nodes see its registration first, and their initiations reach it before it has
// verified their certificates.
import type { PeerConfig, PeerStatus } from "../model/wireguard.ts";

/** Long enough for the lower side's initiation to arrive after both added each other, short for a join. */
export const DEFAULT_HANDSHAKE_HOLD_MS = 300;

export interface HandshakeTieBreak {
  /**
   * The configurations to apply now: `planned` as is, except a held peer, which goes in without its
   * persistent keepalive. `present` is what the interface has (`backend.peers()`, minus peers about to
   * be re-added); `now` is a `Date.now()` timestamp; `eager` are peers that already tried to reach this
   * node before it knew them: never held.
   */
  apply(
    planned: readonly PeerConfig[],
    present: readonly PeerStatus[],
    now?: number,
    eager?: ReadonlySet<string>,
  ): PeerConfig[];
  /** When the earliest hold ends (a timestamp), or undefined when no peer is held. */
  nextRelease(): number | undefined;
  /** These peers were just removed to be re-added: the next `apply` treats them as new again. */
  readding(publicKeys: Iterable<string>): void;
}

/** True when this node (its base64 public key) starts the first handshake with `peerKey`. */
export function initiatesFirst(selfKey: string, peerKey: string): boolean {
  return Buffer.compare(Buffer.from(selfKey, "base64"), Buffer.from(peerKey, "base64")) < 0;
}

export function createHandshakeTieBreak(options: {
  /** This node's WireGuard public key, base64. */
  readonly selfKey: string;
  readonly holdMs?: number;
}): HandshakeTieBreak {
  const holdMs = options.holdMs ?? DEFAULT_HANDSHAKE_HOLD_MS;
  /** Peers this process has configured (or found configured); each is considered for a hold once per add. */
  const known = new Set<string>();
  /** Held peers: public key → when the hold began. */
  const held = new Map<string, number>();

  return {
    apply(planned, present, now = Date.now(), eager = new Set<string>()) {
      const presentByKey = new Map(present.map((p) => [p.publicKey, p]));
      const plannedKeys = new Set(planned.map((p) => p.publicKey));
      // Forget peers no longer planned (evicted, rotated away), so the sets stay as small as the mesh.
      for (const key of known) if (!plannedKeys.has(key)) known.delete(key);
      for (const key of held.keys()) if (!plannedKeys.has(key)) held.delete(key);

      return planned.map((peer) => {
        const key = peer.publicKey;
        if (!known.has(key)) {
          known.add(key);
          if (!presentByKey.has(key) && !initiatesFirst(options.selfKey, key)) held.set(key, now);
        }
        if (eager.has(key)) held.delete(key);
        const since = held.get(key);
        if (since === undefined) return peer;
        const handshaken = (presentByKey.get(key)?.latestHandshake ?? 0) > 0;
        if (handshaken || now - since >= holdMs) {
          held.delete(key);
          return peer;
        }
        const { keepaliveSeconds: _keepalive, ...quiet } = peer;
        return quiet;
      });
    },
    nextRelease() {
      let earliest: number | undefined;
      for (const since of held.values()) {
        const end = since + holdMs;
        if (earliest === undefined || end < earliest) earliest = end;
      }
      return earliest;
    },
    readding(publicKeys) {
      for (const key of publicKeys) {
        known.delete(key);
        held.delete(key);
      }
    },
  };
}
