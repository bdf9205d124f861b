// The real WireGuard backend: wg(8) and ip(8) against a kernel interface or a wireguard-go daemon,
// optionally inside a network namespace. Its parts: process.ts runs the commands, wireguardGo.ts
// supervises the daemon, secretStdin.ts hands the private key over, parse.ts reads `wg show dump`,
// validate.ts checks every input first.
import { createHash } from "node:crypto";
import { closeSync } from "node:fs";
import { createConnection, isIP } from "node:net";
import { join } from "node:path";
import { AttestmeshError, isAttestmeshError } from "@attestmesh/shared/errors.ts";
import { createRepeatLog } from "../logRepeats.ts";
import {
  type DeviceConfig,
  type InterfaceConfig,
  type PeerConfig,
  WG_GATEWAY_MTU,
  WG_MTU,
} from "../model/wireguard.ts";
import type { WireGuardBackend } from "./backend.ts";
import { canonicalCidr } from "./cidr.ts";
import { commandFailed, firstLine, invalid, unavailable } from "./errors.ts";
import { isWgBase64Key } from "./keys.ts";
import { type LinkWatch, watchLinkDeletion } from "./linkWatch.ts";
import { parseUapiPeers, parseWgDump } from "./parse.ts";
import {
  createCommandRunner,
  type RunOptions,
  type RunResult,
  silentLogger,
  type WgLogger,
  within,
} from "./process.ts";
import { secretStdin } from "./secretStdin.ts";
import {
  validateDeviceConfig,
  validateInterfaceConfig,
  validatePeerConfig,
  validateRouteMtus,
} from "./validate.ts";
import { type Daemon, startWireguardGo, stopWireguardGo } from "./wireguardGo.ts";

export interface WgBackendOptions {
  /** Run every command inside this network namespace (`ip netns exec <netns> …`). */
  readonly netns?: string;
  /** "auto" (default): the kernel module when `ip link add … type wireguard` works, else wireguard-go. */
  readonly mode?: "auto" | "kernel" | "userspace";
  readonly logger?: WgLogger;
  /** Executable names or paths, looked up in PATH; defaults "ip", "wg", "wireguard-go", "nft". */
  readonly commands?: {
    readonly ip?: string;
    readonly wg?: string;
    readonly wireguardGo?: string;
    readonly nft?: string;
  };
  /** Limit for one wg/ip command; default 10 s. */
  readonly commandTimeoutMs?: number;
  /** Limit for wireguard-go to create its interface; default 5 s. */
  readonly startTimeoutMs?: number;
  /** Where wireguard-go puts its control sockets (`<name>.sock`); default /var/run/wireguard, as wg(8). */
  readonly uapiDir?: string;
}

/** An answer from the control socket larger than this is refused (a peer takes about 400 bytes). */
const UAPI_MAX_ANSWER_BYTES = 16 * 1024 * 1024;

/**
 * Asks a userspace WireGuard's control socket for its state (`get=1`); resolves with the whole answer,
 * which ends with an empty line. The answer holds the private key: it is parsed, never logged.
 */
export function uapiGet(path: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (error?: Error) => {
      socket.destroy();
      if (error) reject(error);
      else resolve(Buffer.concat(chunks).toString("utf8"));
    };
    socket.setTimeout(timeoutMs, () => done(new Error(`no answer within ${timeoutMs} ms`)));
    socket.on("error", (error) => done(error));
    socket.on("connect", () => socket.write("get=1\n\n"));
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > UAPI_MAX_ANSWER_BYTES) return done(new Error("answer too large"));
      const tail = Buffer.concat(chunks.slice(-2)).subarray(-2).toString("latin1");
      if (tail === "\n\n") done();
    });
    socket.on("end", () => done(new Error("the socket closed before the answer ended")));
  });
}

/**
 * Sends `set=1` and `body` (UAPI lines, each ending in a newline) to a userspace WireGuard's control
 * socket, what wg(8) itself sends to a wireguard-go interface, without a process; resolves once the
 * answer says `errno=0`. Never given a private key (peers only), so nothing here is secret.
 */
