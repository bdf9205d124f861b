// The UDP↔TLS bridge that carries WireGuard through the dstack gateway: one link per peer (link.ts),
// each with a loopback UDP port that is WireGuard's endpoint for that peer on the gateway path, and
// one ingress (ingress.ts) where peers' streams arrive. dstack CVMs take no inbound UDP, but the
// gateway forwards TLS by SNI (`<app-id>-<port>s.<domain>`, passthrough) to a CVM port. Every
// stream opens with a hello signed by its sender's identity key and bound to the TLS session
// (hello.ts): links sign theirs, the ingress adopts a stream only once its hello verified.
import type { Socket as UdpSocket } from "node:dgram";
import { gatewayServerName } from "@attestmesh/shared/gateway/serverName.ts";
import type { Hex } from "viem";
import type { BackoffOptions } from "../backoff.ts";
import type { Logger } from "../log.ts";
import type { SocketFactory } from "../meshnet/socketFactory.ts";
import { createAheadFactory } from "./ahead.ts";
import { createHelloChecker, type SignedHello } from "./hello.ts";
import { type Ingress, startIngress } from "./ingress.ts";
import { createLink, type GatewayTarget, type HelloSigner, type Link, type LinkStatus } from "./link.ts";
import type { TransportMetrics } from "./metrics.ts";
import { selfSignedCertificate } from "./tlsCert.ts";

/** A peer of the bridge: its member id (in hellos) and app id (in the SNI that reaches it). */
export interface BridgePeer {
  readonly memberId: bigint;
  readonly appId: string;
}

export interface BridgeOptions {
  /** Signs this node's hellos (chain id, cluster, own member id, identity key). */
  readonly signer: HelloSigner;
  /**
   * The identity key a peer's hello must be signed with (32 bytes or hex), undefined for a member id
   * that is not a current peer. The one place the expected key comes from.
   */
  readonly identityKey: (memberId: bigint) => Uint8Array | Hex | undefined;
  readonly factory: SocketFactory;
  readonly logger: Logger;
  readonly metrics?: TransportMetrics;
  /** WireGuard's UDP listen port, on the loopback of the namespace the factory opens sockets in. */
  readonly wgListenPort: number;
  /** The gateway's domain: a peer is reached as `<app-id>-<ingressPort>s.<domain>`. */
  readonly gatewayDomain: string;
  /** host:port to open TCP to instead of `<sni>:443` (the devnet has no DNS). */
  readonly gatewayAddress?: { readonly host: string; readonly port: number };
  /** The ingress's port; peers are assumed to use the same one (it is in their SNI). */
  readonly ingressPort: number;
  readonly ingressHost?: string;
  readonly backoff?: BackoffOptions;
  readonly random?: () => number;
  readonly queueLimit?: number;
  readonly keepaliveMs?: number;
  readonly idleTimeoutMs?: number;
  /** Time an inbound connection has for its TLS handshake and hello; default 2 s. */
  readonly helloTimeoutMs?: number;
  /** How far a hello's timestamp may be from this node's clock; default 30 s. */
  readonly helloMaxSkewMs?: number;
  /** Inbound connections that may wait for their hello undisturbed; default 64. */
  readonly maxPending?: number;
  /** Waiting slots beyond those, kept for newcomers (ingress.ts); default a quarter of `maxPending`. */
  readonly reservedPending?: number;
  readonly pendingGraceMs?: number;
  /** How long a peer's attempt counts for `triedBeforeKnown` and `initiationDelivered`; default 3.5 s. */
  readonly earlyAttemptMs?: number;
  /** The longest and shortest hold of a link's waiting initiations at the peer's stream (link.ts). */
  readonly initiationHoldMs?: number;
  readonly initiationHoldMinMs?: number;
  /** Whether a new link opens its connection ahead of the first datagram, and for how long (link.ts). */
  readonly preopen?: boolean;
  readonly preopenIdleMs?: number;
}

