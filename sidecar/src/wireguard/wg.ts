// The real WireGuard backend: wg(8) and ip(8) run as argv arrays (never a shell), optionally inside a
// network namespace, against a kernel interface or a wireguard-go daemon this backend supervises.
//
// The private key reaches wg(8) only as its stdin, read through `private-key /dev/stdin`. wg opens that
// path rather than reading fd 0, and Linux refuses to open a socket through /proc/self/fd — which is what
// Node's stdio pipes are (libuv socketpairs). So stdin is an anonymous O_TMPFILE inode on a tmpfs instead:
// in memory, never linked into any directory, gone when the last descriptor closes.
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, constants, openSync, statfsSync, writeSync } from "node:fs";
import { isIP } from "node:net";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { InterfaceConfig, PeerConfig, PeerStatus } from "../model/wireguard.ts";
import type { WireGuardBackend } from "./backend.ts";
import { isWgBase64Key } from "./keys.ts";

/** The pino methods the backend uses; a pino logger fits. */
export interface WgLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface WgBackendOptions {
  /** Run every command inside this network namespace (`ip netns exec <netns> …`). */
  readonly netns?: string;
  /** "auto" (default): the kernel module when `ip link add … type wireguard` works, else wireguard-go. */
  readonly mode?: "auto" | "kernel" | "userspace";
  readonly logger?: WgLogger;
  /** Executable names or paths, looked up in PATH; defaults "ip", "wg", "wireguard-go". */
  readonly commands?: { readonly ip?: string; readonly wg?: string; readonly wireguardGo?: string };
  /** Limit for one wg/ip command; default 10 s. */
  readonly commandTimeoutMs?: number;
  /** Limit for wireguard-go to create its interface; default 5 s. */
  readonly startTimeoutMs?: number;
}

export const WG_MTU = 1420;

const INSTALL_HINT =
  "install wireguard-tools (wg) and wireguard-go (e.g. `apt-get install wireguard-tools wireguard-go`), " +
  "or load the kernel module (`modprobe wireguard`)";
const TMPFS_MAGIC = 0x01021994;
const O_TMPFILE = 0o20000000 | constants.O_DIRECTORY;
const SECRET_DIRS = ["/dev/shm", "/run"];
const OUTPUT_TAIL_LINES = 20;

interface Daemon {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  readonly output: string[];
  ready: boolean;
  stopping: boolean;
  exit?: { readonly code: number | null; readonly signal: NodeJS.Signals | null };
  spawnError?: Error;
}

interface Device {
  readonly name: string;
  readonly kind: "kernel" | "userspace" | "adopted";
  readonly daemon?: Daemon;
}

interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

interface RunOptions {
  /** A descriptor to use as the command's stdin. */
  readonly stdin?: number;
  /** Strings replaced in anything kept from the command's output. */
  readonly secrets?: readonly string[];
}