export function uapiSet(path: string, body: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let answer = "";
    const done = (error?: Error) => {
      socket.destroy();
      if (error) reject(error);
      else resolve();
    };
    socket.setTimeout(timeoutMs, () => done(new Error(`no answer within ${timeoutMs} ms`)));
    socket.on("error", (error) => done(error));
    socket.on("connect", () => socket.write(`set=1\n${body}\n`));
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString("latin1");
      if (answer.length > 256) return done(new Error("answer too large"));
      if (!answer.endsWith("\n\n")) return;
      const errno = /^errno=(\d+)\n\n$/.exec(answer)?.[1];
      if (errno === "0") done();
      else done(new Error(errno === undefined ? "unparsable answer" : `errno=${errno}`));
    });
    socket.on("end", () => done(new Error("the socket closed before the answer ended")));
  });
}

/** `host:port` with an IP literal (IPv6 in brackets): what the control socket takes as an endpoint. */
function literalEndpoint(endpoint: string): boolean {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):\d+$/.exec(endpoint);
  return match !== null && (match[1] !== undefined ? isIP(match[1]) === 6 : isIP(match[2]!) === 4);
}

/** A peer's UAPI lines: the same settings `wg set … peer` makes (allowed IPs replaced). */
function uapiPeer(peer: PeerConfig): string {
  const lines = [`public_key=${Buffer.from(peer.publicKey, "base64").toString("hex")}`];
  if (peer.endpoint !== undefined) lines.push(`endpoint=${peer.endpoint}`);
  lines.push(`persistent_keepalive_interval=${peer.keepaliveSeconds ?? 0}`, "replace_allowed_ips=true");
  for (const cidr of peer.allowedIps) lines.push(`allowed_ip=${cidr}`);
  return `${lines.join("\n")}\n`;
}

/** The nftables table (family inet) that guards the mesh port of interface `name`. */
export const guardTable = (name: string) => `attestmesh_guard_${name.replace(/[^A-Za-z0-9_]/g, "_")}`;

interface Device {
  readonly name: string;
  readonly kind: "kernel" | "userspace" | "adopted";
  readonly daemon?: Daemon;
  /**
   * What this backend has set on an interface it created, so that `up` after `prepare` repeats none of
   * it. None on one taken over: whatever it carries, `up` sets everything again.
   */
  readonly own?: Own;
}

interface Own {
  /** SHA-256 of the private key `wg set` last took, with its listen port (the key itself is not kept). */
  key?: { readonly digest: string; readonly listenPort: number };
  /** The MTU the link was set up with. */
  linkMtu?: number;
  /** Every address `up` gave the interface (or tried to); one other than the wanted one is looked for. */
  readonly addresses: Set<string>;
}

/** One line of an `ip -batch -` run; `done` when it succeeded, or failed in a way `tolerate` accepts. */
interface IpStep {
  readonly command: string;
  readonly done?: () => void;
  readonly tolerate?: (reason: string) => boolean;
}

/** How ip(8) in batch mode names the line it stopped at (`-` is stdin); the error is on the lines before. */
const BATCH_FAILED = /^Command failed -:(\d+)$/m;

const keyDigest = (config: DeviceConfig) => createHash("sha256").update(config.privateKey).digest("base64");

