// Sockets opened ahead of a registration's inclusion (issue 15). A newcomer knows its peers from the
// view it verified while registering, and at the inclusion it opens one link per peer at once: a UDP
// socket and a TCP connection to the gateway each. Opening those while the registration is on its way
// takes them off the join's path: a TCP round trip to the gateway per peer in a CVM, and in the devnet
// two descriptors per peer from the namespace helper, which Node's IPC passes one at a time, each
// acknowledged by the sidecar's busy event loop (up to 0.8 s for the seventh peer, measured).
//
// Only the TCP connection opens ahead, never TLS: nothing reaches a peer, whose ingress would count a
// connection without a hello against its time (ingress.ts), and the gateway sees a connection that has
// not sent its ClientHello yet, as it does for a moment anyway. A connection kept `lifetimeMs` unused,
// or closed by the gateway meanwhile, goes; the link then connects as it would have.
import type { Socket as UdpSocket } from "node:dgram";
import type { Socket } from "node:net";
import type { Logger } from "../log.ts";
import type { SocketFactory } from "../meshnet/socketFactory.ts";

/** How long a socket opened ahead waits for its link (the devnet's gateway waits 10 s for a ClientHello). */
export const AHEAD_LIFETIME_MS = 8_000;
/** Sockets held ahead at most, of each kind (an ingress admits 64 waiting connections by default). */
export const AHEAD_MAX = 64;

export interface AheadFactory extends SocketFactory {
  /**
   * Opens in the background a TCP connection to each of `connects` (a target named n times opens n)
   * and `udp` UDP sockets on `udpHost`, beyond those already held or opening; each goes to the next
   * `connect` to its host and port, or `udp(udpHost, 0)`. Never rejects; what fails to open is not held.
   */
  openAhead(ahead: {
    readonly connects: readonly { readonly host: string; readonly port: number }[];
    readonly udpHost: string;
    readonly udp: number;
  }): void;
  /** Sockets held now (open, not yet taken). */
  held(): { readonly connects: number; readonly udp: number };
}

interface Held<T> {
  readonly socket: T;
  readonly timer: NodeJS.Timeout;
}

/** Sockets of one kind held by key, oldest first, each closed by its timer when unused. */
function createPool<T>(lifetimeMs: number, drop: (socket: T) => void) {
  const held = new Map<string, Held<T>[]>();
  const opening = new Map<string, number>();
  const total = () =>
    [...held.values()].reduce((n, l) => n + l.length, 0) + [...opening.values()].reduce((n, v) => n + v, 0);
  const remove = (key: string, socket: T) => {
    const left = (held.get(key) ?? []).filter((e) => e.socket !== socket);
    if (left.length > 0) held.set(key, left);
    else held.delete(key);
  };
  return {
    /** How many more to open for `key` to have `wanted`, within AHEAD_MAX. */
    room: (key: string, wanted: number) =>
      Math.max(
        0,
        Math.min(wanted - (held.get(key)?.length ?? 0) - (opening.get(key) ?? 0), AHEAD_MAX - total()),
      ),
    opening: (key: string, delta: number) => opening.set(key, (opening.get(key) ?? 0) + delta),
    hold(key: string, socket: T) {
      const timer = setTimeout(() => {
        remove(key, socket);
        drop(socket);
      }, lifetimeMs);
      timer.unref();
      held.set(key, [...(held.get(key) ?? []), { socket, timer }]);
    },
    remove,
    take(key: string): T | undefined {
      const list = held.get(key);
      const entry = list?.shift();
      if (list?.length === 0) held.delete(key);
      if (entry === undefined) return undefined;
      clearTimeout(entry.timer);
      return entry.socket;
    },
    count: () => [...held.values()].reduce((n, l) => n + l.length, 0),
    clear() {
      for (const list of held.values())
        for (const e of list) {
          clearTimeout(e.timer);
          drop(e.socket);
        }
      held.clear();
    },
  };
}

export function createAheadFactory(
  inner: SocketFactory,
  options: { readonly logger: Logger; readonly lifetimeMs?: number; readonly connectTimeoutMs?: number },
): AheadFactory {
  const lifetimeMs = options.lifetimeMs ?? AHEAD_LIFETIME_MS;
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  const tcp = createPool<Socket>(lifetimeMs, (s) => s.destroy());
  const udp = createPool<UdpSocket>(lifetimeMs, (s) => s.close());
  let closed = false;

  function openConnection(host: string, port: number): void {
    const key = `${host}:${port}`;
    tcp.opening(key, 1);
    inner.connect(host, port, connectTimeoutMs).then(
      (socket) => {
        tcp.opening(key, -1);
        if (closed) {
          socket.destroy();
          return;
        }
        socket.on("error", () => {});
        // Closed by the gateway while it waited: no longer held, and its link connects anew.
        socket.once("close", () => tcp.remove(key, socket));
        tcp.hold(key, socket);
      },
      (error: unknown) => {
        tcp.opening(key, -1);
        options.logger.debug({ target: key, err: error }, "could not open a gateway connection ahead");
      },
    );
  }

  function openUdp(host: string): void {
    udp.opening(host, 1);
    inner.udp(host, 0).then(
      (socket) => {
        udp.opening(host, -1);
        if (closed) socket.close();
        else udp.hold(host, socket);
      },
      (error: unknown) => {
        udp.opening(host, -1);
        options.logger.debug({ err: error }, "could not open a link's UDP socket ahead");
      },
    );
  }

  return {
    openAhead(ahead) {
      if (closed) return;
      const wanted = new Map<string, { host: string; port: number; n: number }>();
      for (const { host, port } of ahead.connects) {
        const key = `${host}:${port}`;
        const w = wanted.get(key) ?? { host, port, n: 0 };
        wanted.set(key, { ...w, n: w.n + 1 });
      }
      for (const [key, { host, port, n }] of wanted) {
        for (let i = tcp.room(key, n); i > 0; i--) openConnection(host, port);
      }
      for (let i = udp.room(ahead.udpHost, ahead.udp); i > 0; i--) openUdp(ahead.udpHost);
    },
    held: () => ({ connects: tcp.count(), udp: udp.count() }),
    async connect(host, port, timeoutMs) {
      for (;;) {
        const socket = tcp.take(`${host}:${port}`);
        if (socket === undefined) return inner.connect(host, port, timeoutMs);
        socket.removeAllListeners("close");
        socket.removeAllListeners("error");
        if (!socket.destroyed && socket.readyState === "open") return socket;
        socket.destroy();
      }
    },
    async udp(host, port) {
      return (port === 0 ? udp.take(host) : undefined) ?? inner.udp(host, port);
    },
    listen: (host, port) => inner.listen(host, port),
    ...(inner.warm === undefined ? {} : { warm: () => inner.warm?.() }),
    async close() {
      closed = true;
      tcp.clear();
      udp.clear();
      await inner.close();
    },
  };
}
