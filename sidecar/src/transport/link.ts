// One peer's link in the bridge. WireGuard's endpoint for the peer is this link's loopback UDP port:
// what WireGuard sends there goes out as frames on a TLS stream through the gateway to the peer's
// ingress; frames that come back (on that stream, or on a stream the peer opened to our ingress) are
// handed to WireGuard from the same port, so WireGuard sees one stable endpoint per peer.
//
// The outbound stream's connection (TCP through the gateway, then TLS) is opened as soon as the link is
// made, before WireGuard sends anything (`preopen`): on a join the first initiation otherwise waited
// 130–400 ms for it. The hello is still sent only with the first datagram, so the peer sees this node's
// stream exactly when it did before (the first-handshake rules below key on that moment), and it needs
// no member id until then (a newcomer opens its links while its member id is read back); a connection
// that carried nothing within PREOPEN_IDLE_MS of its start, inside the peer's hello timeout, is closed.
// After that the outbound stream is opened on demand, reopened after a capped, jittered backoff, and bounded:
// while no stream can take a datagram it waits in a short queue that drops its oldest entries (and
// anything older than a few seconds), so a peer that is gone costs a fixed amount of memory and
// never holds up any other peer. A new outbound stream carries datagrams only once the peer accepted
// its hello (the ingress answers with an empty frame), so nothing is written into a stream the peer
// refuses; what waited for a refused stream is dropped (see onClose), and WireGuard retries.
//
// First handshakes. When both sides of a pair send an initiation and each consumes the other's before
// the answer to its own, WireGuard drops both answers and the pair waits out its 5 s retry. A queued
// initiation is the one that risks that: it is delivered late, after the peer may have sent its own.
// These rules keep a late one from crossing:
// - WireGuard answering the peer (a handshake response) means it consumed the peer's initiation, which
//   overwrote its own pending one: every initiation still queued is dead (its answer would be dropped)
//   and would only cross the peer's. They are dropped, whichever side this is.
// - When the peer opens a stream to us first (attachInbound), it knows this node and may be initiating.
//   The side with the lower member id drops the initiations waiting for its own stream (seen on joins:
//   a newcomer's ingress took a second to take an existing node's stream, which then delivered its
//   initiation from a second earlier right after the newcomer's own; WireGuard answers the peer's).
// - The side with the higher member id holds them for a moment instead: if the peer's initiation
//   arrives and WireGuard answers it, the first rule drops them; if not (the peer, lower, dropped its
//   own because our stream reached it first), they go when our own stream opens, or after
//   INITIATION_HOLD_MS at the latest. Flushed onto the peer's stream at once, they crossed the peer's
//   initiation sent on its own stream (5 re-adds in 5 joins); dropped at once, neither initiation
//   reached the other when both streams arrived first (a 5 s stall).
// - Initiations WireGuard sends just after the peer's stream arrived (a held keepalive going in, the
//   sidecar's own traffic) are held the same way, on both sides: the peer's is on its way. The lower
//   side holds them twice as long, so when neither side's answer comes, the higher side's goes first.
// - An initiation from WireGuard after the peer's was delivered during the hold goes once WireGuard has
//   not answered the peer's within ANSWER_WAIT_MS (it did not know the peer then, and the peer will not
//   resend for 5 s). Not at once: WireGuard may have sent it just before it took the peer's, and this
//   process read the two in the other order (seen on joins, the event loop busy for 50 ms: the answer
//   came right behind, the initiation had gone, and the pair crossed and waited for the crossing check).
// Only a verified peer's own stream starts a hold, only WireGuard's own answer drops anything, and a
// hold only delays that peer's own handshake.
import { randomBytes } from "node:crypto";
import type { RemoteInfo, Socket as UdpSocket } from "node:dgram";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import type { Address } from "viem";
import { type BackoffOptions, backoffDelay } from "../backoff.ts";
import type { Logger } from "../log.ts";
import type { SocketFactory } from "../meshnet/socketFactory.ts";
import { encodeHello, HELLO_NONCE_BYTES, helloKeyingMaterial } from "./hello.ts";
import { createFramedStream, type FramedStream } from "./stream.ts";

/**
 * idle → connecting (TCP, TLS) → hello (sent, not accepted yet) → open; backoff after a failure. A link's
 * first connection may wait as `ready` (TCP and TLS up, no hello) for WireGuard's first datagram.
 */
export type OutboundState = "idle" | "connecting" | "ready" | "hello" | "open" | "backoff";

