// A SocketFactory whose sockets live in another network namespace: a helper process started with
// `ip netns exec` opens each one there and passes its descriptor back over Node's IPC channel. Used
// when WireGuard runs in a namespace the sidecar is not in (ATTESTMESH_WG_NETNS, the devnet).
import { type ChildProcess, spawn } from "node:child_process";
import type { Socket as UdpSocket } from "node:dgram";
import type { Server, Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { retryableError } from "../errors.ts";
import type { HelperReply, HelperRequest } from "./netnsHelper.ts";
import type { SocketFactory } from "./socketFactory.ts";

// Beside the sources, the helper's source; beside the built bundle (sidecar/build/bundle.ts), its bundle.
const HELPER = fileURLToPath(
  new URL(import.meta.url.endsWith(".ts") ? "./netnsHelper.ts" : "./netnsHelper.mjs", import.meta.url),
);

export function createNetnsSocketFactory(options: {
  readonly netns: string;
  /** Limit for one request (the helper's start-up included); default 10 s. */
  readonly timeoutMs?: number;
}): SocketFactory {
  const { netns } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  let child: ChildProcess | undefined;
  let nextId = 1;
  const waiting = new Map<number, (reply: HelperReply, handle: unknown) => void>();

  function helper(): ChildProcess {
    if (child?.connected) return child;
    const started = spawn("ip", ["netns", "exec", netns, process.execPath, HELPER], {
      stdio: ["ignore", "ignore", "inherit", "ipc"],
    });
    started.on("message", (reply: HelperReply, handle: unknown) => {
      const resolve = waiting.get(reply.id);
      waiting.delete(reply.id);
      resolve?.(reply, handle);
    });
    const failAll = () => {
      if (child === started) child = undefined;
      for (const [id, resolve] of waiting)
        resolve({ id, ok: false, message: "the netns helper exited" }, undefined);
      waiting.clear();
    };
    started.on("exit", failAll);
    started.on("error", failAll);
    child = started;
    return started;
  }

  function request<T>(
    op: HelperRequest["op"],
    host: string,
    port: number,
    connectMs = timeoutMs,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(failure(op, host, port, `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      waiting.set(id, (reply, handle) => {
        clearTimeout(timer);
        if (reply.ok && handle !== undefined) resolve(handle as T);
        else reject(failure(op, host, port, reply.ok ? "no socket came back" : reply.message));
      });
      helper().send({ id, op, host, port, timeoutMs: connectMs } satisfies HelperRequest);
    });
  }

  function failure(op: string, host: string, port: number, why: string) {
    return retryableError(
      "TransportConnectFailed",
      `${op} ${host}:${port} in netns ${netns} failed: ${why}`,
      {
        details: { op, host, port, netns },
      },
    );
  }

  return {
    udp: (host, port) => request<UdpSocket>("udp", host, port),
    connect: (host, port, connectMs) => request<Socket>("connect", host, port, connectMs),
    listen: (host, port) => request<Server>("listen", host, port),
    warm: () => void helper(),
    close: async () => {
      const running = child;
      child = undefined;
      if (running?.connected) running.disconnect();
    },
  };
}
