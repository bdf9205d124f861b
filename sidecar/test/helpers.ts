// Test helpers for the sidecar: a KeySource over the simulator library (no socket), a simulated guest
// agent on a socket, a UDP socket standing in for WireGuard, a logger whose lines a test can read,
// polling, a free TCP port, signing keys and the wire-refusal assertion of the codec tests, and the
// environment and registration options every test sidecar shares, the cluster id of tests without a
// chain, a signed gossip heartbeat, and two reconciling nodes on real wireguard-go.

import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import {
  accessSync,
  constants,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { startDstackSimulator } from "@attestmesh/devnet/dstack-sim/server.ts";
import {
  createKmsRoot,
  createSimulatedCvm,
  type SimulatedCvm,
} from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { ipToNumber, parseMeshCidr } from "@attestmesh/shared/mesh/cidr.ts";
import { sha256 } from "@noble/hashes/sha2";
import { pino } from "pino";
import { bytesToHex, getAddress, type Hex, type Transport } from "viem";
import { createClusterReader } from "../src/chain/cluster.ts";
import type { MembershipFollower } from "../src/chain/follower.ts";
import { type ChainReads, createChainReads } from "../src/chain/reads.ts";
import { encodeLiveness, ProbeKind } from "../src/heartbeat/swimCodec.ts";
import type { KeySource } from "../src/keys.ts";
import type { Logger } from "../src/log.ts";
import { REDACTED_PATHS } from "../src/log.ts";
import {
  loadSodium,
  type SigningKey,
  signingKeyFromSeed,
  randomBytes as sodiumRandomBytes,
} from "../src/meshnet/crypto.ts";
import { type ClusterId, WireError } from "../src/meshnet/wire.ts";
import { createMetrics } from "../src/metrics.ts";
import type { Member } from "../src/model/member.ts";
import { createReconcileLoop } from "../src/reconcile/loop.ts";
import { createReconciler } from "../src/reconcile/reconciler.ts";
import type { RestartPolicy } from "../src/reconcile/restarts.ts";
import type { RegisterOptions } from "../src/register.ts";
import { secret } from "../src/secret.ts";
import { createStatusStore, type StatusPatch } from "../src/status.ts";
import { wireguardKeyPair } from "../src/wireguard/keys.ts";
import { createWgBackend } from "../src/wireguard/wg.ts";

/**
 * The facts `phaseOf` needs for `healthy`, beside a member id and peers that all handshook: for tests of
 * what reads the phase (/healthz, the API's key endpoint).
 */
export const HEALTHY_FACTS = {
  booted: true,
  wireguard: "configured",
  meshRunning: true,
  cskAcquired: true,
  converged: true,
} as const satisfies StatusPatch;

/**
 * The cluster the tests' messages belong to when no chain is deployed: Hardhat's chain id and the address
 * of the first contract its first account deploys.
 */
export const TEST_CLUSTER = {
  chainId: 31337,
  cluster: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
} as const satisfies ClusterId;

/** The simulator library behind the sidecar's KeySource interface, as the SDK client would present it. */
export function simulatorKeySource(cvm: SimulatedCvm): KeySource {
  return {
    appId: async () => getAddress(bytesToHex(cvm.info().appId)),
    info: async () => {
      const info = cvm.info();
      return {
        appId: getAddress(bytesToHex(info.appId)),
        composeHash: bytesToHex(info.composeHash),
        deviceId: bytesToHex(info.deviceId),
      };
    },
    getKey: async (path, purpose, algorithm) => {
      const result = cvm.getKey(path, purpose, algorithm);
      return { key: result.key, signatureChain: result.signatureChain };
    },
  };
}

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

export interface CapturedLogger {
  readonly logger: Logger;
  /** Every line so far, parsed. */
  lines(): LogLine[];
  /** Every line so far, as written. */
  text(): string;
}

/** A pino logger (with the sidecar's redaction) that keeps its JSON lines in memory. */
export function captureLogger(level: pino.LevelWithSilent = "debug"): CapturedLogger {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const logger = pino({ level, redact: { paths: [...REDACTED_PATHS], censor: "[redacted]" } }, stream);
  const text = () => chunks.join("");
  return {
    logger,
    text,
    lines: () =>
      text()
        .split("\n")
        .filter((line) => line.trim() !== "")
        .map((line) => JSON.parse(line) as LogLine),
  };
}

/** Two fresh signing keys (a signer and another), once libsodium is ready. */
export async function twoSigningKeys(): Promise<[SigningKey, SigningKey]> {
  await loadSodium();
  return [signingKeyFromSeed(sodiumRandomBytes(32)), signingKeyFromSeed(sodiumRandomBytes(32))];
}

/** Asserts that `decode` refuses `bytes` with a WireError naming `field`. */
export function assertWireRefusal(
  decode: (bytes: Uint8Array) => unknown,
  bytes: Uint8Array,
  field: string,
): void {
  assert.throws(
    () => decode(bytes),
    (error: unknown) => error instanceof WireError && error.field === field,
    `expected a refusal at ${field}`,
  );
}

/**
 * The environment every test sidecar shares: in-memory WireGuard, health on an ephemeral loopback
 * port, quick registration retries and debug logs.
 */
export const TEST_SIDECAR_ENV = {
  ATTESTMESH_WG_MODE: "memory",
  ATTESTMESH_HEALTH_HOST: "127.0.0.1",
  ATTESTMESH_HEALTH_PORT: "0",
  ATTESTMESH_REGISTER_MAX_BACKOFF_MS: "400",
  ATTESTMESH_LOG_LEVEL: "debug",
} as const;

/**
 * Options for one registration in a test: the chain's own cluster reader, no confirmations, a captured
 * log, a signal never aborted and a quick backoff.
 */
export function testRegisterOptions(
  options: Pick<RegisterOptions, "chain" | "writer" | "keys" | "claims">,
): RegisterOptions {
  return {
    ...options,
    reader: createClusterReader(options.chain.reads, options.chain.cluster),
    confirmations: 0,
    logger: captureLogger().logger,
    signal: new AbortController().signal,
    backoff: { initialMs: 10, maxMs: 50 },
  };
}

/**
 * A dstack guest agent (the simulator) for a fresh simulated CVM running `appCompose`, on a socket in a
 * new temporary directory; `close` stops it and removes the directory.
 */
export async function simulatedGuestAgent(
  appCompose: string,
  dirPrefix: string,
): Promise<{ socketPath: string; close(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), dirPrefix));
  const socketPath = join(dir, "dstack.sock");
  const cvm = createSimulatedCvm({
    kmsRoot: createKmsRoot(),
    appId: randomBytes(20),
    appCompose,
    composeHash: sha256(new TextEncoder().encode(appCompose)),
  });
  const simulator = await startDstackSimulator({ socketPath, cvm, logger: captureLogger("silent").logger });
  return {
    socketPath,
    async close() {
      await simulator.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(intervalMs);
  }
}

