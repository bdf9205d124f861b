// The reconciler's view of transport: given the desired peers (their direct endpoints from the
// endpoints file) and what WireGuard reports, the endpoint each peer should have now, which peers
// to re-add so WireGuard handshakes at once, and which began a direct test in place (selector.ts).
// Joins the bridge (gateway endpoints) and the selector.
import type { Logger } from "../log.ts";
import type { DesiredPeer } from "../model/peer.ts";
import type { PeerStatus } from "../model/wireguard.ts";
import type { Bridge } from "./bridge.ts";
import type { LinkStatus } from "./link.ts";
import type { PathReport, TransportSelector } from "./selector.ts";

export interface PeerTransportReport extends PathReport {
  /** The peer's link in the bridge, when the bridge runs. */
  readonly gateway: LinkStatus | undefined;
}

export interface PeerTransport {
  /**
   * Opens the bridge's links for `peers` ahead of `plan`, beside the interface coming up (a link's
   * socket does not need the interface). Never rejects: `plan` opens whatever is still missing and
   * fails with its error. Only the members' ids and app ids count: a newcomer opens them from the
   * view before it knows its own record (reconcile/reconciler.ts `prepareLinks`).
   */
  prepare(peers: readonly Pick<DesiredPeer, "memberId" | "appId">[]): Promise<void>;
  /** Opens the sockets `prepare`'s links will take, earlier still: while the registration is on its way. */
  connectAhead(peers: readonly Pick<DesiredPeer, "memberId" | "appId">[]): void;
  plan(
    peers: readonly DesiredPeer[],
    current: readonly PeerStatus[],
  ): Promise<{
    peers: DesiredPeer[];
    reset: ReadonlySet<string>;
    /** Peers whose endpoint moves in place for a direct test: pass `settle` what WireGuard reports after. */
    moved: ReadonlySet<string>;
    /**
     * Peers (public keys) that tried to reach this node before it knew them, or whose initiation reached
     * WireGuard before WireGuard had them (not in `current`): bridge.ts.
     */
    triedFirst: ReadonlySet<string>;
    /**
     * Peers (public keys) whose endpoint is their bridge port: their WireGuard datagrams never cross
     * a wire as UDP, so they may be larger than the underlay allows (WG_GATEWAY_MTU).
     */
    viaGateway: ReadonlySet<string>;
  }>;
  report(peer: Pick<DesiredPeer, "memberId" | "config">): PeerTransportReport | undefined;
  /** What WireGuard reports once the planned endpoints are applied (only needed when `moved` is not empty). */
  settle(observed: readonly PeerStatus[]): void;
  /** The interface was created anew: every peer's path starts over, as on its first pass (selector.ts). */
  forget(): void;
  close(): Promise<void>;
}

export function createPeerTransport(options: {
  readonly selector: TransportSelector;
  readonly bridge: Bridge | undefined;
  readonly logger: Logger;
}): PeerTransport {
  const { selector, bridge, logger } = options;
  const bridgePeers = (peers: readonly Pick<DesiredPeer, "memberId" | "appId">[]) =>
    peers.map((p) => ({ memberId: p.memberId, appId: p.appId }));
  return {
    async prepare(peers) {
      if (bridge === undefined) return;
      await bridge.setPeers(bridgePeers(peers)).then(
        () => undefined,
        (error: unknown) => logger.debug({ err: error }, "links not opened ahead; the plan retries them"),
      );
    },
    connectAhead(peers) {
      bridge?.connectAhead(bridgePeers(peers));
    },
    async plan(peers, current) {
      const gateway =
        bridge === undefined ? new Map<bigint, string>() : await bridge.setPeers(bridgePeers(peers));
      const byKey = new Map(peers.map((p) => [p.config.publicKey, p]));
      const inWireGuard = new Set(current.map((c) => c.publicKey));
      const decision = selector.decide(
        peers.map((p) => ({
          publicKey: p.config.publicKey,
          directEndpoint: p.config.endpoint,
          gatewayEndpoint: gateway.get(p.memberId),
        })),
        new Map(current.map((c) => [c.publicKey, c])),
      );
      for (const change of decision.changes) {
        const peer = byKey.get(change.publicKey);
        logger.info(
          {
            memberId: peer?.memberId.toString(),
            appId: peer?.appId,
            from: change.from,
            to: change.to,
            why: change.why,
          },
          change.from === change.to
            ? "direct UDP test failed; staying on the gateway"
            : `peer transport ${change.from} -> ${change.to}`,
        );
      }
      return {
        peers: peers.map((p) => {
          const { endpoint: _direct, ...rest } = p.config;
          const endpoint = decision.endpoints.get(p.config.publicKey);
          return { ...p, config: endpoint === undefined ? rest : { ...rest, endpoint } };
        }),
        reset: decision.reset,
        moved: decision.moved,
        viaGateway: new Set(
          peers
            .filter((p) => {
              const endpoint = decision.endpoints.get(p.config.publicKey);
              return endpoint !== undefined && endpoint === gateway.get(p.memberId);
            })
            .map((p) => p.config.publicKey),
        ),
        triedFirst: new Set(
          bridge === undefined
            ? []
            : peers
                .filter(
                  (p) =>
                    bridge.triedBeforeKnown(p.memberId) ||
                    (!inWireGuard.has(p.config.publicKey) && bridge.initiationDelivered(p.memberId)),
                )
                .map((p) => p.config.publicKey),
        ),
      };
    },
    report(peer) {
      const path = selector.report(peer.config.publicKey);
      return path === undefined ? undefined : { ...path, gateway: bridge?.status(peer.memberId) };
    },
    settle: (observed) => selector.settle(new Map(observed.map((p) => [p.publicKey, p]))),
    forget: () => selector.forget(),
    close: async () => bridge?.close(),
  };
}