export function createWgBackend(options: WgBackendOptions = {}): WireGuardBackend {
  const { netns, mode = "auto", commandTimeoutMs = 10_000, startTimeoutMs = 5_000 } = options;
  const logger = options.logger ?? silentLogger;
  const ipCommand = options.commands?.ip ?? "ip";
  const wgCommand = options.commands?.wg ?? "wg";
  const wireguardGoCommand = options.commands?.wireguardGo ?? "wireguard-go";
  if (netns !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(netns)) {
    throw invalid(`network namespace name "${netns}" is not valid`, { netns });
  }
  const prefix = netns === undefined ? [] : [ipCommand, "netns", "exec", netns];

  let device: Device | undefined;
  let failure: AttestmeshError | undefined;
  let queue: Promise<unknown> = Promise.resolve();

  /** One operation at a time: up/down must not interleave with peer changes. */
  function serialize<T>(task: () => Promise<T>): Promise<T> {
    const result = queue.then(task, task);
    queue = result.catch(() => undefined);
    return result;
  }

  function exec(argv: readonly string[], runOptions: RunOptions = {}): Promise<RunResult> {
    const full = [...prefix, ...argv];
    const command = argv.join(" ");
    const started = Date.now();
    return new Promise<RunResult>((resolve, reject) => {
      const child = spawn(full[0]!, full.slice(1), {
        stdio: [runOptions.stdin ?? "ignore", "pipe", "pipe"],
        timeout: commandTimeoutMs,
        killSignal: "SIGKILL",
      });
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      child.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
      child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
      child.on("error", (error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") {
          reject(unavailable(`${full[0]} is not installed or not in PATH`, { command }));
        } else {
          reject(commandFailed(command, `could not start: ${error.message}`, {}, error));
        }
      });
      child.on("close", (code, signal) => {
        const errText = redact(Buffer.concat(stderr).toString("utf8"), runOptions.secrets);
        logger.debug({ command, code, signal, ms: Date.now() - started }, "wireguard command finished");
        if (signal !== null) {
          reject(commandFailed(command, `killed by ${signal} (limit ${commandTimeoutMs} ms)`, { signal }));
          return;
        }
        const missing = /exec of "([^"]+)" failed: No such file or directory/.exec(errText);
        if (netns !== undefined && missing !== null) {
          reject(unavailable(`${missing[1]} is not installed or not in PATH`, { command }));
          return;
        }
        resolve({ code: code ?? -1, stdout: Buffer.concat(stdout).toString("utf8"), stderr: errText });
      });
    });
  }

  async function must(argv: readonly string[], runOptions: RunOptions = {}): Promise<RunResult> {
    const result = await exec(argv, runOptions);
    if (result.code !== 0) {
      // A daemon that just died explains the failure better than wg's "Protocol not supported".
      const daemon = device?.daemon;
      if (daemon?.ready && (await within(daemon.exited, 250)) && failure !== undefined) throw failure;
      const command = argv.join(" ");
      throw commandFailed(command, `exited with ${result.code}: ${firstLine(result.stderr)}`, {
        ...(netns === undefined ? {} : { netns }),
        exitCode: result.code,
        stderr: result.stderr.trim(),
      });
    }
    return result;
  }

  async function linkExists(name: string): Promise<boolean> {
    return (await exec([ipCommand, "link", "show", "dev", name])).code === 0;
  }

  async function isWireGuard(name: string): Promise<boolean> {
    return (await exec([wgCommand, "show", name, "listen-port"])).code === 0;
  }

  async function ensureDevice(name: string): Promise<Device> {
    if (await linkExists(name)) {
      if (!(await isWireGuard(name))) {
        throw new AttestmeshError(
          `Interface ${name} exists but is not a WireGuard interface; remove it (ip link del dev ${name}) ` +
            "or configure another interface name.",
          { code: "WireGuardInterfaceConflict", details: { name, ...(netns ? { netns } : {}) } },
        );
      }
      logger.warn({ name, netns }, "taking over an existing WireGuard interface");
      return { name, kind: "adopted" };
    }
    if (mode !== "userspace") {
      const added = await exec([ipCommand, "link", "add", "dev", name, "type", "wireguard"]);
      if (added.code === 0) {
        logger.info({ name, netns }, "created kernel WireGuard interface");
        return { name, kind: "kernel" };
      }
      if (mode === "kernel") {
        throw unavailable(`the kernel cannot create WireGuard interfaces (${firstLine(added.stderr)})`, {
          name,
        });
      }
      logger.info(
        { name, netns, reason: firstLine(added.stderr) },
        "no kernel WireGuard, using wireguard-go",
      );
    }
    const daemon = await startDaemon(name);
    logger.info({ name, netns, pid: daemon.child.pid }, "started wireguard-go");
    return { name, kind: "userspace", daemon };
  }

  async function startDaemon(name: string): Promise<Daemon> {
    const argv = [...prefix, wireguardGoCommand, name];
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, WG_PROCESS_FOREGROUND: "1", LOG_LEVEL: "error" },
    });
    const daemon: Daemon = {
      child,
      output: [],
      ready: false,
      stopping: false,
      exited: new Promise<void>((resolve) => child.once("close", () => resolve())),
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
      failure = new AttestmeshError(
        `wireguard-go for ${name} exited unexpectedly (${describeExit(daemon)}); the interface is gone. ` +
          `Call up() again to restart it. Last output: ${daemon.output.slice(-3).join(" | ") || "(none)"}`,
        { code: "WireGuardDaemonExited", details: { name, code, signal, output: [...daemon.output] } },
      );
      logger.error({ name, netns, code, signal, output: daemon.output }, "wireguard-go exited unexpectedly");
    });

    const deadline = Date.now() + startTimeoutMs;
    for (;;) {
      const created = await isWireGuard(name).catch(async (error: unknown) => {
        await stopDaemon(daemon);
        throw error;
      });
      if (daemon.spawnError !== undefined || daemon.exit !== undefined) {
        await within(daemon.exited, 200);
        throw daemonStartFailed(name, daemon);
      }
      if (created) {
        daemon.ready = true;
        return daemon;
      }
      if (Date.now() > deadline) break;
      await sleep(50);
    }
    await stopDaemon(daemon);
    throw new AttestmeshError(
      `wireguard-go did not create ${name} within ${startTimeoutMs} ms; check its output: ` +
        (daemon.output.join(" | ") || "(none)"),
      { code: "WireGuardCommandFailed", retryable: true, details: { name, output: [...daemon.output] } },
    );
  }

  function daemonStartFailed(name: string, daemon: Daemon): AttestmeshError {
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

  async function stopDaemon(daemon: Daemon): Promise<void> {
    daemon.stopping = true;
    if (daemon.exit !== undefined || daemon.spawnError !== undefined) return;
    daemon.child.kill("SIGTERM");
    const stopped = await within(daemon.exited, 5_000);
    if (!stopped) {
      logger.warn({ pid: daemon.child.pid }, "wireguard-go ignored SIGTERM, killing it");
      daemon.child.kill("SIGKILL");
      await daemon.exited;
    }
  }

  async function configure(name: string, config: InterfaceConfig): Promise<void> {
    const keyBase64 = Buffer.from(config.privateKey).toString("base64");
    const secrets = [keyBase64, Buffer.from(config.privateKey).toString("hex")];
    const stdin = secretStdin(`${keyBase64}\n`);
    try {
      await must(
        [wgCommand, "set", name, "listen-port", String(config.listenPort), "private-key", "/dev/stdin"],
        { stdin, secrets },
      );
    } finally {
      closeSync(stdin);
    }
    await must([ipCommand, "address", "replace", config.address, "dev", name]);
    await removeOtherAddresses(name, config.address);
    await must([ipCommand, "link", "set", "dev", name, "mtu", String(WG_MTU), "up"]);
  }

  /** A taken-over interface may carry the address of an earlier registration. */
  async function removeOtherAddresses(name: string, address: string): Promise<void> {
    const [local, prefixText] = address.split("/");
    const family = isIP(local!) === 6 ? "inet6" : "inet";
    const { stdout } = await must([ipCommand, "-j", "address", "show", "dev", name]);
    const links = JSON.parse(stdout || "[]") as {
      addr_info?: { family?: string; local?: string; prefixlen?: number; scope?: string }[];
    }[];
    for (const info of links.flatMap((link) => link.addr_info ?? [])) {
      if (info.family !== family || info.scope === "link") continue;
      if (info.local === local && String(info.prefixlen) === prefixText) continue;
      logger.info({ name, address: `${info.local}/${info.prefixlen}` }, "removing stale interface address");
      await must([ipCommand, "address", "del", `${info.local}/${info.prefixlen}`, "dev", name]);
    }
  }

  function usable(): string {
    if (failure !== undefined) throw failure;
    if (device === undefined) {
      throw new AttestmeshError("The WireGuard interface is not up; call up() first.", {
        code: "WireGuardNotUp",
      });
    }
    return device.name;
  }

  return {
    async up(config) {
      validateInterfaceConfig(config);
      return serialize(async () => {
        const stale =
          device !== undefined &&
          (device.name !== config.name ||
            device.daemon?.exit !== undefined ||
            !(await linkExists(device.name)));
        if (stale) await teardown();
        failure = undefined;
        device ??= await ensureDevice(config.name);
        await configure(config.name, config);
      });
    },

    async setPeer(peer) {
      validatePeerConfig(peer);
      return serialize(async () => {
        const name = usable();
        const argv = [
          wgCommand,
          "set",
          name,
          "peer",
          peer.publicKey,
          "allowed-ips",
          peer.allowedIps.join(","),
        ];
        if (peer.endpoint !== undefined) argv.push("endpoint", peer.endpoint);
        argv.push("persistent-keepalive", peer.keepaliveSeconds ? String(peer.keepaliveSeconds) : "off");
        await must(argv);
      });
    },

    async removePeer(publicKey) {
      if (!isWgBase64Key(publicKey)) {
        throw invalid(`peer public key "${publicKey}" is not a WireGuard key`, { publicKey });
      }
      return serialize(async () => {
        await must([wgCommand, "set", usable(), "peer", publicKey, "remove"]);
      });
    },

    async peers() {
      return serialize(async () => parseWgDump((await must([wgCommand, "show", usable(), "dump"])).stdout));
    },

    async down() {
      return serialize(teardown);
    },
  };

  async function teardown(): Promise<void> {
    const previous = device;
    device = undefined;
    failure = undefined;
    if (previous === undefined) return;
    if (previous.daemon !== undefined) await stopDaemon(previous.daemon);
    if (await linkExists(previous.name)) await must([ipCommand, "link", "del", "dev", previous.name]);
    logger.info({ name: previous.name, netns, kind: previous.kind }, "removed WireGuard interface");
  }
}

