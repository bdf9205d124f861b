// The ingress: a TLS server on the CVM port the gateway forwards to. Each connection must open with
// a signed hello (hello.ts) from a current peer to this node, bound to this very TLS session; only
// then does a peer's link adopt the stream, so a stream that cannot prove who it is never displaces
// a peer's stream and never receives a datagram. The certificate is self-signed and nobody checks
// it: the TLS leg exists because the gateway routes by SNI, and the hello, not the certificate, says
// who is on the other end.
//
// Before its hello a connection is anonymous (through dstack's passthrough every client comes from the
// gateway's address), so the waiting room is bounded by time (a short hello timeout) and by count, and
// a share of it is kept for whoever connects next: once the regular slots are full, each newcomer takes
// a reserved one and pushes out the connection that has waited longest, if that one had its grace
// period. Idle connections therefore cannot lock a real peer out: a peer says hello within one round
// trip of its TLS handshake, and an attacker would have to open more connections than there are slots
// within every grace period to keep a newcomer out.
import type { Server, Socket } from "node:net";
import { createSecureContext, TLSSocket } from "node:tls";
import type { Logger } from "../log.ts";
import { KEEPALIVE_FRAME } from "./frame.ts";
import { decodeHello, type HelloChecker, helloKeyingMaterial, type SignedHello } from "./hello.ts";
import type { TransportMetrics } from "./metrics.ts";
import { createFramedStream, type FramedStream } from "./stream.ts";

export interface IngressOptions {
  readonly server: Server;
  readonly key: string;
  readonly cert: string;
  /** Decides whether a hello makes its stream a peer's. */
  readonly hellos: HelloChecker;
  /** The link of a current peer, or undefined (the connection is refused). */
  readonly peer: (
    memberId: bigint,
  ) => { attachInbound(stream: FramedStream): void; deliver(payload: Buffer): void } | undefined;
  readonly logger: Logger;
  readonly metrics?: TransportMetrics;
  /** Time for the TLS handshake and the hello; default 2 s. */
  readonly helloTimeoutMs?: number;
  /** Connections that may wait for their hello undisturbed; default 64. */
  readonly maxPending?: number;
  /**
   * Slots beyond `maxPending` kept for newcomers (default a quarter of it, at least 1): a newcomer
   * that finds `maxPending` waiting takes one and pushes out the longest-waiting connection past its
   * grace. Only when every slot holds a connection still within its grace is a newcomer refused.
   */
  readonly reservedPending?: number;
  /** A waiting connection is not pushed out before this; default a quarter of the hello timeout. */
  readonly pendingGraceMs?: number;
  readonly keepaliveMs?: number;
  readonly idleTimeoutMs?: number;
  /**
   * A well-formed hello refused only because this node cannot judge it yet (it has no member id, or does
   * not know the sender as a peer): its stream is refused like any other and carries nothing, but the
   * hello and its session's exporter value are handed over, so the sender's attempt can be verified once
   * its key is known (bridge.ts).
   */
  readonly onTooEarly?: (hello: SignedHello, ekm: Uint8Array) => void;
}

/** Refusals that mean "not yet": this node lacks its own member id or the sender's certified key. */
const TOO_EARLY: ReadonlySet<string> = new Set(["not-registered", "unknown-peer"]);

export interface Ingress {
  /** Connections refused so far, by reason. */
  refused(): Readonly<Record<string, number>>;
  /** Connections waiting for their hello now. */
  pending(): number;
  close(): Promise<void>;
}

/** A refusal is logged at most this often per reason; the lines in between are counted. */
const LOG_EVERY_MS = 10_000;

/** Why a hello was refused, for the refusal's log line. */
type Refusal = { ok: false; reason: string; details: Record<string, unknown> };

/** The refusal for a step that threw, with the error's message. */
function threw(reason: string, error: unknown): Refusal {
  return { ok: false, reason, details: { error: error instanceof Error ? error.message : String(error) } };
}