/** A UDP socket on loopback playing one node's WireGuard: it records what arrives, and from where. */
export interface FakeWireGuard {
  readonly socket: UdpSocket;
  readonly port: number;
  readonly received: Array<{ payload: Buffer; from: RemoteInfo }>;
}

export async function fakeWireGuard(): Promise<FakeWireGuard> {
  const socket = createSocket("udp4");
  socket.bind(0, "127.0.0.1");
  await once(socket, "listening");
  const received: Array<{ payload: Buffer; from: RemoteInfo }> = [];
  socket.on("message", (payload, from) => received.push({ payload, from }));
  return { socket, port: socket.address().port, received };
}

/** A TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Quorum reads over one provider (a quorum of one), for tests of what reads the chain. */
export function readsOver(transport: Transport, logger?: Logger): ChainReads {
  return createChainReads({
    endpoints: [{ origin: "test", transport }],
    quorum: 1,
    logger: logger ?? pino({ level: "silent" }),
  });
}

/** An active member record with fresh random keys and mesh IP 10.77.0.<id>, for tests that need a few. */
export function testMember(id: bigint, extra: Partial<Member> = {}): Member {
  return {
    memberId: id,
    appId: "0x00000000000000000000000000000000000A11cE",
    memberKey: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    wireguardKey: bytesToHex(randomBytes(32)) as Hex,
    identityKey: bytesToHex(randomBytes(32)) as Hex,
    meshIp: 0x0a4d0000 + Number(id),
    status: "active",
    registeredAt: 1,
    ...extra,
  };
}

