// Long-running devnet processes (Hardhat node, dstack simulators, sidecars): started detached so a
// `--detach` devnet outlives the CLI, logging to files under .devnet/, and stopped by pid.
import { spawn } from "node:child_process";
import { mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";

export const REPO_ROOT = new URL("../../..", import.meta.url).pathname;

export function spawnDetached(
  cmd: string,
  args: readonly string[],
  options: { logFile: string; env?: NodeJS.ProcessEnv },
): number {
  mkdirSync(dirname(options.logFile), { recursive: true });
  const log = openSync(options.logFile, "a");
  const child = spawn(cmd, args, {
    cwd: REPO_ROOT,
    env: options.env ?? process.env,
    detached: true,
    stdio: ["ignore", log, log],
  });
  if (child.pid === undefined) {
    throw new AttestmeshError(`could not start ${cmd}; see ${options.logFile}`, {
      code: "DevnetSpawnFailed",
    });
  }
  child.unref();
  return child.pid;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Signals the process group (the process and what it started), or the process alone if it leads none. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // gone already
    }
  }
}

/** SIGTERM the process group, then SIGKILL whatever is left after `graceMs`. */
export async function stopProcess(pid: number, graceMs = 5_000): Promise<void> {
  if (!isAlive(pid)) return;
  signalGroup(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && isAlive(pid)) await sleep(100);
  if (isAlive(pid)) signalGroup(pid, "SIGKILL");
}

/**
 * Polls `check` until it returns something other than undefined or false, and returns that; fails naming
 * `what` and the last error `check` threw after `timeoutMs`.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(intervalMs);
  }
  const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
  throw new AttestmeshError(
    `timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${detail}`,
    {
      code: "DevnetTimeout",
      retryable: true,
    },
  );
}
