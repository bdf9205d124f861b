// The one UDP socket the mesh protocols (heartbeats, CSK requests and responses) share, bound to this
// node's mesh IP on the mesh port, so only traffic that came through WireGuard reaches it. Three ways
// to open it, one per deployment:
//   direct    the sidecar shares the WireGuard interface's network namespace (a real CVM)
//   netns     the interface lives in another namespace (the devnet): the netns helper (netnsSockets.ts,
//             the same one the peer transport uses) binds the socket there and hands the bound
//             descriptor back over Node's IPC channel; the socket stays in that namespace, this
//             process owns it
//   loopback  tests with the in-memory WireGuard backend: mesh IP a.b.c.d is served at 127.b.c.d, and
//             every destination is mapped the same way, so in-process nodes exchange real datagrams
import type { Socket } from "node:dgram";
import { retryableError } from "../errors.ts";
import { createNetnsSocketFactory } from "./netnsSockets.ts";
import { createLocalSocketFactory, type SocketFactory } from "./socketFactory.ts";

export type MeshSocketMode = "direct" | "netns" | "loopback";

export interface Remote {
  readonly address: string;
  readonly port: number;
}

export interface MeshSocket {
  /** The bound mesh address (before any loopback mapping) and port. */
  readonly local: Remote;
  /** Sends one datagram to a mesh IP; a send error is reported to `onError`, never thrown. */
  send(datagram: Uint8Array, meshIp: string, port: number): void;
  onMessage(handler: (datagram: Uint8Array, from: Remote) => void): () => void;
  close(): Promise<void>;
}

export interface OpenMeshSocketOptions {
  readonly mode: MeshSocketMode;
  readonly meshIp: string;
  readonly port: number;
  /** Required for "netns". */
  readonly netns?: string;
  readonly onError?: (error: Error) => void;
  /** Limit for the netns helper; default 10 s. */
  readonly timeoutMs?: number;
  /** The caller's socket factory for this mode (it stays open); without it one is made and closed. */
  readonly factory?: SocketFactory;
}

/** 10.77.0.5 → 127.77.0.5: the loopback address that stands for a mesh IP in "loopback" mode. */
export function loopbackFor(meshIp: string): string {
  const octets = meshIp.split(".");
  return `127.${octets.slice(1).join(".")}`;
}

/** 127.77.0.5 → 10.77.0.5 given the mesh's first octet. */
function fromLoopback(address: string, firstOctet: string): string {
  const octets = address.split(".");
  return octets[0] === "127" ? `${firstOctet}.${octets.slice(1).join(".")}` : address;
}

/** Opens the mesh socket; a failure (address not up yet, port taken) is retryable. */
export async function openMeshSocket(options: OpenMeshSocketOptions): Promise<MeshSocket> {
  const { mode, meshIp, port } = options;
  const bindAddress = mode === "loopback" ? loopbackFor(meshIp) : meshIp;
  const firstOctet = meshIp.split(".")[0] ?? "10";
  let socket: Socket;
  try {
    if (mode === "netns" && options.netns === undefined) throw new Error("netns mode needs a namespace name");
    const factory =
      options.factory ??
      (mode === "netns" && options.netns !== undefined
        ? createNetnsSocketFactory({ netns: options.netns, timeoutMs: options.timeoutMs ?? 10_000 })
        : createLocalSocketFactory());
    try {
      socket = await factory.udp(bindAddress, port);
    } finally {
      if (options.factory === undefined) await factory.close();
    }
  } catch (cause) {
    throw retryableError(
      "MeshSocketUnavailable",
      `cannot bind the mesh UDP socket on ${bindAddress}:${port}${mode === "netns" ? ` in namespace ${options.netns}` : ""}; is the WireGuard interface up and ATTESTMESH_MESH_PORT free?`,
      { cause },
    );
  }
  const onError = options.onError ?? (() => {});
  socket.on("error", onError);
  return {
    local: { address: meshIp, port },
    send(datagram, to, toPort) {
      const address = mode === "loopback" ? loopbackFor(to) : to;
      socket.send(datagram, toPort, address, (error) => {
        if (error) onError(error);
      });
    },
    onMessage(handler) {
      const listener = (msg: Buffer, rinfo: { address: string; port: number }) => {
        const address = mode === "loopback" ? fromLoopback(rinfo.address, firstOctet) : rinfo.address;
        handler(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), { address, port: rinfo.port });
      };
      socket.on("message", listener);
      return () => socket.off("message", listener);
    },
    close: () =>
      new Promise<void>((resolve) => {
        try {
          socket.close(() => resolve());
        } catch {
          resolve();
        }
      }),
  };
}
