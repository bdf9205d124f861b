// Listening helpers every daemon uses. `listenHttp` binds a TCP server and reports where it landed.
// `listenUnix` binds a unix socket with the right permissions from the first moment: the socket is bound
// in a fresh 0700 directory next to the target, given mode 0600 (or 0660 and a group), and only then
// renamed into place, so no other user ever sees it with looser permissions. A stale socket left by a
// crash is replaced; a live one, or anything that is not a socket, is refused.
import { chmod, chown, lstat, mkdir, mkdtemp, rename, rmdir, stat, unlink } from "node:fs/promises";
import type { Server as HttpServer } from "node:http";
import { type AddressInfo, connect, type Server } from "node:net";
import { dirname, join } from "node:path";
import { AttestmeshError } from "../errors.ts";

export interface TcpListener {
  /** The bound address, IPv6 in brackets, ready for a URL. */
  readonly host: string;
  readonly port: number;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

/** Listens on `host:port` (0 picks a free port); rejects with the listen error. */
export async function listenHttp(server: HttpServer, host: string, port: number): Promise<TcpListener> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    host: address.family === "IPv6" ? `[${address.address}]` : address.address,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;

export interface UnixListenOptions {
  /** Group that may use the socket (mode 0660); undefined: mode 0600. */
  readonly gid?: number | undefined;
  /** The variable that names the path, for the fix in error messages. */
  readonly variable?: string;
  /** Prefix of the error codes (`<prefix>SocketInUse`, …), e.g. "Api". */
  readonly codePrefix?: string;
}

export interface UnixListener {
  readonly path: string;
  /** Stops listening and removes the socket file (if it is still ours). */
  close(): Promise<void>;
}

/** True when something accepts connections on the unix socket at `path` within a second. */
async function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (listening: boolean) => {
      socket.destroy();
      resolve(listening);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}

/**
 * Clears the way for a socket at `path`: nothing there is fine and a stale socket (no one listening) is
 * removed; anything that is not a socket, or a live one, is refused with the error `refuse` makes.
 */
export async function clearStaleSocket(
  path: string,
  refuse: (problem: "not-a-socket" | "in-use") => Error,
): Promise<void> {
  let info: Awaited<ReturnType<typeof lstat>>;
  try {
    info = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  if (!info.isSocket()) throw refuse("not-a-socket");
  if (await isListening(path)) throw refuse("in-use");
  await unlink(path);
}

export async function listenUnix(
  server: Server,
  path: string,
  options: UnixListenOptions = {},
): Promise<UnixListener> {
  const variable = options.variable ?? "the socket path";
  const refuse = (code: string, message: string) =>
    new AttestmeshError(message, { code: `${options.codePrefix ?? ""}${code}`, details: { path } });
  const clearStale = () =>
    clearStaleSocket(path, (problem) =>
      problem === "not-a-socket"
        ? refuse("SocketPathTaken", `${path} exists and is not a socket; set ${variable} to another path`)
        : refuse("SocketInUse", `another process is listening on ${path}; stop it or set ${variable}`),
    );

  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const staging = await mkdtemp(join(dir, ".am-"));
  const temp = join(staging, "s");
  if (Buffer.byteLength(temp) > MAX_SOCKET_PATH || Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    await rmdir(staging);
    throw refuse(
      "SocketPathTooLong",
      `the socket path ${path} is too long for a unix socket (keep it under ${MAX_SOCKET_PATH - 12} bytes); set a shorter ${variable}`,
    );
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(temp, () => {
        server.off("error", reject);
        resolve();
      });
    });
    if (options.gid !== undefined) {
      await chown(temp, -1, options.gid);
      await chmod(temp, 0o660);
    } else {
      await chmod(temp, 0o600);
    }
    await clearStale();
    await rename(temp, path);
  } catch (error) {
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(temp).catch(() => {});
    await rmdir(staging).catch(() => {});
    throw error;
  }
  await rmdir(staging);
  const { ino } = await stat(path);
  return {
    path,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      // Remove the file only if it is still the socket this server bound (not a successor's).
      const current = await stat(path).catch(() => undefined);
      if (current?.ino === ino) await unlink(path).catch(() => {});
    },
  };
}
