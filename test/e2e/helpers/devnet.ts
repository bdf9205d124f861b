// What every end-to-end file needs to drive the devnet: the skip reason where it cannot run, the CLI as
// a subprocess, commands inside a node's namespace, and a bounded wait that says what it waited for.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";

export const execFileAsync = promisify(execFile);
export const ROOT = new URL("../../..", import.meta.url).pathname;
export const CLI = join(ROOT, "scripts/src/cli/main.ts");

/** Why the devnet cannot run here, or false when it can (CI runs as root with TUN devices). */
export const devnetSkip: string | false =
  process.getuid?.() !== 0
    ? "needs root (network namespaces, TUN devices); CI runs it as root"
    : !existsSync("/dev/net/tun")
      ? "needs /dev/net/tun"
      : false;

/** Runs `attestmesh <args>` and returns its stdout; fails with its stderr on a non-zero exit. */
export async function cli(
  args: readonly string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  const { stdout } = await execFileAsync(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    timeout: options.timeoutMs ?? 300_000,
    maxBuffer: 16 * 1024 * 1024,
    ...(options.env === undefined ? {} : { env: options.env }),
  });
  return stdout;
}

export function inNetns(netns: string, cmd: string, args: readonly string[], timeoutMs = 30_000) {
  return execFileAsync("ip", ["netns", "exec", netns, cmd, ...args], { timeout: timeoutMs });
}

/** `wg show <iface> latest-handshakes` inside `netns`, as the devnet reads it. */
export { latestHandshakes } from "@attestmesh/devnet/orchestration/netns.ts";

/**
 * Polls `check` until it returns something other than undefined or false, and returns that; throws
 * after `timeoutMs` naming `what` and the last error `check` threw.
 */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ""}`);
}
