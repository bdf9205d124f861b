// Where sockets are made: the peer transport's bridge sockets and the mesh UDP socket (socket.ts).
// WireGuard's endpoint for a peer must be a UDP port WireGuard can reach, and the gateway and the
// ingress must be reachable from the same network: in a CVM that is this process's own network
// namespace; in the devnet WireGuard lives in a node namespace while the sidecar stays in the host's,
// so there the sockets are opened inside the namespace by a helper (netnsSockets.ts) and handed over.
// Either way the sidecar reads and writes them itself.
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, createServer, type Server, type Socket } from "node:net";
import { retryableError } from "../errors.ts";

export interface SocketFactory {
  /** A UDP socket bound to host:port (port 0: any free one). */
  udp(host: string, port: number): Promise<UdpSocket>;
  /** A TCP connection to host:port, established within timeoutMs. */
  connect(host: string, port: number, timeoutMs: number): Promise<Socket>;
  /** A TCP server listening on host:port. */
  listen(host: string, port: number): Promise<Server>;
  /** Releases what the factory holds (the helper process); sockets it made stay the caller's. */
  close(): Promise<void>;
  /** Starts now what the first request would start (the netns helper), so that request does not wait. */
  warm?(): void;
}

/** Sockets in this process's own network namespace. */
export function createLocalSocketFactory(): SocketFactory {
  return {
    udp: (host, port) =>
      new Promise((resolve, reject) => {
        const socket = createSocket("udp4");
        socket.once("error", reject);
        socket.bind(port, host, () => {
          socket.off("error", reject);
          resolve(socket);
        });
      }),
    connect: (host, port, timeoutMs) => connectWithin(host, port, timeoutMs),
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        const server = createServer();
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve(server);
        });
      }),
    close: async () => {},
  };
}

/** net.connect with a deadline; rejects with a retryable `TransportConnectFailed`. */
export function connectWithin(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true });
    const fail = (why: string, cause?: unknown) => {
      clearTimeout(timer);
      socket.destroy();
      reject(
        retryableError("TransportConnectFailed", `cannot connect to ${host}:${port}: ${why}`, {
          details: { host, port },
          cause,
        }),
      );
    };
    const timer = setTimeout(() => fail(`no connection within ${timeoutMs} ms`), timeoutMs);
    socket.once("error", (error) => fail(error.message, error));
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
  });
}
