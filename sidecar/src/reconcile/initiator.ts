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
//
// The hold keeps back only the keepalive: the sidecar's own traffic to the new peer (on a join: the
// mesh's probes, a CSK pull, re-attestation) still starts an initiation at once, and those can cross
// (reproduced on real wireguard-go: 3 of 5 such adds had no handshake within 4 s). A crossing leaves
// its mark: each side received the other's 148-byte initiation (rx bytes > 0) and has no handshake.
// The side that initiates first checks for that mark shortly after the add and, if it is still there a
// round trip later, removes and re-adds the peer: a fresh peer may initiate at once, while the other side, which just
// answered, may not for 5 s, so the new initiation cannot cross again and is answered.
import type { PeerConfig, PeerStatus } from "../model/wireguard.ts";

/** Long enough for the lower side's initiation to arrive after both added each other, short for a join. */
export const DEFAULT_HANDSHAKE_HOLD_MS = 300;
/** When (after an add) the initiating side looks for a crossing, and looks again after a re-add. */
export const CROSSING_CHECKS_MS: readonly number[] = [300, 1_200];
/**
 * How long the mark must last: a side that answered the peer's initiation shows it too until the peer's
 * confirmation arrives, one round trip later.
 */
export const CROSSING_CONFIRM_MS = 200;

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
  /**
   * Peers this node initiates to whose first initiations crossed (see above): remove and re-add them
   * (then `readding`). `present` as for `apply`.
   */
  crossed(present: readonly PeerStatus[], now?: number): Set<string>;
  /** When the earliest hold ends or crossing check is due (a timestamp), or undefined when none is. */
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
  /** Peers this node initiates to, until their first handshake: since when, and crossing checks done. */
  const watched = new Map<string, { since: number; checks: number; markedAt: number | undefined }>();

  return {
    apply(planned, present, now = Date.now(), eager = new Set<string>()) {
      const presentByKey = new Map(present.map((p) => [p.publicKey, p]));
      const plannedKeys = new Set(planned.map((p) => p.publicKey));
      // Forget peers no longer planned (evicted, rotated away), so the sets stay as small as the mesh.
      for (const key of known) if (!plannedKeys.has(key)) known.delete(key);
      for (const key of held.keys()) if (!plannedKeys.has(key)) held.delete(key);
      for (const key of watched.keys()) if (!plannedKeys.has(key)) watched.delete(key);

      return planned.map((peer) => {
        const key = peer.publicKey;
        if (!known.has(key)) {
          known.add(key);
          if (!presentByKey.has(key)) {
            if (!initiatesFirst(options.selfKey, key)) held.set(key, now);
            else {
              // A re-add after a crossing keeps its count of checks, so a peer is re-added at most twice.
              const entry = watched.get(key);
              if (entry === undefined) watched.set(key, { since: now, checks: 0, markedAt: undefined });
              else entry.since = now;
            }
          }
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
    crossed(present, now = Date.now()) {
      const result = new Set<string>();
      const presentByKey = new Map(present.map((p) => [p.publicKey, p]));
      for (const [key, entry] of watched) {
        const peer = presentByKey.get(key);
        const due = CROSSING_CHECKS_MS[entry.checks];
        if (peer === undefined) {
          // Not on the interface (being re-added, or its add failed): look again a full interval later.
          entry.since = now;
          continue;
        }
        if (peer.latestHandshake > 0 || due === undefined) {
          watched.delete(key);
          continue;
        }
        if (now - entry.since < due) continue;
        if (peer.rxBytes > 0n) {
          // Marked: crossed only if it lasts (an answered initiation clears it within a round trip).
          entry.markedAt ??= now;
          if (now - entry.markedAt < CROSSING_CONFIRM_MS) continue;
          entry.checks += 1;
          entry.since = now;
          entry.markedAt = undefined;
          result.add(key);
        } else if (entry.checks + 1 >= CROSSING_CHECKS_MS.length) {
          // Nothing came back: the peer does not know this node yet, and will initiate when it does.
          watched.delete(key);
        } else entry.checks += 1;
      }
      return result;
    },
    nextRelease() {
      let earliest: number | undefined;
      const consider = (at: number) => {
        if (earliest === undefined || at < earliest) earliest = at;
      };
      for (const since of held.values()) consider(since + holdMs);
      for (const entry of watched.values()) {
        const due = CROSSING_CHECKS_MS[entry.checks];
        if (entry.markedAt !== undefined) consider(entry.markedAt + CROSSING_CONFIRM_MS);
        else if (due !== undefined) consider(entry.since + due);
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
