// Supervises wireguard-go: starts it in the foreground for one interface, waits until it answers on its
// control socket (its interface exists by then), keeps the tail of its output for error messages, reports an unexpected exit, and stops it
// with every process it started (a wrapper's child, a wireguard-go that forked itself away).
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { REPEAT_LOG_NOTE, type RepeatLog, repeatFields } from "../logRepeats.ts";
import { unavailable } from "./errors.ts";
import { type WgLogger, within } from "./process.ts";

const OUTPUT_TAIL_LINES = 20;

/**
 * How long the output pipes may stay open once the process exited: a wrapper that forked (its child
 * still holding them) must not hold up stopping it, nor its start-up failure.
 */
const PIPES_AFTER_EXIT_MS = 200;

/**
 * The environment variable that marks every process a daemon started, whatever became of their parent:
 * a process group or session would not hold them (the daemon stays in the sidecar's session and
 * scheduler group, see docs/performance.md), and a child a wrapper left behind has no parent to ask.
 */
export const DAEMON_TAG_VARIABLE = "ATTESTMESH_WIREGUARD_GO_TAG";

export interface Daemon {
  readonly child: ChildProcess;
  /** This daemon's value of DAEMON_TAG_VARIABLE (random, not a secret). */
  readonly tag: string;
  /** Resolves once the process exited and its output pipes closed, or PIPES_AFTER_EXIT_MS after it exited. */
  readonly exited: Promise<void>;
  readonly output: string[];
  ready: boolean;
  /** When the interface it made appeared (ms since the epoch). */
  readyAt?: number;
  stopping: boolean;
  exit?: { readonly code: number | null; readonly signal: NodeJS.Signals | null };
  spawnError?: Error;
}

export async function startWireguardGo(options: {
  /** The interface to create. */
  readonly name: string;
  /** The command line before the interface name, e.g. `ip netns exec <netns> wireguard-go`. */
  readonly command: readonly string[];
  readonly netns: string | undefined;
  readonly startTimeoutMs: number;
  readonly logger: WgLogger;
  /**
   * Whether the daemon answers on its control socket yet, asked without wg(8): wg(8) deletes a socket
   * that refuses it as a dead daemon's, and wireguard-go's socket refuses for a moment between its
   * bind and its listen; wireguard-go, its socket gone, then exits ("Failed to listen on uapi socket").
   */
  readonly answers: () => Promise<boolean>;
  /** The daemon died after start-up: the interface is gone; the error says what to do. */
  readonly onUnexpectedExit: (error: AttestmeshError) => void;
  /**
   * The deaths of this interface's daemons, one after another (a crash loop): the warning each one
   * logs is thinned to the first, 2nd, 4th… and one every 10 minutes, with the count. Absent: each.
   */
  readonly exits?: RepeatLog;
}): Promise<Daemon> {
  const { name, netns, startTimeoutMs, logger, answers } = options;
  const wireguardGoCommand = options.command.at(-1) ?? "wireguard-go";
  const argv = [...options.command, name];
  // At trace level its verbose lines (every handshake message sent and received) go to the debug log,
  // so a slow handshake can be traced from the sidecar's log alone.
  const verbose = logger.isLevelEnabled?.("trace") === true;
  const tag = randomBytes(12).toString("hex");
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      WG_PROCESS_FOREGROUND: "1",
      LOG_LEVEL: verbose ? "verbose" : "error",
      [DAEMON_TAG_VARIABLE]: tag,
    },
  });
  const daemon: Daemon = {
    child,
    tag,
    output: [],
    ready: false,
    stopping: false,
    exited: new Promise<void>((resolve) => {
      child.once("close", () => resolve());
      child.once("exit", () => {
        setTimeout(() => {
          // Whoever still holds them (a grandchild) gets EPIPE on its next write.
          child.stdout?.destroy();
          child.stderr?.destroy();
          resolve();
        }, PIPES_AFTER_EXIT_MS);
      });
    }),
  };
  for (const stream of [child.stdout, child.stderr]) {
    if (stream === null) continue;
    createInterface({ input: stream }).on("line", (line) => {
      daemon.output.push(line);
      if (daemon.output.length > OUTPUT_TAIL_LINES) daemon.output.shift();
      if (line.startsWith("ERROR")) logger.warn({ name, line }, "wireguard-go");
      else logger.debug({ name, line }, "wireguard-go");
    });
  }
  child.on("error", (error) => {
    daemon.spawnError = error;
  });
  child.on("exit", (code, signal) => {
    daemon.exit = { code, signal };
    if (!daemon.ready || daemon.stopping) return;
    const failure = new AttestmeshError(
      `wireguard-go for ${name} exited unexpectedly (${describeExit(daemon)}); the interface is gone. ` +
        `Call up() again to restart it. Last output: ${daemon.output.slice(-3).join(" | ") || "(none)"}`,
      { code: "WireGuardDaemonExited", details: { name, code, signal, output: [...daemon.output] } },
    );
    // A warning: the caller, which restarts the interface, reports the loss as the error it is (and
    // counts every one, attestmesh_wireguard_restarts_total).
    const now = Date.now();
    const repeat = options.exits?.ended(daemon.readyAt ?? now, now);
    if (repeat === undefined || repeat.log) {
      logger.warn(
        {
          name,
          netns,
          code,
          signal,
          output: daemon.output,
          // `failures`: this exit's place in the run of deaths; `unlogged`: the ones not logged since.
          ...(repeat === undefined ? {} : repeatFields(repeat)),
        },
        repeat === undefined || repeat.failures === 1
          ? "wireguard-go exited unexpectedly"
          : `wireguard-go exited unexpectedly again (such exits in a row are ${REPEAT_LOG_NOTE})`,
      );
    }
    options.onUnexpectedExit(failure);
  });

  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    const answering = await answers().catch(async (error: unknown) => {
      await stopWireguardGo(daemon, logger);
      throw error;
    });
    if (daemon.spawnError !== undefined || daemon.exit !== undefined) {
      await within(daemon.exited, 200);
      // What it started may still run (a wireguard-go that forked itself away holds the interface).
      await stopWireguardGo(daemon, logger);
      throw daemonStartFailed(name, daemon, wireguardGoCommand);
    }
    if (answering) {
      daemon.ready = true;
      daemon.readyAt = Date.now();
      return daemon;
    }
    if (Date.now() > deadline) break;
    await sleep(50);
  }
  await stopWireguardGo(daemon, logger);
  throw new AttestmeshError(
    `wireguard-go did not create ${name} within ${startTimeoutMs} ms; check its output: ` +
      (daemon.output.join(" | ") || "(none)"),
    { code: "WireGuardCommandFailed", retryable: true, details: { name, output: [...daemon.output] } },
  );
}

