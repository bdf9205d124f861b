// Peer events for the application: the difference between two views of `PeerLiveness`, as a tagged
// union. `joined`/`left` follow the chain's membership (a peer appears or disappears); `up`/`down`
// follow liveness. A poller compares views on a timer and publishes what changed. `converged` and
// `diverged` are forwarded from the liveness source, when it reports convergence (the heartbeats).
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
 * Polls `liveness()` every `intervalMs` until `signal` aborts (`check()` compares now), and forwards
 * the current source's convergence events.
 */
export function watchPeerEvents(options: {
  readonly liveness: () => PeerLiveness;
  readonly intervalMs: number;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  readonly publish: (event: PeerEvent) => void;
}): { check(): void } {
  let view: readonly PeerLivenessEntry[] = [];
  let source: PeerLiveness | undefined;
  let unsubscribe: (() => void) | undefined;
  const follow = () => {
    const current = options.liveness();
    if (current === source) return;
    unsubscribe?.();
    source = current;
    unsubscribe = current.onEvent?.((event) => {
      if (event.type === "converged") options.publish({ kind: "converged", live: [...event.live] });
      else if (event.type === "diverged") options.publish({ kind: "diverged" });
    });
  };
  const check = () => {
    follow();
    try {
      const next = options.liveness().peers();
      for (const event of diffPeerViews(view, next)) options.publish(event);
      view = next;
    } catch (err) {
      options.logger.warn({ err }, "reading peer liveness failed; trying again on the next tick");
    }
  };
  const timer = setInterval(check, options.intervalMs);
  timer.unref();
  follow();
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