/** Whether `command` is an executable file in one of PATH's directories. */
export function onPath(command: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Why tests on real wireguard-go interfaces in network namespaces cannot run here (undefined: they can):
 * Linux, root, /dev/net/tun, and `ip`, `wg`, `wireguard-go` plus `commands` on PATH.
 */
export function wireguardGoSkipReason(commands: readonly string[] = []): string | undefined {
  if (process.platform !== "linux") return "needs Linux network namespaces";
  if (process.getuid?.() !== 0) return "needs root to create network namespaces and TUN devices";
  if (!existsSync("/dev/net/tun")) return "needs /dev/net/tun for wireguard-go";
  for (const command of ["ip", "wg", "wireguard-go", ...commands]) {
    if (!onPath(command)) return `needs ${command} in PATH`;
  }
  return undefined;
}

/** PIDs of the wireguard-go processes serving one of `interfaces` (read from /proc). */
export function wireguardGoPids(interfaces: readonly string[]): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (argv[0]?.endsWith("wireguard-go") && interfaces.includes(argv[1] ?? "")) found.push(Number(entry));
    } catch {}
  }
  return found;
}

/** Kills what a test's wireguard-go processes left running (its interfaces only). */
export function killWireGuardGo(interfaces: readonly string[]): void {
  for (const pid of wireguardGoPids(interfaces)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
}

/**
 * A gossip heartbeat (no probe, no statements, stamped now) from `senderId` of `cluster`, signed with
 * `sign`: what a test sends as a member, or as an attacker posing as one.
 */
export function gossipHeartbeat(
  fields: ClusterId & {
    readonly senderId: bigint;
    readonly incarnation: bigint;
    readonly epoch: bigint;
    readonly holdsCsk: boolean;
  },
  sign: (message: Uint8Array) => Uint8Array,
): Uint8Array {
  return encodeLiveness(
    {
      ...fields,
      kind: ProbeKind.Gossip,
      origin: 0n,
      target: 0n,
      seq: 0,
      digest: 0n,
      timestampMs: BigInt(Date.now()),
      statements: [],
    },
    sign,
  );
}

/** A membership follower whose view is always `members`, at block 1. */
export function fixedFollower(members: readonly Member[]): MembershipFollower {
  const view = new Map(members.map((m) => [m.memberId, m]));
  return {
    sync: async () => ({
      block: 1n,
      blockHash: `0x${"00".repeat(32)}`,
      members: view,
      changed: [],
      kind: "full",
    }),
    current: () => undefined,
    invalidate: () => {},
  };
}

/**
 * Two nodes on real wireguard-go (root; see wireguardGoSkipReason), each a reconcile loop over the real
 * wg backend in a network namespace of the test's own (`<tag>-1`, `<tag>-2`), joined by a veth pair on
 * 198.18.<subnet>.0/24, with mesh addresses in 198.19.<subnet>.0/24 and a membership view of the two.
 * The loops' timer ticks every `tickMs` (tests set it beyond their bounds, so that only the reconcilers'
 * own wake-ups run passes). `start` builds it all and starts the loops; `stop` removes everything.
 */
export function realWireGuardPair(options: {
  /** Names the namespaces and interfaces; unique per test process (e.g. with its pid). */
  readonly tag: string;
  /** The third octet of the underlay and mesh subnets. */
  readonly subnet: number;
  readonly tickMs: number;
  /** Node 1's wireguard-go command (a wrapper), if not wireguard-go itself. */
  readonly wireguardGo?: string;
  readonly restartPolicy?: Partial<RestartPolicy>;
}) {
  const { tag, subnet } = options;
  const abort = new AbortController();
  const nodes = [1, 2].map((id) => {
    const keys = wireguardKeyPair(randomBytes(32));
    const log = captureLogger("info");
    const netns = `${tag}-${id}`;
    /** Every phase the node's status went through, in order. */
    const phases: string[] = [];
    return {
      id,
      netns,
      ifName: `${tag}n${id}`,
      underlay: `198.18.${subnet}.${id}`,
      meshIp: `198.19.${subnet}.${id}`,
      keys,
      log,
      phases,
      backend: createWgBackend({
        netns,
        mode: "userspace",
        logger: log.logger,
        ...(id === 1 && options.wireguardGo !== undefined
          ? { commands: { wireguardGo: options.wireguardGo } }
          : {}),
      }),
      status: createStatusStore({ logger: log.logger, onPhase: (phase) => phases.push(phase) }),
      metrics: createMetrics(),
      member: {
        memberId: BigInt(id),
        appId: getAddress(`0x${id.toString(16).padStart(40, "0")}`),
        memberKey: getAddress(`0x${(id + 1000).toString(16).padStart(40, "0")}`),
        wireguardKey: bytesToHex(keys.publicKey),
        identityKey: `0x${"ab".repeat(32)}`,
        meshIp: ipToNumber(`198.19.${subnet}.${id}`),
        status: "active",
        registeredAt: 1,
      } satisfies Member,
      wake: async (_reason?: string) => {},
    };
  });
  type Node = (typeof nodes)[number];
  const [one, two] = nodes as [Node, Node];
  const follower = fixedFollower(nodes.map((n) => n.member));
  const run = (...argv: string[]) =>
    execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 10_000 });
  return {
    nodes: [one, two] as const,
    one,
    two,
    run,
    /** One ping from `from`'s namespace to `to`'s mesh address answered within a second. */
    reaches: (from: Node, to: Node) =>
      spawnSync("ip", ["netns", "exec", from.netns, "ping", "-c", "1", "-W", "1", to.meshIp]).status === 0,
    /** Polls `check` every 100 ms until it returns a value other than undefined/false; fails after `ms`. */
    async until<T>(what: string, ms: number, check: () => T | undefined | false): Promise<T> {
      const deadline = Date.now() + ms;
      for (;;) {
        const value = check();
        if (value !== undefined && value !== false) return value;
        if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
        await delay(100);
      }
    },
    start(): void {
      for (const node of nodes) {
        run("ip", "netns", "add", node.netns);
        run("ip", "-n", node.netns, "link", "set", "lo", "up");
      }
      const veth = `${tag}v`;
      run(
        "ip",
        "-n",
        one.netns,
        "link",
        "add",
        veth,
        "type",
        "veth",
        "peer",
        "name",
        veth,
        "netns",
        two.netns,
      );
      for (const node of nodes) {
        run("ip", "-n", node.netns, "address", "add", `${node.underlay}/24`, "dev", veth);
        run("ip", "-n", node.netns, "link", "set", veth, "up");
      }
      const endpoints = new Map(nodes.map((n) => [n.member.appId.toLowerCase(), `${n.underlay}:51820`]));
      for (const node of nodes) {
        node.status.update({ booted: true, memberId: node.member.memberId, meshRunning: true });
        node.status.update({ cskAcquired: true, converged: true });
        const reconciler = createReconciler({
          follower,
          backend: node.backend,
          endpoints: { read: async () => endpoints },
          status: node.status,
          metrics: node.metrics,
          logger: node.log.logger,
          keys: {
            wireguard: {
              privateKey: secret(node.keys.privateKey),
              publicKey: bytesToHex(node.keys.publicKey),
              publicKeyBase64: node.keys.publicKeyBase64,
            },
          },
          mesh: parseMeshCidr(`198.19.${subnet}.0/24`),
          interfaceName: node.ifName,
          listenPort: 51820,
          keepaliveSeconds: 5,
          ...(options.restartPolicy === undefined ? {} : { restartPolicy: options.restartPolicy }),
          memberId: () => node.member.memberId,
          onMembershipEnded: () => {},
          wake: (reason) => void node.wake(reason),
        });
        const loop = createReconcileLoop({
          pass: reconciler.pass,
          intervalMs: options.tickMs,
          signal: abort.signal,
          logger: node.log.logger,
        });
        node.wake = loop.wake;
        loop.start();
      }
    },
    async stop(): Promise<void> {
      abort.abort();
      for (const node of nodes) await node.backend.down().catch(() => undefined);
      killWireGuardGo(nodes.map((n) => n.ifName));
      for (const node of nodes) {
        spawnSync("ip", ["netns", "del", node.netns]);
        rmSync(`/var/run/wireguard/${node.ifName}.sock`, { force: true });
      }
    },
  };
}

/**
 * A temporary folder for a test file's executable shell scripts (stand-ins for daemons and commands):
 * `script` writes one and returns its path; `remove` (for `after`) deletes the folder.
 */
export function scriptFolder(prefix: string) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    script(name: string, lines: readonly string[]): string {
      const path = join(dir, name);
      writeFileSync(path, ["#!/bin/sh", ...lines, ""].join("\n"), { mode: 0o755 });
      return path;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
