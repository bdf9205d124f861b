// The ingress: a TLS server on the CVM port the gateway forwards to. Each connection must open with
// a hello naming this node as `to` and a current peer as `from`; its datagrams then go to WireGuard
// through that peer's link. The certificate is self-signed and nobody checks it: the TLS leg exists
// because the gateway routes by SNI, and WireGuard authenticates every datagram it accepts. A stream
// that claims to be a peer it is not can only deliver datagrams WireGuard drops.
import type { Server, Socket } from "node:net";
import { createSecureContext, TLSSocket } from "node:tls";
import type { Logger } from "../log.ts";
import { decodeHello } from "./frame.ts";
import { createFramedStream, type FramedStream } from "./stream.ts";

export interface IngressOptions {
  readonly server: Server;
  readonly selfAppId: `0x${string}`;
  readonly key: string;
  readonly cert: string;
  /** The link of a current peer, or undefined (the connection is refused). */
  readonly peer: (
    appId: `0x${string}`,
  ) => { attachInbound(stream: FramedStream): void; deliver(payload: Buffer): void } | undefined;
  readonly logger: Logger;
  /** Time for the TLS handshake and the hello; default 10 s. */
  readonly helloTimeoutMs?: number;
  /** Connections that have not said hello yet, at most; default 64. */
  readonly maxPending?: number;
  readonly keepaliveMs?: number;
  readonly idleTimeoutMs?: number;
}

export interface Ingress {
  /** Connections refused so far, by reason. */
  refused(): Readonly<Record<string, number>>;
  close(): Promise<void>;
}

export function startIngress(options: IngressOptions): Ingress {
  const { server, logger, selfAppId } = options;
  const secureContext = createSecureContext({ key: options.key, cert: options.cert });
  const helloTimeoutMs = options.helloTimeoutMs ?? 10_000;
  const maxPending = options.maxPending ?? 64;
  const refused: Record<string, number> = {};
  const open = new Set<Socket | TLSSocket>();
  let pending = 0;

  /** Counts and logs a refusal; `target` is closed at once, so no later frame of it is read. */
  function refuse(
    target: Socket | TLSSocket | FramedStream,
    reason: string,
    details: Record<string, unknown> = {},
  ): void {
    refused[reason] = (refused[reason] ?? 0) + 1;
    logger.debug({ reason, ...details }, "ingress connection refused");
    if ("destroy" in target) target.destroy();
    else target.close(`refused: ${reason}`);
  }

  server.on("connection", (raw: Socket) => {
    if (pending >= maxPending) {
      refuse(raw, "too-many-pending");
      return;
    }
    pending += 1;
    let said = false;
    const settle = () => {
      if (!said) {
        said = true;
        pending -= 1;
      }
    };
    const tls = new TLSSocket(raw, { isServer: true, secureContext });
    open.add(tls);
    tls.on("close", () => {
      open.delete(tls);
      settle();
    });
    const timer = setTimeout(() => {
      if (said) return;
      settle();
      refuse(tls, "no-hello-in-time");
    }, helloTimeoutMs);
    timer.unref();
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
        let from: `0x${string}`;
        try {
          const hello = decodeHello(payload);
          if (hello.to !== selfAppId.toLowerCase()) {
            refuse(stream, "not-for-this-node", { to: hello.to });
            return;
          }
          from = hello.from;
        } catch (error) {
          refuse(stream, "bad-hello", { error: error instanceof Error ? error.message : String(error) });
          return;
        }
        const link = options.peer(from);
        if (link === undefined) {
          refuse(stream, "unknown-peer", { from });
          return;
        }
        attached = link;
        link.attachInbound(stream);
        logger.debug({ peer: from }, "ingress stream from peer");
      },
      onClose: (reason) => {
        clearTimeout(timer);
        if (!said) refuse(tls, "closed-before-hello", { reason });
      },
    });
  });

  return {
    refused: () => ({ ...refused }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