export interface LinkStatus {
  readonly memberId: bigint;
  readonly appId: `0x${string}`;
  /** WireGuard's endpoint for this peer on the gateway path, "127.0.0.1:<port>". */
  readonly localEndpoint: string;
  readonly outbound: OutboundState;
  /** Open streams the peer made to our ingress. */
  readonly inbound: number;
  readonly datagramsOut: number;
  readonly datagramsIn: number;
  /** Datagrams dropped: queue full, too old, or no stream. */
  readonly dropped: number;
  readonly queued: number;
  readonly connectFailures: number;
}

export interface GatewayTarget {
  /** Where to open TCP: the gateway (or its override address). */
  readonly host: string;
  readonly port: number;
  /** The SNI that routes to the peer's ingress. */
  readonly serverName: string;
}

/** What this node signs its hellos with (hello.ts). */
export interface HelloSigner {
  readonly chainId: number;
  readonly cluster: Address;
  /** This node's member id; undefined while it has none (no stream can be opened). */
  selfMemberId(): bigint | undefined;
  /** Ed25519 signature by this node's identity key. */
  sign(message: Uint8Array): Uint8Array;
}

export interface LinkOptions {
  /** The peer's member id (its hello's `to`) and app id (its SNI). */
  readonly memberId: bigint;
  readonly appId: `0x${string}`;
  readonly signer: HelloSigner;
  readonly udp: UdpSocket;
  /** Host holding WireGuard's listen port, as seen from `udp` (127.0.0.1). */
  readonly wgHost: string;
  readonly wgPort: number;
  readonly target: GatewayTarget;
  readonly factory: SocketFactory;
  readonly logger: Logger;
  readonly backoff?: BackoffOptions;
  readonly random?: () => number;
  readonly connectTimeoutMs?: number;
  /** Datagrams held while no stream can take them; default 256. */
  readonly queueLimit?: number;
  /** Queued datagrams older than this are dropped; default 5 s. */
  readonly queueMaxAgeMs?: number;
  /** Passed to every framed stream (tests shorten them). */
  readonly keepaliveMs?: number;
  readonly idleTimeoutMs?: number;
  /** Inbound streams kept per peer; older ones are closed; default 2. */
  readonly maxInbound?: number;
  /** The longest and shortest hold of waiting initiations (see above); default INITIATION_HOLD_(MIN_)MS. */
  readonly initiationHoldMs?: number;
  readonly initiationHoldMinMs?: number;
  /**
   * Open the outbound connection (TCP, TLS, no hello) at once, ahead of WireGuard's first datagram;
   * default true. A pre-opened connection unused `preopenIdleMs` (default PREOPEN_IDLE_MS) after it began to
   * connect closes.
   */
  readonly preopen?: boolean;
  readonly preopenIdleMs?: number;
}

export interface Link {
  readonly memberId: bigint;
  readonly appId: `0x${string}`;
  readonly localEndpoint: string;
  /** Adopts a stream the peer opened to our ingress (its signed hello already verified). */
  attachInbound(stream: FramedStream): void;
  /** Delivers a datagram from an inbound stream to WireGuard. */
  deliver(payload: Buffer): void;
  /** When an inbound stream (the peer's own, its hello verified) last delivered a handshake initiation. */
  peerInitiationAt(): number | undefined;
  status(): LinkStatus;
  close(): void;
}

const UDP_BUFFER_BYTES = 4 * 1024 * 1024;
/** WireGuard's handshake initiation: message type 1, 148 bytes. */
const isInitiation = (datagram: Buffer) => datagram.length === 148 && datagram[0] === 1;
/** WireGuard's handshake response: message type 2, 92 bytes. */
const isResponse = (datagram: Buffer) => datagram.length === 92 && datagram[0] === 2;
/**
 * The longest the higher member id holds its waiting initiations at the peer's stream: a round trip
 * through the gateway for the peer's initiation to arrive and be answered, with room for a busy host.
 */
export const INITIATION_HOLD_MS = 300;
/**
 * The shortest hold when our own stream opens during it: the peer's initiation, if it sent one on its
 * own stream when we accepted it, is about as far away as the acceptance of ours.
 */