export interface Bridge {
  /** Makes the links exactly `peers`; returns WireGuard's gateway endpoint per member id. */
  setPeers(peers: readonly BridgePeer[]): Promise<ReadonlyMap<bigint, string>>;
  /** The link of a peer, if any. */
  status(memberId: bigint): LinkStatus | undefined;
  /** Ingress connections refused, by reason. */
  refused(): Readonly<Record<string, number>>;
  /** Ingress connections waiting for their hello now. */
  pending(): number;
  /**
   * True once, when `memberId` (a current peer) tried to reach this node within the last few seconds and
   * was refused only because this node did not know it yet, and that attempt's hello verifies now against
   * the peer's key. Its handshake initiation was dropped with the stream, and WireGuard will not resend it
   * for 5 s: this node, which learnt of the peer second, should initiate at once (reconcile/initiator.ts).
   */
  triedBeforeKnown(memberId: bigint): boolean;
  /**
   * True when `memberId`'s own stream (its hello verified) brought this node's WireGuard a handshake
   * initiation within the last few seconds. Asked about a peer WireGuard does not have yet (on a join:
   * the newcomer's links open while its interface comes up, before its peers are set), that initiation
   * was dropped, and the peer will not resend it for 5 s: as for `triedBeforeKnown`, this node should
   * initiate at once.
   */
  initiationDelivered(memberId: bigint): boolean;
  /**
   * Opens, in the background, the sockets the links to `peers` will take (ahead.ts): a TCP connection
   * to the gateway for each, no TLS, and a UDP socket. For a newcomer whose registration is on its way.
   */
  connectAhead(peers: readonly BridgePeer[]): void;
  close(): Promise<void>;
}

const LOOPBACK = "127.0.0.1";
/**
 * How long a refused attempt counts: shorter than WireGuard's 5 s retry, so this node's initiation is
 * answered before the peer's resent one could cross it.
 */
export const EARLY_ATTEMPT_MS = 3_500;
/** Refused attempts remembered at most (one per sender), the oldest dropped first. */
const EARLY_ATTEMPTS_KEPT = 64;

