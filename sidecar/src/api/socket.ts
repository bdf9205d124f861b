// Listens on a unix socket with the right permissions from the first moment: the socket is bound in a
// fresh 0700 directory next to the target, given mode 0600 (or 0660 and the configured group), and
// only then renamed into place, so no other user ever sees it with looser permissions. A stale socket
// left by a crash is replaced; a live one, or anything that is not a socket, is refused.
import { readFileSync } from "node:fs";
import { chmod, chown, lstat, mkdir, mkdtemp, rename, rmdir, stat, unlink } from "node:fs/promises";
import { connect, type Server } from "node:net";
import { dirname, join } from "node:path";
import { fatalError } from "../errors.ts";

/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;

/** A group name (looked up in /etc/group) or a numeric gid, as a gid. */
export function resolveGroup(group: string, groupFile = "/etc/group"): number {
  if (/^\d+$/.test(group)) return Number(group);
  let text = "";
  try {
    text = readFileSync(groupFile, "utf8");
  } catch {
    // Fall through to "unknown group".
  }
  for (const line of text.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw fatalError(
    "UnknownGroup",
    `ATTESTMESH_API_SOCKET_GROUP names group ${JSON.stringify(group)}, which ${groupFile} does not list; use a gid or an existing group`,
    { details: { group } },
  );
}

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

async function clearStale(path: string): Promise<void> {
  let info: Awaited<ReturnType<typeof lstat>>;
  try {
    info = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  if (!info.isSocket()) {
    throw fatalError(
      "ApiSocketPathTaken",
      `${path} exists and is not a socket; set ATTESTMESH_API_SOCKET to another path`,
      {
        details: { path },
      },
    );
  }
  if (await isListening(path)) {
    throw fatalError(
      "ApiSocketInUse",
      `another process is listening on ${path}; stop it or set ATTESTMESH_API_SOCKET`,
      {
        details: { path },
      },
    );
  }
  await unlink(path);
}

export interface UnixListener {
  readonly path: string;
  /** Stops listening and removes the socket file (if it is still ours). */
  close(): Promise<void>;
}

export async function listenUnix(
  server: Server,
  path: string,
  options: { readonly gid?: number | undefined } = {},
): Promise<UnixListener> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const staging = await mkdtemp(join(dir, ".am-"));
  const temp = join(staging, "s");
  if (Buffer.byteLength(temp) > MAX_SOCKET_PATH || Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    await rmdir(staging);
    throw fatalError(
      "ApiSocketPathTooLong",
      `the socket path ${path} is too long for a unix socket (keep it under ${MAX_SOCKET_PATH - 12} bytes); set a shorter ATTESTMESH_API_SOCKET`,
      { details: { path } },
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
    await clearStale(path);
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