/**
 * Peers from `wg show <name> dump`: tab-separated, the first line is the interface (and holds its
 * private key, so it is dropped unread), then one line per peer: public key, preshared key, endpoint,
 * allowed IPs, latest handshake, rx bytes, tx bytes, persistent keepalive.
 */
export function parseWgDump(dump: string): PeerStatus[] {
  const lines = dump.split("\n").filter((line) => line.length > 0);
  return lines.slice(1).map((line, index) => {
    const fields = line.split("\t");
    const [publicKey, , endpoint, allowedIps, handshake, rx, tx, keepalive] = fields;
    const numeric = /^\d+$/.test(`${handshake}${rx}${tx}`) && /^(off|\d+)$/.test(`${keepalive}`);
    if (fields.length !== 8 || !isWgBase64Key(publicKey!) || !numeric) {
      // The line itself is not quoted: its second field is a preshared key.
      throw new AttestmeshError(
        `Unexpected \`wg show dump\` peer line ${index + 1} (${fields.length} fields); is wg(8) too old?`,
        { code: "WireGuardDumpUnparsable", details: { line: index + 1, fields: fields.length } },
      );
    }
    return {
      publicKey: publicKey!,
      allowedIps: allowedIps === "(none)" ? [] : allowedIps!.split(","),
      ...(endpoint === "(none)" ? {} : { endpoint: endpoint! }),
      ...(keepalive === "off" ? {} : { keepaliveSeconds: Number(keepalive) }),
      latestHandshake: Number(handshake),
      rxBytes: BigInt(rx!),
      txBytes: BigInt(tx!),
    };
  });
}