function daemonStartFailed(name: string, daemon: Daemon, wireguardGoCommand: string): AttestmeshError {
  const output = daemon.output.join(" | ");
  if ((daemon.spawnError as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
    return unavailable(`${wireguardGoCommand} is not installed or not in PATH`, { name });
  }
  const missing = /exec of "([^"]+)" failed: No such file or directory/.exec(output);
  if (missing !== null) return unavailable(`${missing[1]} is not installed or not in PATH`, { name });
  if (/Failed to create TUN device/i.test(output)) {
    return unavailable(
      `wireguard-go could not create a TUN device (${output}); it needs /dev/net/tun and CAP_NET_ADMIN`,
      { name },
    );
  }
  return new AttestmeshError(
    `wireguard-go for ${name} exited during start-up (${describeExit(daemon)}): ${output || "(no output)"}`,
    { code: "WireGuardDaemonExited", details: { name, output: daemon.output } },
  );
}

/**
 * SIGTERM to the daemon and every process it started, SIGKILL to what is left of them after 5 s;
 * resolves once none is left (not waiting on pipes they held).
 */
export async function stopWireguardGo(daemon: Daemon, logger: WgLogger): Promise<void> {
  daemon.stopping = true;
  const running = () => daemon.exit === undefined && daemon.spawnError === undefined;
  const others = (pids: readonly number[]) => pids.filter((pid) => pid !== daemon.child.pid);
  let left = others(await processesTagged(daemon.tag));
  if (running()) daemon.child.kill("SIGTERM");
  signal(left, "SIGTERM");
  const deadline = Date.now() + 5_000;
  while ((running() || left.length > 0) && Date.now() < deadline) {
    await (running() ? Promise.race([daemon.exited, sleep(50)]) : sleep(50));
    left = others(await processesTagged(daemon.tag));
  }
  if (running()) {
    logger.warn({ pid: daemon.child.pid }, "wireguard-go ignored SIGTERM, killing it");
    daemon.child.kill("SIGKILL");
  }
  if (left.length > 0) {
    logger.warn({ pids: left }, "processes wireguard-go started ignored SIGTERM, killing them");
    signal(left, "SIGKILL");
  }
  await daemon.exited;
  // SIGKILL is not refused; a process in the kernel's uninterruptible sleep may take a moment.
  for (let i = 0; i < 40 && (await processesTagged(daemon.tag)).length > 0; i++) await sleep(50);
}

/**
 * The live processes whose environment carries `tag` (Linux: /proc; elsewhere none). A zombie has none
 * to read: it is no longer running.
 */
async function processesTagged(tag: string): Promise<number[]> {
  const marker = `${DAEMON_TAG_VARIABLE}=${tag}`;
  const entries = await readdir("/proc").catch(() => [] as string[]);
  const found = await Promise.all(
    entries
      .filter((entry) => /^\d+$/.test(entry))
      .map(async (entry) => {
        // Another user's process, or one gone since the listing: not ours.
        const environ = await readFile(`/proc/${entry}/environ`, "latin1").catch(() => "");
        return environ.split("\0").includes(marker) ? Number(entry) : undefined;
      }),
  );
  return found.filter((pid) => pid !== undefined);
}

function signal(pids: readonly number[], name: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, name);
    } catch {
      // gone already
    }
  }
}

function describeExit(daemon: Daemon): string {
  if (daemon.spawnError !== undefined) return daemon.spawnError.message;
  if (daemon.exit?.signal) return `signal ${daemon.exit.signal}`;
  return `exit code ${daemon.exit?.code}`;
}