export function createWgBackend(options: WgBackendOptions = {}): WireGuardBackend {
  const { netns, mode = "auto", commandTimeoutMs = 10_000, startTimeoutMs = 5_000 } = options;
  const uapiDir = options.uapiDir ?? "/var/run/wireguard";
  const logger = options.logger ?? silentLogger;
  const ipCommand = options.commands?.ip ?? "ip";
  const wgCommand = options.commands?.wg ?? "wg";
  const wireguardGoCommand = options.commands?.wireguardGo ?? "wireguard-go";
  const nftCommand = options.commands?.nft ?? "nft";
  if (netns !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(netns)) {
    throw invalid(`network namespace name "${netns}" is not valid`, { netns });
  }
  const prefix = netns === undefined ? [] : [ipCommand, "netns", "exec", netns];
  const exec = createCommandRunner({ prefix, netns, timeoutMs: commandTimeoutMs, logger });

  let device: Device | undefined;
  /** The nftables table guardPort installed, removed at teardown. */
  let guarded: string | undefined;
  /** The address `configure` gave the interface (the source of every route), and the per-peer routes set. */
  let configured: string | undefined;
  const routes = new Map<string, number>();
  let failure: AttestmeshError | undefined;
  /** Watches an interface without a daemon of ours (kernel, taken over) for its deletion from outside. */
  let watch: LinkWatch | undefined;
  /** Who hears of the interface going away by itself (`onLost`). */
  const lostListeners = new Set<(error: AttestmeshError) => void>();
  /**
   * The deaths of our wireguard-go daemons in a row, so that a crash loop's warnings thin out, and the
   * lines of the restart after a death that went unlogged (removed, started) with them.
   */
  const exits = createRepeatLog();
  /** The kernel has no WireGuard: said once at info level, not at every start. */
  let toldNoKernel = false;
  let queue: Promise<unknown> = Promise.resolve();

  /**
   * The mesh port's guard, in a lane of its own: its nft transaction touches only its own table, so a
   * newcomer's peers (the next operation in `queue`) need not wait behind it. Teardown waits for it.
   */
  let guarding: Promise<unknown> = Promise.resolve();

  /** One operation at a time: up/down must not interleave with peer changes. */
  function serialize<T>(task: () => Promise<T>): Promise<T> {
    const result = queue.then(task, task);
    queue = result.catch(() => undefined);
    return result;
  }

  async function must(argv: readonly string[], runOptions: RunOptions = {}): Promise<RunResult> {
    const result = await exec(argv, runOptions);
    if (result.code !== 0) throw await failed(argv.join(" "), result.code, result.stderr);
    return result;
  }

  async function failed(command: string, code: number, stderr: string): Promise<AttestmeshError> {
    // A daemon that just died explains the failure better than wg's "Protocol not supported".
    const daemon = device?.daemon;
    if (daemon?.ready && (await within(daemon.exited, 250)) && failure !== undefined) return failure;
    // So does a kernel (or taken-over) interface deleted from outside: `up` must create it again.
    if (device !== undefined && daemon === undefined && !(await linkExists(device.name))) {
      return interfaceGone(device.name, command);
    }
    return commandFailed(command, `exited with ${code}: ${firstLine(stderr)}`, {
      ...(netns === undefined ? {} : { netns }),
      exitCode: code,
      stderr: stderr.trim(),
    });
  }

  function interfaceGone(name: string, command: string): AttestmeshError {
    return new AttestmeshError(
      `The WireGuard interface ${name} no longer exists (deleted from outside); call up() again to recreate it.`,
      {
        code: "WireGuardInterfaceGone",
        retryable: true,
        details: { name, ...(netns === undefined ? {} : { netns }), command },
      },
    );
  }

  /**
   * Hears at once of `name` (no daemon of ours: its death cannot tell) being deleted from outside, as
   * wireguard-go's exit tells of its own interface: every later operation fails with the loss, and
   * `onLost` listeners hear of it, until `up` creates the interface again.
   */
  function watchDevice(name: string): void {
    watch?.stop();
    const current = watchLinkDeletion({
      command: [...prefix, ipCommand],
      name,
      logger,
      onDeleted: () => {
        if (watch !== current || device?.name !== name || failure !== undefined) return;
        failure = interfaceGone(name, "ip monitor link");
        logger.warn({ name, netns }, "the WireGuard interface was deleted from outside");
        for (const listener of lostListeners) listener(failure);
      },
    });
    watch = current;
  }

  /**
   * `steps` through one `ip -batch -` process instead of one each (two with `ip netns exec`). ip stops
   * at the first line that fails: the lines before it took effect, the ones after it did not. A failure
   * `tolerate`s is passed over and the rest run in a new batch; any other is raised naming its line as
   * the command, as if that line had run alone.
   */
  async function batch(steps: readonly IpStep[]): Promise<void> {
    let rest = steps;
    while (rest.length > 0) {
      const result = await exec([ipCommand, "-batch", "-"], {
        input: rest.map((step) => `${step.command}\n`).join(""),
      });
      if (result.code === 0) {
        for (const step of rest) step.done?.();
        return;
      }
      const marker = BATCH_FAILED.exec(result.stderr);
      const at = marker === null ? -1 : Number(marker[1]) - 1;
      const step = rest[at];
      if (marker === null || step === undefined) {
        throw await failed(`${ipCommand} -batch -`, result.code, result.stderr);
      }
      for (const before of rest.slice(0, at)) before.done?.();
      const reason = result.stderr.slice(0, marker.index);
      if (!step.tolerate?.(reason)) throw await failed(`${ipCommand} ${step.command}`, result.code, reason);
      step.done?.();
      rest = rest.slice(at + 1);
    }
  }

  async function linkExists(name: string): Promise<boolean> {
    return (await exec([ipCommand, "link", "show", "dev", name])).code === 0;
  }

  async function isWireGuard(name: string): Promise<boolean> {
    return (await exec([wgCommand, "show", name, "listen-port"])).code === 0;
  }

  /** `restart`: the interface comes back after its daemon died (its lines may be no news, `exits`). */
  async function ensureDevice(name: string, restart = false): Promise<Device> {
    if (await linkExists(name)) {
      if (!(await isWireGuard(name))) {
        throw new AttestmeshError(
          `Interface ${name} exists but is not a WireGuard interface; remove it (ip link del dev ${name}) ` +
            "or configure another interface name.",
          { code: "WireGuardInterfaceConflict", details: { name, ...(netns ? { netns } : {}) } },
        );
      }
      logger.warn({ name, netns }, "taking over an existing WireGuard interface");
      watchDevice(name);
      return { name, kind: "adopted" };
    }
    if (mode !== "userspace") {
      const added = await exec([ipCommand, "link", "add", "dev", name, "type", "wireguard"]);
      if (added.code === 0) {
        logger.info({ name, netns }, "created kernel WireGuard interface");
        watchDevice(name);
        return { name, kind: "kernel", own: { addresses: new Set() } };
      }
      if (mode === "kernel") {
        throw unavailable(`the kernel cannot create WireGuard interfaces (${firstLine(added.stderr)})`, {
          name,
        });
      }
      logger[toldNoKernel ? "debug" : "info"](
        { name, netns, reason: firstLine(added.stderr) },
        "no kernel WireGuard, using wireguard-go",
      );
      toldNoKernel = true;
    }
    const daemon = await startWireguardGo({
      name,
      command: [...prefix, wireguardGoCommand],
      netns,
      startTimeoutMs,
      logger,
      answers: () =>
        uapiGet(join(uapiDir, `${name}.sock`), commandTimeoutMs).then(
          () => true,
          () => false,
        ),
      exits,
      onUnexpectedExit: (error) => {
        failure = error;
        for (const listener of lostListeners) listener(error);
      },
    });
    logger[restart && exits.quiet() ? "debug" : "info"](
      { name, netns, pid: daemon.child.pid },
      "started wireguard-go",
    );
    return { name, kind: "userspace", daemon, own: { addresses: new Set() } };
  }

  /** Sets the private key and listen port, unless this backend already set the same on this interface. */
  async function setKey(name: string, config: DeviceConfig): Promise<void> {
    const own = device?.own;
    const digest = keyDigest(config);
    if (own?.key?.digest === digest && own.key.listenPort === config.listenPort) return;
    const keyBase64 = Buffer.from(config.privateKey).toString("base64");
    const secrets = [keyBase64, Buffer.from(config.privateKey).toString("hex")];
    const stdin = secretStdin(`${keyBase64}\n`);
    try {
      await must(
        [wgCommand, "set", name, "listen-port", String(config.listenPort), "private-key", "/dev/stdin"],
        { stdin, secrets },
      );
      if (own !== undefined) own.key = { digest, listenPort: config.listenPort };
    } finally {
      closeSync(stdin);
    }
  }

  async function configure(name: string, config: InterfaceConfig): Promise<void> {
    await setKey(name, config);
    const own = device?.own;
    // An interface taken over, or one that had another address, may still carry that address.
    const others =
      own !== undefined && [...own.addresses].every((address) => address === config.address)
        ? []
        : await otherAddresses(name, config.address);
    own?.addresses.add(config.address);
    const steps: IpStep[] = [
      // The others go first: deleting a subnet's primary address deletes its secondaries with it, and
      // the wanted one would be a secondary of an earlier registration's in the same subnet.
      ...others.map((other) => ({
        command: `address del ${other} dev ${name}`,
        done: () => own?.addresses.delete(other),
      })),
      // No prefix route from the kernel: ours below carries the underlay's MTU.
      { command: `address replace ${config.address} dev ${name} noprefixroute` },
    ];
    // The interface takes the gateway path's datagrams; every peer without a route of its own (direct
    // UDP, or not placed yet) gets the subnet route's MTU, which fits the underlay.
    if (own?.linkMtu !== WG_GATEWAY_MTU) steps.push(linkUp(name));
    const subnet = canonicalCidr(config.address);
    if (configured !== config.address) {
      // A new address, or an interface taken over: no route into the mesh but ours (an earlier run's
      // per-peer routes could give a peer now on direct UDP the gateway path's MTU). As before the
      // batch, whether the flush works or not.
      steps.push({ command: `route flush root ${subnet} dev ${name}`, tolerate: () => true });
      routes.clear();
    }
    const [local] = config.address.split("/");
    steps.push({ command: `route replace ${subnet} dev ${name} src ${local!} mtu ${WG_MTU}` });
    await batch(steps);
    configured = config.address;
    // The others of its family are gone now (those of the other family stay, as they always have).
    const family = isIP(local!);
    for (const address of own?.addresses ?? []) {
      if (address !== config.address && isIP(address.split("/")[0]!) === family)
        own?.addresses.delete(address);
    }
  }

  /** `link set … up` with the interface's MTU, remembered on an interface of this backend's own. */
  function linkUp(name: string): IpStep {
    return {
      command: `link set dev ${name} mtu ${WG_GATEWAY_MTU} up`,
      done: () => {
        if (device?.own !== undefined) device.own.linkMtu = WG_GATEWAY_MTU;
      },
    };
  }

  /** Addresses of the family of `address` other than it: a taken-over interface may carry an earlier registration's. */
  async function otherAddresses(name: string, address: string): Promise<string[]> {
    const [local, prefixText] = address.split("/");
    const family = isIP(local!) === 6 ? "inet6" : "inet";
    const { stdout } = await must([ipCommand, "-j", "address", "show", "dev", name]);
    const links = JSON.parse(stdout || "[]") as {
      addr_info?: { family?: string; local?: string; prefixlen?: number; scope?: string }[];
    }[];
    const others: string[] = [];
    for (const info of links.flatMap((link) => link.addr_info ?? [])) {
      if (info.family !== family || info.scope === "link") continue;
      if (info.local === local && String(info.prefixlen) === prefixText) continue;
      logger.info({ name, address: `${info.local}/${info.prefixlen}` }, "removing stale interface address");
      others.push(`${info.local}/${info.prefixlen}`);
    }
    return others;
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

  /**
   * Peer changes through wireguard-go's control socket, without the two processes (`ip netns exec`,
   * `wg`) a wg(8) call takes (~90 ms before wireguard-go hears of it on a busy host, on every join).
   * False when the interface is not wireguard-go's or the socket did not take it: then wg(8) does it,
   * the same settings again, and reports a failure in its own words.
   */
  async function uapiSetOrNot(name: string, body: string, what: string): Promise<boolean> {
    if (device?.kind !== "userspace") return false;
    const started = Date.now();
    try {
      await uapiSet(join(uapiDir, `${name}.sock`), body, commandTimeoutMs);
    } catch (err) {
      logger.debug({ name, err }, "wireguard-go's control socket did not take a peer change; asking wg(8)");
      return false;
    }
    logger.debug({ name, what, ms: Date.now() - started }, "wireguard-go control socket set");
    return true;
  }

  async function setPeers(peers: readonly PeerConfig[]): Promise<void> {
    for (const peer of peers) validatePeerConfig(peer);
    if (peers.length === 0) return;
    return serialize(async () => {
      const name = usable();
      // All of them in one step: each peer's handshake starts as it is added (its persistent keepalive
      // goes out at once), so the last one should not wait for a command per peer before it.
      if (peers.every((peer) => peer.endpoint === undefined || literalEndpoint(peer.endpoint))) {
        if (await uapiSetOrNot(name, peers.map(uapiPeer).join(""), `${peers.length} peer(s) set`)) return;
      }
      const argv = [wgCommand, "set", name];
      for (const peer of peers) {
        argv.push("peer", peer.publicKey, "allowed-ips", peer.allowedIps.join(","));
        if (peer.endpoint !== undefined) argv.push("endpoint", peer.endpoint);
        argv.push("persistent-keepalive", peer.keepaliveSeconds ? String(peer.keepaliveSeconds) : "off");
      }
      await must(argv);
    });
  }

  return {
    async prepare(config) {
      validateDeviceConfig(config);
      return serialize(async () => {
        if (device !== undefined) return;
        failure = undefined;
        device = await ensureDevice(config.name);
        await setKey(config.name, config);
        await batch([linkUp(config.name)]);
      });
    },

    async up(config) {
      validateInterfaceConfig(config);
      return serialize(async () => {
        // A wireguard-go interface removed from outside takes its daemon with it; only a kernel or
        // adopted one needs asking (a process) whether it still exists.
        const stale =
          device !== undefined &&
          (device.name !== config.name ||
            (device.daemon === undefined
              ? !(await linkExists(device.name))
              : device.daemon.exit !== undefined));
        const died = device?.daemon?.exit !== undefined;
        // The port guard names the interface, not its index: it holds for the new one of the same name.
        if (stale) await teardown({ keepGuard: device?.name === config.name });
        failure = undefined;
        device ??= await ensureDevice(config.name, died);
        try {
          await configure(config.name, config);
        } catch (error) {
          // Its daemon went with an interface removed just now, before we knew: start over once.
          if (!isAttestmeshError(error, "WireGuardDaemonExited")) throw error;
          await teardown({ keepGuard: true });
          device = await ensureDevice(config.name);
          await configure(config.name, config);
        }
      });
    },

    setPeer: (peer) => setPeers([peer]),
    setPeers,

    async removePeer(publicKey) {
      if (!isWgBase64Key(publicKey)) {
        throw invalid(`peer public key "${publicKey}" is not a WireGuard key`, { publicKey });
      }
      return serialize(async () => {
        const name = usable();
        const hex = Buffer.from(publicKey, "base64").toString("hex");
        if (await uapiSetOrNot(name, `public_key=${hex}\nremove=true\n`, "peer removed")) return;
        await must([wgCommand, "set", name, "peer", publicKey, "remove"]);
      });
    },

    async setRouteMtus(wanted) {
      validateRouteMtus(wanted);
      return serialize(async () => {
        const name = usable();
        const [local] = (configured ?? "").split("/");
        if (!local) throw invalid("the interface has no address yet; call up() first", { name });
        const canonical = new Map([...wanted].map(([cidr, mtu]) => [canonicalCidr(cidr), mtu]));
        const steps: IpStep[] = [];
        for (const [cidr, mtu] of canonical) {
          if (routes.get(cidr) === mtu) continue;
          steps.push({
            command: `route replace ${cidr} dev ${name} src ${local} mtu ${mtu}`,
            done: () => routes.set(cidr, mtu),
          });
        }
        for (const cidr of routes.keys()) {
          if (canonical.has(cidr)) continue;
          steps.push({
            command: `route del ${cidr} dev ${name}`,
            // Gone already (the kernel removes a route with its source address) is as good as removed.
            tolerate: (reason) => /No such process/i.test(reason),
            done: () => routes.delete(cidr),
          });
        }
        await batch(steps);
      });
    },

    async peers() {
      return serialize(async () => {
        const name = usable();
        // wireguard-go answers on its control socket what `wg show dump` would print, without a process
        // spawned per reconcile pass (a fork of the whole sidecar each time: issue 16's idle cost).
        if (device?.kind === "userspace") {
          const answer = await uapiGet(join(uapiDir, `${name}.sock`), commandTimeoutMs).catch(
            (err: unknown) => {
              logger.debug({ name, err }, "wireguard-go's control socket did not answer; asking wg(8)");
              return undefined;
            },
          );
          if (answer !== undefined) return parseUapiPeers(answer);
        }
        return parseWgDump((await must([wgCommand, "show", name, "dump"])).stdout);
      });
    },

    async guardPort(meshIp, port) {
      if (isIP(meshIp) !== 4 || !Number.isInteger(port) || port < 1 || port > 65535) {
        throw invalid(`cannot guard ${meshIp}:${port}: not an IPv4 address and port`, { meshIp, port });
      }
      const guard = guarding.then(async () => {
        const name = usable();
        const table = guardTable(name);
        // One nft transaction: the table is created if missing, emptied and filled, atomically.
        await must([
          nftCommand,
          [
            `add table inet ${table}`,
            `flush table inet ${table}`,
            `add chain inet ${table} input { type filter hook input priority -10; policy accept; }`,
            `add rule inet ${table} input iifname != "${name}" ip daddr ${meshIp} udp dport ${port} counter drop`,
            // GET /attestation is served over TCP on the same port of the mesh IP (reattest/mesh.ts).
            `add rule inet ${table} input iifname != "${name}" ip daddr ${meshIp} tcp dport ${port} counter drop`,
          ].join("; "),
        ]);
        guarded = table;
        logger.info(
          { name, netns, table, port },
          "mesh port (UDP datagrams, TCP attestation) admits only traffic from the WireGuard interface",
        );
      });
      guarding = guard.catch(() => undefined);
      return guard;
    },

    onLost(listener) {
      lostListeners.add(listener);
      return () => lostListeners.delete(listener);
    },

    async down() {
      return serialize(() => teardown());
    },
  };

  /**
   * Removes the interface (stopping its daemon) and then, unless `keepGuard`, the port guard: the mesh
   * address stays local until the link is gone, and a mesh socket not closed yet must not meanwhile take
   * traffic from outside the interface. A guard the removal leaves behind goes at the next teardown.
   */
  async function teardown({ keepGuard = false } = {}): Promise<void> {
    const previous = device;
    device = undefined;
    failure = undefined;
    // Its own deletion below is no loss.
    watch?.stop();
    watch = undefined;
    // The routes go with the interface.
    configured = undefined;
    routes.clear();
    if (previous !== undefined) {
      // After a death that went unlogged, the removal is no news either.
      const quiet = previous.daemon?.exit !== undefined && !previous.daemon.stopping && exits.quiet();
      if (previous.daemon !== undefined) await stopWireguardGo(previous.daemon, logger);
      if (await linkExists(previous.name)) await must([ipCommand, "link", "del", "dev", previous.name]);
      logger[quiet ? "debug" : "info"](
        { name: previous.name, netns, kind: previous.kind },
        "removed WireGuard interface",
      );
    }
    // A guard being installed finishes first (it checked the interface before this began), then goes.
    await guarding;
    if (guarded !== undefined && !keepGuard) {
      const table = guarded;
      guarded = undefined;
      const removed = await exec([nftCommand, "delete", "table", "inet", table]).catch(() => undefined);
      if (removed !== undefined && removed.code !== 0)
        logger.warn({ table, netns }, "could not remove the mesh port's nftables table");
    }
  }
}
