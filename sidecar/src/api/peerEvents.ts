// Peer events for the application, as a tagged union: `joined`/`left` follow the chain's membership (a
// peer appears or disappears), `up`/`down` follow liveness, `converged`/`diverged` the mesh. The
// heartbeat service pushes them (its `HeartbeatEvent`s, mapped here one to one); only a source that
// pushes nothing (WireGuard handshakes, before the heartbeats run) is compared on a timer.
import type { HeartbeatEvent } from "../heartbeat/service.ts";
import type { Logger } from "../log.ts";
import type { PeerLiveness, PeerLivenessEntry } from "./providers.ts";

/** A change of one peer. */
export type PeerChange = {
  readonly kind: "joined" | "left" | "up" | "down";
  readonly peer: PeerLivenessEntry;
};

export type PeerEvent =
  | PeerChange
  | { readonly kind: "converged"; readonly live: readonly bigint[] }
  | { readonly kind: "diverged" };

/** What changed from `before` to `after`: joins, then liveness changes, then departures. */
export function diffPeerViews(
  before: readonly PeerLivenessEntry[],
  after: readonly PeerLivenessEntry[],
): PeerChange[] {
  const old = new Map(before.map((p) => [p.memberId, p]));
  const now = new Map(after.map((p) => [p.memberId, p]));
  const events: PeerChange[] = [];
  for (const peer of after) {
    const previous = old.get(peer.memberId);
    if (previous === undefined) {
      events.push({ kind: "joined", peer });
      if (peer.live) events.push({ kind: "up", peer });
    } else if (previous.live !== peer.live) {
      events.push({ kind: peer.live ? "up" : "down", peer });
    }
  }
  for (const peer of before) {
    if (!now.has(peer.memberId)) {
      if (peer.live) events.push({ kind: "down", peer: { ...peer, live: false } });
      events.push({ kind: "left", peer: { ...peer, live: false } });
    }
  }
  return events;
}

/**
 * Publishes the peer events of the current liveness source until `signal` aborts. A source that pushes
 * events (the heartbeat service) is followed by them: `peer-joined`, `peer-live`, `peer-lost` and
 * `peer-left` each become that peer's change, `converged` and `diverged` are forwarded. A source that
 * pushes none (WireGuard handshakes) is compared every `intervalMs`. `check()` compares the whole view
 * now: when the source is replaced, and when the API closes.
 */
export function watchPeerEvents(options: {
  readonly liveness: () => PeerLiveness;
  readonly intervalMs: number;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  readonly publish: (event: PeerEvent) => void;
}): { check(): void } {
  let view = new Map<bigint, PeerLivenessEntry>();
  let source: PeerLiveness | undefined;
  let unsubscribe: (() => void) | undefined;
  /** Moves the view of the peers in `ids` to `after`, publishing what changed. */
  const apply = (ids: readonly bigint[], after: readonly PeerLivenessEntry[]) => {
    const before = [...new Set(ids)].flatMap((id) => view.get(id) ?? []);
    for (const event of diffPeerViews(before, after)) options.publish(event);
    const next = new Map(view);
    for (const id of ids) next.delete(id);
    for (const peer of after) next.set(peer.memberId, peer);
    view = new Map([...next].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  };
  const current = (id: bigint, live: boolean): PeerLivenessEntry[] => {
    const peer =
      options
        .liveness()
        .peers()
        .find((p) => p.memberId === id) ?? view.get(id);
    return peer === undefined ? [] : [peer.live === live ? peer : { ...peer, live }];
  };
  const onEvent = (event: HeartbeatEvent) => {
    switch (event.type) {
      case "converged":
        return options.publish({ kind: "converged", live: [...event.live] });
      case "diverged":
        return options.publish({ kind: "diverged" });
      case "peer-joined":
        return apply([event.peer.memberId], [event.peer]);
      case "peer-left":
        return apply([event.peer.memberId], []);
      case "peer-live":
      case "peer-lost":
        return apply([event.memberId], current(event.memberId, event.type === "peer-live"));
    }
  };
  const compare = () => {
    try {
      const next = options.liveness().peers();
      apply([...view.keys(), ...next.map((p) => p.memberId)], next);
    } catch (err) {
      options.logger.warn({ err }, "reading peer liveness failed; trying again on the next tick");
    }
  };
  const follow = () => {
    const now = options.liveness();
    if (now === source) return;
    unsubscribe?.();
    source = now;
    unsubscribe = now.onEvent?.(onEvent);
  };
  const check = () => {
    follow();
    compare();
  };
  const timer = setInterval(() => {
    follow();
    if (source?.onEvent === undefined) compare();
  }, options.intervalMs);
  timer.unref();
  check();
  options.signal.addEventListener(
    "abort",
    () => {
      clearInterval(timer);
      unsubscribe?.();
    },
    { once: true },
  );
  return { check };
}