/** Throws `WireGuardInvalidConfig` unless `config` is safe to hand to ip(8) and wg(8). */
export function validateInterfaceConfig(config: InterfaceConfig): void {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_=+.-]{0,14}$/.test(config.name)) {
    throw invalid(`interface name "${config.name}" is not valid (1-15 of A-Z a-z 0-9 _ = + . -)`, {
      name: config.name,
    });
  }
  if (config.privateKey.length !== 32) {
    throw invalid(`the private key has ${config.privateKey.length} bytes, not 32`, {});
  }
  if (!Number.isInteger(config.listenPort) || config.listenPort < 0 || config.listenPort > 65_535) {
    throw invalid(`listen port ${config.listenPort} is not a port number`, { listenPort: config.listenPort });
  }
  if (!isCidr(config.address)) {
    throw invalid(`interface address "${config.address}" needs a prefix, e.g. 10.77.0.1/16`, {
      address: config.address,
    });
  }
}

/** Throws `WireGuardInvalidConfig` unless `peer` is safe to hand to wg(8). */
export function validatePeerConfig(peer: PeerConfig): void {
  if (!isWgBase64Key(peer.publicKey)) {
    throw invalid(`peer public key "${peer.publicKey}" is not a WireGuard key`, {
      publicKey: peer.publicKey,
    });
  }
  const badIp = peer.allowedIps.find((cidr) => !isCidr(cidr));
  if (badIp !== undefined) {
    throw invalid(`allowed IP "${badIp}" of peer ${peer.publicKey} is not a CIDR`, { allowedIp: badIp });
  }
  if (peer.endpoint !== undefined && !isEndpoint(peer.endpoint)) {
    throw invalid(`endpoint "${peer.endpoint}" of peer ${peer.publicKey} is not host:port`, {
      endpoint: peer.endpoint,
    });
  }
  const keepalive = peer.keepaliveSeconds;
  if (keepalive !== undefined && (!Number.isInteger(keepalive) || keepalive < 0 || keepalive > 65_535)) {
    throw invalid(`persistent keepalive ${keepalive} of peer ${peer.publicKey} is not 0-65535 seconds`, {
      keepaliveSeconds: keepalive,
    });
  }
}