export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const { logger, signer } = options;
  const links = new Map<bigint, Link>();
  const log = logger.child({ component: "bridge" });
  const factory = createAheadFactory(options.factory, { logger: log });
  const { key, cert } = await selfSignedCertificate();
  const ingressHost = options.ingressHost ?? "0.0.0.0";
  const server = await factory.listen(ingressHost, options.ingressPort);
  const hellos = createHelloChecker({
    chainId: signer.chainId,
    cluster: signer.cluster,
    selfMemberId: () => signer.selfMemberId(),
    // Only a current peer's key counts, whatever the lookup knows besides.
    identityKey: (memberId) => (links.has(memberId) ? options.identityKey(memberId) : undefined),
    ...(options.helloMaxSkewMs === undefined ? {} : { maxSkewMs: options.helloMaxSkewMs }),
  });
  /** Hellos refused as too early, by claimed sender: unverified until `triedBeforeKnown` checks them. */
  const early = new Map<
    bigint,
    { readonly at: number; readonly hello: SignedHello; readonly ekm: Uint8Array }
  >();
  const ingress: Ingress = startIngress({
    server,
    key,
    cert,
    logger: log,
    hellos,
    onTooEarly: (hello, ekm) => {
      early.delete(hello.from);
      early.set(hello.from, { at: Date.now(), hello, ekm });
      if (early.size > EARLY_ATTEMPTS_KEPT) early.delete(early.keys().next().value!);
    },
    peer: (memberId) => links.get(memberId),
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
    ...(options.helloTimeoutMs === undefined ? {} : { helloTimeoutMs: options.helloTimeoutMs }),
    ...(options.maxPending === undefined ? {} : { maxPending: options.maxPending }),
    ...(options.reservedPending === undefined ? {} : { reservedPending: options.reservedPending }),
    ...(options.pendingGraceMs === undefined ? {} : { pendingGraceMs: options.pendingGraceMs }),
    ...timings(options),
  });
  log.info(
    {
      ingress: `${ingressHost}:${options.ingressPort}`,
      gatewayDomain: options.gatewayDomain,
      gatewayAddress: options.gatewayAddress
        ? `${options.gatewayAddress.host}:${options.gatewayAddress.port}`
        : null,
    },
    "gateway bridge listening",
  );
  let closed = false;
  // setPeers calls run one at a time, so two reconciles never open two links for one peer.
  let queue: Promise<unknown> = Promise.resolve();

  async function apply(peers: readonly BridgePeer[]): Promise<ReadonlyMap<bigint, string>> {
    const started = Date.now();
    let opened = 0;
    const wanted = new Map(peers.map((p) => [p.memberId, p.appId.toLowerCase() as `0x${string}`]));
    for (const [memberId, link] of links) {
      if (wanted.get(memberId) !== link.appId) {
        link.close();
        links.delete(memberId);
      }
    }
    // Each new link's socket is opened at once, not one after another: in the devnet every socket is a
    // round trip to the namespace helper, and a newcomer opens one per member before its first `wg set`.
    const fresh = [...wanted].filter(([memberId]) => !links.has(memberId));
    const sockets = closed ? [] : await Promise.allSettled(fresh.map(() => openLinkSocket()));
    let failure: unknown;
    for (const [i, [memberId, appId]] of fresh.entries()) {
      const socket = sockets[i];
      if (socket === undefined) continue;
      if (socket.status === "rejected") {
        // The others' links are made all the same; the pass fails with the first error and retries.
        failure ??= socket.reason;
        log.debug({ peer: memberId.toString(), err: socket.reason }, "cannot open a link's UDP socket");
        continue;
      }
      const udp = socket.value;
      if (closed) {
        udp.close();
        continue;
      }
      const target = gatewayTarget(appId);
      links.set(
        memberId,
        createLink({
          memberId,
          appId,
          signer,
          udp,
          wgHost: LOOPBACK,
          wgPort: options.wgListenPort,
          target,
          factory,
          logger: log,
          ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
          ...(options.random === undefined ? {} : { random: options.random }),
          ...(options.queueLimit === undefined ? {} : { queueLimit: options.queueLimit }),
          ...(options.initiationHoldMs === undefined ? {} : { initiationHoldMs: options.initiationHoldMs }),
          ...(options.initiationHoldMinMs === undefined
            ? {}
            : { initiationHoldMinMs: options.initiationHoldMinMs }),
          ...(options.preopen === undefined ? {} : { preopen: options.preopen }),
          ...(options.preopenIdleMs === undefined ? {} : { preopenIdleMs: options.preopenIdleMs }),
          ...timings(options),
        }),
      );
      opened += 1;
    }
    if (opened > 0) log.trace({ opened, ms: Date.now() - started }, "bridge links opened");
    if (failure !== undefined) throw failure;
    return new Map([...links].map(([memberId, link]) => [memberId, link.localEndpoint]));
  }

  /** Where a peer's link connects: the gateway, with the peer's SNI. */
  function gatewayTarget(appId: string): GatewayTarget {
    const serverName = gatewayServerName(appId, options.ingressPort, options.gatewayDomain);
    return {
      host: options.gatewayAddress?.host ?? serverName,
      port: options.gatewayAddress?.port ?? 443,
      serverName,
    };
  }

  /** A link's loopback UDP socket, connected to WireGuard's port where the kernel allows it. */
  async function openLinkSocket(): Promise<UdpSocket> {
    const udp = await factory.udp(LOOPBACK, 0);
    // Connected to WireGuard's port: the kernel drops datagrams from anywhere else, and sends need
    // no address (link.ts).
    const connectError = await connectUdp(udp, LOOPBACK, options.wgListenPort);
    if (connectError !== undefined)
      log.debug({ err: connectError }, "the link's UDP socket stays unconnected");
    return udp;
  }

  return {
    setPeers(peers) {
      const result = queue.then(() => apply(peers));
      queue = result.catch(() => undefined);
      return result;
    },
    status: (memberId) => links.get(memberId)?.status(),
    refused: () => ingress.refused(),
    pending: () => ingress.pending(),
    triedBeforeKnown(memberId) {
      const attempt = early.get(memberId);
      if (attempt === undefined || !links.has(memberId)) return false;
      early.delete(memberId);
      if (Date.now() - attempt.at > (options.earlyAttemptMs ?? EARLY_ATTEMPT_MS)) return false;
      // The same check as any hello (this chain, cluster and node, fresh, signed by the peer's key over
      // that TLS session, not replayed), now that the key is known.
      const verdict = hellos.check(attempt.hello, attempt.ekm);
      if (!verdict.ok)
        log.debug({ peer: memberId.toString(), reason: verdict.reason }, "an early hello did not verify");
      return verdict.ok;
    },
    initiationDelivered(memberId) {
      const at = links.get(memberId)?.peerInitiationAt();
      return at !== undefined && Date.now() - at <= (options.earlyAttemptMs ?? EARLY_ATTEMPT_MS);
    },
    connectAhead(peers) {
      const fresh = peers.filter((p) => !links.has(p.memberId));
      if (closed || fresh.length === 0) return;
      factory.openAhead({
        connects: fresh.map((p) => gatewayTarget(p.appId)),
        udpHost: LOOPBACK,
        udp: fresh.length,
      });
      log.trace({ peers: fresh.length }, "gateway connections opening ahead of the registration's inclusion");
    },
    async close() {
      closed = true;
      await queue;
      for (const link of links.values()) link.close();
      links.clear();
      await ingress.close();
      await factory.close();
    },
  };
}

/** Connects a UDP socket to host:port; the error if that failed (the socket then stays usable unconnected). */
function connectUdp(udp: UdpSocket, host: string, port: number): Promise<Error | undefined> {
  return new Promise((resolve) => {
    try {
      udp.connect(port, host, (error?: Error) => resolve(error ?? undefined));
    } catch (error) {
      resolve(error instanceof Error ? error : new Error(String(error)));
    }
  });
}

function timings(options: BridgeOptions): { keepaliveMs?: number; idleTimeoutMs?: number } {
  return {
    ...(options.keepaliveMs === undefined ? {} : { keepaliveMs: options.keepaliveMs }),
    ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
  };
}
