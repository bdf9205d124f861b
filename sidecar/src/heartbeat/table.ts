// Who this node hears: the heartbeat receive path as a pure state machine. A heartbeat counts only if
// it parses, names this cluster, comes from an active member other than this node (from its mesh IP,
// when the caller gives the source address), carries a signature
// by that member's on-chain Ed25519 key, has a timestamp within `maxSkewMs` of the local clock and a
// counter strictly above the last one counted from that sender. A peer is live while its last counted
// heartbeat is younger than `timeoutMs` (local monotonic time). The mesh is converged, in this node's
// view, when every live peer's last heartbeat reports hearing exactly the others this node sees as live
// (its view: itself plus its live peers).
import { type ClusterId, WireError } from "../meshnet/wire.ts";
import { decodeHeartbeat, type SignedHeartbeat, verifyHeartbeat } from "./codec.ts";

export const REJECT_REASONS = [
  "malformed",
  "wrong-cluster",
  "self",
  "unknown-member",
  "wrong-source",
  "bad-signature",
  "stale",
  "replay",
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export type ReceiveResult =
  | { readonly ok: true; readonly heartbeat: SignedHeartbeat; readonly becameLive: boolean }
  | {
      readonly ok: false;
      readonly reason: RejectReason;
      readonly senderId?: bigint;
      readonly detail: string;
    };

export interface PeerEntry {
  readonly memberId: bigint;
  /** Local monotonic ms of the last counted heartbeat. */
  readonly lastHeardAt: number;
  /** Wall-clock ms of the last counted heartbeat. */
  readonly lastHeardWallMs: number;
  readonly counter: bigint;
  /** The sender's timestamp in that heartbeat. */
  readonly sentAtMs: bigint;
  readonly epoch: bigint;
  readonly holdsCsk: boolean;
  readonly heard: readonly bigint[];
}

export interface HeartbeatTable {
  /** `source`, when given, must be the sender's mesh IP (checked before the signature). */
  receive(
    datagram: Uint8Array,
    now: { readonly wallMs: number; readonly monoMs: number },
    source?: string,
  ): ReceiveResult;
  /** Live peer ids, ascending. */
  live(monoMs: number): bigint[];
  isLive(memberId: bigint, monoMs: number): boolean;
  entry(memberId: bigint): PeerEntry | undefined;
  entries(): PeerEntry[];
  converged(monoMs: number): boolean;
  /** Forgets every sender the predicate rejects (no longer an active member). */
  retain(keep: (memberId: bigint) => boolean): bigint[];
}

export interface TableOptions {
  readonly self: bigint;
  readonly cluster: ClusterId;
  readonly timeoutMs: number;
  readonly maxSkewMs: number;
  /** The on-chain Ed25519 identity key of an active member; undefined for anyone else. */
  readonly identityKey: (memberId: bigint) => Uint8Array | undefined;
  /** The mesh IP of an active member, for the source check; without it the source is not checked. */
  readonly meshIp?: (memberId: bigint) => string | undefined;
}

export function createHeartbeatTable(options: TableOptions): HeartbeatTable {
  const { self, cluster, timeoutMs, maxSkewMs } = options;
  const peers = new Map<bigint, PeerEntry>();
  /** Last counted counter per sender; kept after a peer goes quiet so old heartbeats stay replays. */
  const counters = new Map<bigint, bigint>();

  const isLive = (id: bigint, monoMs: number) => {
    const entry = peers.get(id);
    return entry !== undefined && monoMs - entry.lastHeardAt < timeoutMs;
  };
  const live = (monoMs: number) =>
    [...peers.keys()].filter((id) => isLive(id, monoMs)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

  return {
    receive(datagram, now, source) {
      let hb: SignedHeartbeat;
      try {
        hb = decodeHeartbeat(datagram);
      } catch (error) {
        if (!(error instanceof WireError)) throw error;
        return { ok: false, reason: "malformed", detail: error.message };
      }
      const senderId = hb.senderId;
      if (hb.chainId !== cluster.chainId || hb.cluster !== cluster.cluster) {
        return {
          ok: false,
          reason: "wrong-cluster",
          senderId,
          detail: `for chain ${hb.chainId} cluster ${hb.cluster}`,
        };
      }
      if (senderId === self) return { ok: false, reason: "self", senderId, detail: "claims this node's id" };
      const key = options.identityKey(senderId);
      if (key === undefined) {
        return { ok: false, reason: "unknown-member", senderId, detail: "not an active member on chain" };
      }
      if (source !== undefined && options.meshIp !== undefined && options.meshIp(senderId) !== source) {
        return { ok: false, reason: "wrong-source", senderId, detail: `from ${source}, not its mesh IP` };
      }
      if (!verifyHeartbeat(hb, key)) {
        return {
          ok: false,
          reason: "bad-signature",
          senderId,
          detail: "not signed by the on-chain identity key",
        };
      }
      const skew = Number(hb.timestampMs) - now.wallMs;
      if (Math.abs(skew) > maxSkewMs) {
        return {
          ok: false,
          reason: "stale",
          senderId,
          detail: `timestamp is ${skew} ms off the local clock`,
        };
      }
      const last = counters.get(senderId);
      if (last !== undefined && hb.counter <= last) {
        return {
          ok: false,
          reason: "replay",
          senderId,
          detail: `counter ${hb.counter} <= last counted ${last}`,
        };
      }
      const becameLive = !isLive(senderId, now.monoMs);
      counters.set(senderId, hb.counter);
      peers.set(senderId, {
        memberId: senderId,
        lastHeardAt: now.monoMs,
        lastHeardWallMs: now.wallMs,
        counter: hb.counter,
        sentAtMs: hb.timestampMs,
        epoch: hb.epoch,
        holdsCsk: hb.holdsCsk,
        heard: hb.heard,
      });
      return { ok: true, heartbeat: hb, becameLive };
    },
    live,
    isLive,
    entry: (id) => peers.get(id),
    entries: () => [...peers.values()],
    converged(monoMs) {
      const view = new Set([self, ...live(monoMs)]);
      for (const id of view) {
        if (id === self) continue;
        const entry = peers.get(id)!;
        const theirs = new Set([id, ...entry.heard]);
        if (theirs.size !== view.size) return false;
        for (const member of theirs) if (!view.has(member)) return false;
      }
      return true;
    },
    retain(keep) {
      const removed: bigint[] = [];
      for (const id of new Set([...peers.keys(), ...counters.keys()])) {
        if (!keep(id)) {
          peers.delete(id);
          counters.delete(id);
          removed.push(id);
        }
      }
      return removed;
    },
  };
}