export const INITIATION_HOLD_MIN_MS = 100;
/**
 * How long a pre-opened connection waits for WireGuard's first datagram, counted from the moment it
 * began to connect: three quarters of the ingress's default hello timeout (2 s), which the peer counts
 * from its accept, later, so the peer never refuses it for silence. A newcomer opens its links when its
 * registration is included (reconcile/reconciler.ts `prepareLinks`), and adds its peers 0.6–1.3 s later
 * on a busy host; an existing node's WireGuard sends its first initiation within the first-handshake
 * hold (300 ms, reconcile/initiator.ts) of the peer's add.
 */
export const PREOPEN_IDLE_MS = 1_500;
/**
 * How long an initiation WireGuard sends after the peer's was delivered waits for WireGuard's answer to
 * the peer's (which makes it dead: the first rule drops it). WireGuard answers within a millisecond or two;
 * a busy event loop reads both datagrams in one turn.
 */
export const ANSWER_WAIT_MS = 50;
const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 30_000 };

export function createLink(options: LinkOptions): Link {
  const { memberId, appId, udp, wgHost, wgPort, target, logger, signer } = options;
  const log = logger.child({ peer: memberId.toString(), appId });
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const queueLimit = options.queueLimit ?? 256;
  const queueMaxAgeMs = options.queueMaxAgeMs ?? 5_000;
  const maxInbound = options.maxInbound ?? 2;
  const holdMs = options.initiationHoldMs ?? INITIATION_HOLD_MS;
  const holdMinMs = Math.min(holdMs, options.initiationHoldMinMs ?? INITIATION_HOLD_MIN_MS);
  const streamTimings = {
    ...(options.keepaliveMs === undefined ? {} : { keepaliveMs: options.keepaliveMs }),
    ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
  };
  // Large socket buffers: WireGuard hands over bursts of datagrams faster than one turn of the event
  // loop takes them (the kernel caps these at net.core.rmem_max / wmem_max).
  for (const size of [
    () => udp.setRecvBufferSize(UDP_BUFFER_BYTES),
    () => udp.setSendBufferSize(UDP_BUFFER_BYTES),
  ]) {
    try {
      size();
    } catch (error) {
      log.debug({ err: error }, "cannot enlarge the link's UDP socket buffer");
    }
  }
  // A socket connected to WireGuard's port (bridge.ts connects the links' sockets) sends without an
  // address: no lookup and no extra turn per datagram, and the kernel keeps the route.
  const connected = connectedTo(udp, wgHost, wgPort);
  const address = udp.address();
  const localEndpoint = `${address.address}:${address.port}`;
  const queue: Array<{ readonly at: number; readonly payload: Buffer }> = [];
  const inbound: FramedStream[] = [];
  let outbound: FramedStream | undefined;
  let state: OutboundState = "idle";
  let attempts = 0;
  let retryTimer: NodeJS.Timeout | undefined;
  let closed = false;
  /** While waiting initiations are held at the peer's stream (see above): when the hold began. */
  let holdingSince: number | undefined;
  let holdTimer: NodeJS.Timeout | undefined;
  /** Whether our own stream opening ends the hold (the higher member id's; see above). */
  let holdEndsOnOpen = false;
  /** The peer's initiation went to WireGuard during the hold, and WireGuard has not answered it. */
  let peerInitiationUnanswered = false;
  /** Set when WireGuard initiated after that: sends ours unless WireGuard answers the peer's first. */
  let answerTimer: NodeJS.Timeout | undefined;
  /** When the peer's own stream last brought a handshake initiation for WireGuard. */
  let peerInitiationAt: number | undefined;
  /** The pre-opened connection (state "ready"), and the timer that closes it unused. */
  let ready:
    | { readonly tls: TLSSocket; readonly timer: NodeJS.Timeout; readonly onClose: () => void }
    | undefined;
  const counters = { datagramsOut: 0, datagramsIn: 0, dropped: 0, connectFailures: 0 };

  function writable(): FramedStream | undefined {
    if (outbound !== undefined && state === "open" && !outbound.congested) return outbound;
    for (let i = inbound.length - 1; i >= 0; i--) {
      const stream = inbound[i]!;
      if (stream.closed) inbound.splice(i, 1);
      else if (!stream.congested) return stream;
    }
    return undefined;
  }

  function flush(): void {
    const now = Date.now();
    // Past held initiations, the rest still goes in order (WireGuard sends little else before a handshake).
    let i = 0;
    while (i < queue.length) {
      const entry = queue[i]!;
      if (now - entry.at > queueMaxAgeMs) {
        take(i);
        counters.dropped += 1;
        continue;
      }
      if (holdingSince !== undefined && isInitiation(entry.payload)) {
        i += 1;
        continue;
      }
      const stream = writable();
      if (stream === undefined || !stream.send(entry.payload)) return;
      take(i);
      counters.datagramsOut += 1;
    }
  }

  function take(index: number): void {
    if (index === 0) queue.shift();
    else queue.splice(index, 1);
  }

  /** Drops the queued handshake initiations; says why when there were any. */
  function dropInitiations(why: string): void {
    const waiting = queue.length;
    for (let i = queue.length - 1; i >= 0; i--) if (isInitiation(queue[i]!.payload)) queue.splice(i, 1);
    if (queue.length === waiting) return;
    counters.dropped += waiting - queue.length;
    log.debug({ dropped: waiting - queue.length }, why);
  }

  function endHold(): void {
    clearTimeout(holdTimer);
    holdTimer = undefined;
    clearTimeout(answerTimer);
    answerTimer = undefined;
    holdingSince = undefined;
    peerInitiationUnanswered = false;
  }

  /** The hold ends with nothing from the peer: the initiations go. */
  function release(): void {
    if (holdingSince === undefined) return;
    if (queue.some((entry) => isInitiation(entry.payload)))
      log.debug({ heldMs: Date.now() - holdingSince }, "no initiation from the peer: sending ours");
    endHold();
    flush();
    if (queue.length > 0 && outbound === undefined) kick();
  }

  function fromWireGuard(payload: Buffer, from: RemoteInfo): void {
    // Only WireGuard itself may use this port; anything else on the host is ignored.
    if (from.port !== wgPort || closed) return;
    if (isResponse(payload) && queue.length > 0) {
      // WireGuard consumed the peer's initiation, which overwrote its own pending one.
      dropInitiations("WireGuard answered the peer's initiation: dropped its own that were still waiting");
      endHold();
    } else if (
      holdingSince !== undefined &&
      peerInitiationUnanswered &&
      isInitiation(payload) &&
      answerTimer === undefined
    ) {
      // WireGuard initiates without answering the peer's initiation: it did not know the peer then,
      // and the peer will not resend for 5 s. Whoever learns of the other second initiates, as soon as
      // it is clear that WireGuard's answer is not just behind (see above): this one waits in the queue.
      answerTimer = setTimeout(() => {
        answerTimer = undefined;
        if (holdingSince === undefined) return;
        log.debug("WireGuard did not answer the peer's initiation: sending ours");
        endHold();
        flush();
        if (queue.length > 0 && outbound === undefined) kick();
      }, ANSWER_WAIT_MS);
      answerTimer.unref();
    }
    if (queue.length === 0 && (holdingSince === undefined || !isInitiation(payload))) {
      const stream = writable();
      if (stream?.send(payload)) {
        counters.datagramsOut += 1;
        if (outbound === undefined) kick();
        return;
      }
    }
    queue.push({ at: Date.now(), payload });
    if (queue.length > queueLimit) {
      queue.shift();
      counters.dropped += 1;
    }
    // A stream may have drained meanwhile (inbound streams report no drain of their own).
    flush();
    if (outbound === undefined) kick();
  }

  function kick(): void {
    if (closed) return;
    if (state === "ready") {
      const pre = takeReady();
      if (pre !== undefined && !pre.destroyed) {
        greet(pre);
        return;
      }
      pre?.destroy();
      state = "idle";
    }
    if (state === "idle") void connectOnce();
  }

  /** The pre-opened connection, no longer waiting (its timer and its listeners gone). */
  function takeReady(): TLSSocket | undefined {
    const pre = ready;
    if (pre === undefined) return undefined;
    ready = undefined;
    clearTimeout(pre.timer);
    pre.tls.off("close", pre.onClose);
    return pre.tls;
  }

  /**
   * TCP through the gateway to the peer's SNI, then TLS; no hello yet, so no member id is needed (a
   * newcomer opens its links ahead while its member id is read back: reconcile/reconciler.ts).
   */
  async function dial(): Promise<TLSSocket> {
    const socket = await options.factory.connect(target.host, target.port, options.connectTimeoutMs ?? 5_000);
    if (closed) {
      socket.destroy();
      throw new Error("link closed");
    }
    const tls = tlsConnect({
      socket,
      servername: target.serverName,
      // Routing, not security: the signed hello proves who we are, WireGuard authenticates the peer;
      // the certificate is not relied upon.
      rejectUnauthorized: false,
      // AES-128-GCM first: the cheapest AEAD with AES-NI, and this leg is routing, not security.
      ciphers: "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
    });
    try {
      await secured(tls, options.connectTimeoutMs ?? 5_000);
    } catch (error) {
      tls.destroy();
      throw error;
    }
    return tls;
  }

  /**
   * Opens the connection ahead of WireGuard's first datagram (see the top of this file). A failure
   * costs nothing: the first datagram connects as it would have.
   */
  async function preopen(): Promise<void> {
    if (state !== "idle" || closed) return;
    state = "connecting";
    const started = Date.now();
    let tls: TLSSocket;
    try {
      tls = await dial();
    } catch (error) {
      if (closed) return;
      log.debug({ err: error }, "cannot open the gateway connection ahead; the first datagram will");
      state = "idle";
      if (queue.length > 0) kick();
      return;
    }
    if (closed) {
      tls.destroy();
      return;
    }
    log.trace(
      { ms: Date.now() - started, datagramsWaiting: queue.length },
      "gateway connection opened ahead",
    );
    // WireGuard's first datagram came meanwhile.
    if (queue.length > 0) {
      greet(tls);
      return;
    }
    state = "ready";
    tls.on("error", () => {});
    // Closed by the peer or the gateway while it waited: the first datagram connects anew.
    const onClose = () => {
      if (ready?.tls !== tls) return;
      takeReady();
      state = "idle";
      if (queue.length > 0) kick();
    };
    tls.once("close", onClose);
    const timer = setTimeout(
      () => {
        if (ready?.tls !== tls) return;
        takeReady();
        tls.destroy();
        state = "idle";
        log.debug("no datagram for the peer: closed the connection opened ahead");
      },
      Math.max(0, started + (options.preopenIdleMs ?? PREOPEN_IDLE_MS) - Date.now()),
    );
    timer.unref();
    ready = { tls, timer, onClose };
  }

  async function connectOnce(): Promise<void> {
    state = "connecting";
    const started = Date.now();
    let tls: TLSSocket;
    try {
      // A stream that could carry nothing is not opened (greet would refuse it).
      if (signer.selfMemberId() === undefined)
        throw new Error("this node has no member id yet, so it cannot sign a hello");
      tls = await dial();
      log.trace({ ms: Date.now() - started }, "gateway connection opened");
    } catch (error) {
      if (closed) return;
      failed(error instanceof Error ? error.message : String(error));
      return;
    }
    if (closed) {
      tls.destroy();
      return;
    }
    greet(tls);
  }

  /** Sends the signed hello on an open TLS connection: it becomes the outbound stream. */
  function greet(tls: TLSSocket): void {
    const self = signer.selfMemberId();
    let hello: Buffer;
    try {
      if (self === undefined) throw new Error("this node has no member id yet, so it cannot sign a hello");
      hello = encodeHello(
        {
          chainId: signer.chainId,
          cluster: signer.cluster,
          from: self,
          to: memberId,
          timestampMs: BigInt(Date.now()),
          nonce: randomBytes(HELLO_NONCE_BYTES),
        },
        helloKeyingMaterial(tls),
        (message) => signer.sign(message),
      );
    } catch (error) {
      tls.destroy();
      failed(error instanceof Error ? error.message : String(error));
      return;
    }
    const helloAt = Date.now();
    const stream = createFramedStream({
      socket: tls,
      ...streamTimings,
      // The peer's first frame (its ingress sends one as soon as our hello verified) opens the stream.
      onFirstFrame: () => {
        if (outbound !== stream || closed) return;
        state = "open";
        if (attempts > 0) log.info({ attempts }, "gateway stream open again");
        else
          log.debug(
            {
              target: `${target.host}:${target.port}`,
              sni: target.serverName,
              helloMs: Date.now() - helloAt,
            },
            "gateway stream open",
          );
        attempts = 0;
        if (holdingSince !== undefined && holdEndsOnOpen) {
          // The peer accepted our stream: an initiation it sent on its own is about that far away.
          const left = holdingSince + holdMinMs - Date.now();
          if (left <= 0) release();
          else {
            clearTimeout(holdTimer);
            holdTimer = setTimeout(release, left);
            holdTimer.unref();
          }
        }
        flush();
      },
      onFrame: (payload) => deliver(payload),
      onDrain: () => flush(),
      onClose: (reason) => {
        if (outbound !== stream) return;
        outbound = undefined;
        if (closed) return;
        if (state === "hello") {
          // Refused (or cut) before the peer accepted the hello: the peer does not know this node (yet).
          // What waited for this stream is dropped, not held for the next one: WireGuard retries on its
          // own, and a stale handshake initiation delivered late would cross the one the peer sends
          // when it adds this node, which makes both sides drop both and wait 5 s for a retry.
          counters.dropped += queue.length;
          queue.length = 0;
          log.info({ reason }, "the peer refused the gateway stream before accepting its hello");
          retryLater();
          return;
        }
        log.info({ reason }, "gateway stream closed");
        retryLater();
      },
    });
    stream.sendRaw(hello);
    outbound = stream;
    state = "hello";
  }

  function failed(why: string): void {
    counters.connectFailures += 1;
    // The first failure and then every tenth: a peer that is gone for long must not flood the log.
    if (attempts % 10 === 0) {
      log.warn(
        { attempt: attempts + 1, reason: why, sni: target.serverName },
        "cannot open the gateway stream",
      );
    }
    attempts += 1;
    retryLater();
  }

  function retryLater(): void {
    if (closed) return;
    state = "backoff";
    clearTimeout(retryTimer);
    retryTimer = setTimeout(
      () => {
        state = "idle";
        if (queue.length > 0) kick();
      },
      backoffDelay(Math.max(0, attempts - 1), backoff, options.random),
    );
    retryTimer.unref();
  }

  function deliver(payload: Buffer): void {
    if (closed) return;
    counters.datagramsIn += 1;
    if (holdingSince !== undefined && isInitiation(payload)) peerInitiationUnanswered = true;
    if (connected) udp.send(payload);
    else udp.send(payload, wgPort, wgHost);
  }

  udp.on("message", fromWireGuard);
  if (options.preopen ?? true) void preopen();
  udp.on("error", (error: NodeJS.ErrnoException) => {
    // On a connected socket the kernel reports WireGuard's port closed (it restarts) as ECONNREFUSED.
    if (error.code === "ECONNREFUSED") log.debug({ err: error }, "WireGuard's port is closed");
    else log.warn({ err: error }, "bridge UDP socket error");
  });

  return {
    memberId,
    appId,
    localEndpoint,
    attachInbound(stream) {
      if (closed) {
        stream.close("link closed");
        return;
      }
      inbound.push(stream);
      while (inbound.length > maxInbound)
        inbound.shift()?.close("superseded by a newer stream from the peer");
      const self = signer.selfMemberId();
      if (self !== undefined) {
        const lower = self < memberId;
        if (lower)
          dropInitiations(
            "the peer opened a stream first: dropped the handshake initiations waiting for ours",
          );
        if (holdingSince === undefined) {
          // Also what WireGuard sends just after (a held keepalive going in, the sidecar's own traffic)
          // waits: the peer's initiation is on its way on this stream (seen on joins: sent at once, a
          // fresh initiation crossed the peer's 6 ms later, and the pair waited for the crossing check).
          if (!lower && queue.some((entry) => isInitiation(entry.payload)))
            log.debug("the peer opened a stream first: holding the handshake initiations waiting for ours");
          holdingSince = Date.now();
          holdEndsOnOpen = !lower;
          // The lower side waits longer, so that when both wait for nothing, the higher side's goes first.
          holdTimer = setTimeout(release, lower ? 2 * holdMs : holdMs);
          holdTimer.unref();
        }
      }
      flush();
    },
    deliver(payload) {
      if (isInitiation(payload)) peerInitiationAt = Date.now();
      deliver(payload);
    },
    peerInitiationAt: () => peerInitiationAt,
    status: () => ({
      memberId,
      appId,
      localEndpoint,
      outbound: state,
      inbound: inbound.filter((s) => !s.closed).length,
      ...counters,
      queued: queue.length,
    }),
    close() {
      if (closed) return;
      closed = true;
      clearTimeout(retryTimer);
      endHold();
      takeReady()?.destroy();
      outbound?.close("peer removed");
      for (const stream of inbound) stream.close("peer removed");
      queue.length = 0;
      udp.close();
    },
  };
}

/** Whether `udp` is connected to exactly host:port. */
function connectedTo(udp: UdpSocket, host: string, port: number): boolean {
  try {
    const remote = udp.remoteAddress();
    return remote.address === host && remote.port === port;
  } catch {
    return false;
  }
}

function secured(socket: TLSSocket, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no TLS handshake within ${timeoutMs} ms`)), timeoutMs);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once("close", () => {
      clearTimeout(timer);
      reject(new Error("the gateway closed the connection during the TLS handshake"));
    });
  });
}