function isCidr(value: string): boolean {
  const match = /^([^/]+)\/(\d{1,3})$/.exec(value);
  if (match === null) return false;
  const version = isIP(match[1]!);
  return version !== 0 && Number(match[2]) <= (version === 4 ? 32 : 128);
}

function isEndpoint(value: string): boolean {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9][A-Za-z0-9.-]*)):(\d{1,5})$/.exec(value);
  if (match === null) return false;
  if (match[1] !== undefined && isIP(match[1]) !== 6) return false;
  const port = Number(match[3]);
  return port >= 1 && port <= 65_535;
}

/**
 * A descriptor whose contents are `text`, for a child's stdin: an unnamed O_TMPFILE inode on a tmpfs,
 * written with pwrite so its offset stays 0 for readers of fd 0 and of /dev/stdin alike.
 */
function secretStdin(text: string): number {
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

/** Waits for `promise` at most `ms`; true if it settled in time. Leaves no timer behind. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const timer = new AbortController();
  try {
    return await Promise.race([
      promise.then(() => true),
      sleep(ms, false, { signal: timer.signal }).catch(() => false),
    ]);
  } finally {
    timer.abort();
  }
}

function redact(text: string, secrets: readonly string[] | undefined): string {
  let result = text;
  for (const secret of secrets ?? []) result = result.split(secret).join("[redacted]");
  return result;
}

function firstLine(text: string): string {
  return text.trim().split("\n")[0] || "(no output)";
}

function describeExit(daemon: Daemon): string {
  if (daemon.spawnError !== undefined) return daemon.spawnError.message;
  if (daemon.exit?.signal) return `signal ${daemon.exit.signal}`;
  return `exit code ${daemon.exit?.code}`;
}

function invalid(what: string, details: Record<string, unknown>): AttestmeshError {
  return new AttestmeshError(`Invalid WireGuard configuration: ${what}.`, {
    code: "WireGuardInvalidConfig",
    details,
  });
}

function unavailable(what: string, details: Record<string, unknown>): AttestmeshError {
  return new AttestmeshError(`WireGuard is not available: ${what}; ${INSTALL_HINT}.`, {
    code: "WireGuardUnavailable",
    details,
  });
}

function commandFailed(
  command: string,
  what: string,
  details: Record<string, unknown>,
  cause?: unknown,
): AttestmeshError {
  return new AttestmeshError(
    `\`${command}\` ${what}; retry, and if it keeps failing check ip(8)/wg(8) by hand.`,
    {
      code: "WireGuardCommandFailed",
      retryable: true,
      details: { command, ...details },
      cause,
    },
  );
}

const noop = (): void => {};
const silentLogger: WgLogger = { debug: noop, info: noop, warn: noop, error: noop };
