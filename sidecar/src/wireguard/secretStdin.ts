// The private key reaches wg(8) only as its stdin, read through `private-key /dev/stdin`. wg opens that
// path rather than reading fd 0, and Linux refuses to open a socket through /proc/self/fd — which is what
// Node's stdio pipes are (libuv socketpairs). So stdin is an anonymous O_TMPFILE inode on a tmpfs instead:
// in memory, never linked into any directory, gone when the last descriptor closes.
import { closeSync, constants, openSync, statfsSync, writeSync } from "node:fs";
import { unavailable } from "./errors.ts";

const TMPFS_MAGIC = 0x01021994;
const O_TMPFILE = 0o20000000 | constants.O_DIRECTORY;
const SECRET_DIRS = ["/dev/shm", "/run"];

/**
 * A descriptor whose contents are `text`, for a child's stdin: an unnamed O_TMPFILE inode on a tmpfs,
 * written with pwrite so its offset stays 0 for readers of fd 0 and of /dev/stdin alike.
 */
export function secretStdin(text: string): number {
  for (const dir of SECRET_DIRS) {
    try {
      if (statfsSync(dir).type !== TMPFS_MAGIC) continue;
      const fd = openSync(dir, O_TMPFILE | constants.O_RDWR, 0o600);
      try {
        writeSync(fd, text, 0);
      } catch (error) {
        closeSync(fd);
        throw error;
      }
      return fd;
    } catch {}
  }
  throw unavailable(
    `no tmpfs with O_TMPFILE at ${SECRET_DIRS.join(" or ")} to hand the private key to wg on stdin; ` +
      "mount a tmpfs at /dev/shm",
    {},
  );
}