export function startIngress(options: IngressOptions): Ingress {
  const { server, logger, metrics } = options;
  const secureContext = createSecureContext({ key: options.key, cert: options.cert });
  const helloTimeoutMs = options.helloTimeoutMs ?? 2_000;
  const maxPending = options.maxPending ?? 64;
  const reserved = options.reservedPending ?? Math.max(1, Math.floor(maxPending / 4));
  const graceMs = options.pendingGraceMs ?? Math.floor(helloTimeoutMs / 4);
  const refused: Record<string, number> = {};
  const lastLogged = new Map<string, { at: number; suppressed: number }>();
  const open = new Set<Socket | TLSSocket>();
  /** Connections waiting for their hello, oldest first, with when they arrived and how to drop them. */
  const waiting = new Map<Socket, { readonly at: number; readonly evict: () => void }>();

  /** Counts, logs (rate-limited per reason) and closes; `target` is closed at once, so no later frame is read. */
  function refuse(
    target: Socket | TLSSocket | FramedStream,
    reason: string,
    details: Record<string, unknown> = {},
  ): void {
    refused[reason] = (refused[reason] ?? 0) + 1;
    metrics?.ingressRefused.inc({ reason });
    const now = Date.now();
    const last = lastLogged.get(reason);
    if (last === undefined || now - last.at >= LOG_EVERY_MS) {
      lastLogged.set(reason, { at: now, suppressed: 0 });
      logger.warn(
        { reason, ...details, ...(last?.suppressed ? { alsoRefusedSinceLastLine: last.suppressed } : {}) },
        "gateway stream refused",
      );
    } else last.suppressed += 1;
    if ("destroy" in target) target.destroy();
    else target.close(`refused: ${reason}`);
  }

  function admit(raw: Socket): boolean {
    if (waiting.size >= maxPending) {
      // The newcomer takes a reserved slot, and the longest-waiting connection goes if it had its grace,
      // so the reserve stays free for whoever comes next.
      const [oldest, entry] = waiting.entries().next().value ?? [];
      if (oldest !== undefined && entry !== undefined && Date.now() - entry.at >= graceMs) entry.evict();
    }
    if (waiting.size >= maxPending + reserved) {
      refuse(raw, "too-many-pending");
      return false;
    }
    return true;
  }

  function check(tls: TLSSocket, payload: Buffer): { ok: true; from: bigint } | Refusal {
    let hello: SignedHello;
    try {
      hello = decodeHello(payload);
    } catch (error) {
      return threw("bad-hello", error);
    }
    let ekm: Uint8Array;
    try {
      ekm = helloKeyingMaterial(tls);
    } catch (error) {
      return threw("no-tls-session", error);
    }
    const result = options.hellos.check(hello, ekm);
    if (!result.ok) {
      if (TOO_EARLY.has(result.reason)) options.onTooEarly?.(hello, ekm);
      return {
        ok: false,
        reason: result.reason,
        details: {
          from: hello.from.toString(),
          to: hello.to.toString(),
          ...(result.detail === undefined ? {} : { detail: result.detail }),
        },
      };
    }
    return { ok: true, from: result.from };
  }

  server.on("connection", (raw: Socket) => {
    if (!admit(raw)) return;
    let said = false;
    const settle = () => {
      if (said) return;
      said = true;
      waiting.delete(raw);
      metrics?.ingressPending.set(waiting.size);
    };
    const tls = new TLSSocket(raw, { isServer: true, secureContext });
    tls.on("error", () => {});
    open.add(tls);
    tls.on("close", () => {
      open.delete(tls);
      settle();
    });
    const timer = setTimeout(() => {
      if (said) return;
      settle();
      refuse(tls, "no-hello-in-time", { timeoutMs: helloTimeoutMs });
    }, helloTimeoutMs);
    timer.unref();
    waiting.set(raw, {
      at: Date.now(),
      evict: () => {
        clearTimeout(timer);
        settle();
        refuse(tls, "pending-evicted");
      },
    });
    metrics?.ingressPending.set(waiting.size);
    let attached: { deliver(payload: Buffer): void } | undefined;
    createFramedStream({
      socket: tls,
      ...(options.keepaliveMs === undefined ? {} : { keepaliveMs: options.keepaliveMs }),
      ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
      onFrame: (payload, stream) => {
        if (attached !== undefined) {
          attached.deliver(payload);
          return;
        }
        clearTimeout(timer);
        settle();
        const verdict = check(tls, payload);
        if (!verdict.ok) {
          refuse(stream, verdict.reason, verdict.details);
          return;
        }
        const link = options.peer(verdict.from);
        if (link === undefined) {
          refuse(stream, "unknown-peer", { from: verdict.from.toString() });
          return;
        }
        attached = link;
        // An empty frame at once tells the connecting side its hello was accepted, so it sends its
        // datagrams on this stream only from then on (link.ts); a refused stream is closed instead.
        stream.sendRaw(KEEPALIVE_FRAME);
        link.attachInbound(stream);
        metrics?.ingressAccepted.inc();
        logger.debug({ peer: verdict.from.toString() }, "authenticated ingress stream from peer");
      },
      onClose: (reason) => {
        clearTimeout(timer);
        if (!said) {
          settle();
          refuse(tls, "closed-before-hello", { closed: reason });
        }
      },
    });
  });

  return {
    refused: () => ({ ...refused }),
    pending: () => waiting.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
