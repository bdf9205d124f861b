// Long-running devnet processes (Hardhat node, dstack simulators, sidecars): started detached so a
// `--detach` devnet outlives the CLI, logging to files under .devnet/, and stopped by pid.
import { spawn } from "node:child_process";
import { mkdirSync, openSync, readFileSync } from "node:fs";
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

/**
 * Whether `pid` still runs. A zombie does not: a detached process outlives the CLI that started it, so
 * once it exits it waits for init to reap it, which here can take seconds; signal 0 still reaches it.
 */
export function isAlive(pid: number): boolean {
  return existsPid(pid) && !isZombie(pid);
}

/** Linux: the state letter in /proc/<pid>/stat, after the parenthesised command name; elsewhere false. */
function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state === "Z" || state === "X";
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

/**
 * SIGTERM the process group, wait until its leader has exited (at most `graceMs`), then SIGKILL whatever
 * is left of the group: the leader if it is still running, or anything it started that outlived it.
 */
export async function stopProcess(pid: number, graceMs = 5_000): Promise<void> {
  if (!isAlive(pid)) return;
  signalGroup(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && isAlive(pid)) await sleep(25);
  if (isAlive(pid)) {
    signalGroup(pid, "SIGKILL");
    return;
  }
  // An unreaped leader keeps its group id taken, so the group cannot be someone else's yet.
  if (existsPid(pid)) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // no group, or nothing left in it
    }
  }
}

function existsPid(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
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
