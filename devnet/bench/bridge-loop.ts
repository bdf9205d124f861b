// The gateway bridge alone, on loopback, no devnet and no root: two sidecars' bridges (the real
// startBridge, each in its own process), the devnet's SNI gateway (its own process) and a stand-in
// for the two nodes' WireGuard (a fourth process) that moves WireGuard-sized datagrams from node A to
// node B through A's link → TLS → gateway → B's ingress → B's link, and acknowledges them back the same
// way, keeping a window in flight as TCP inside WireGuard would. It measures what the bridge costs per
// datagram, where the devnet bench (datapath.ts) also measures WireGuard, the kernel and the devnet.
//
//   node devnet/bench/bridge-loop.ts                         # 5 trials × 256 MiB
//   node devnet/bench/bridge-loop.ts --trials 4 --mib 128 --node-options="--max-semi-space-size=16"
//   node devnet/bench/bridge-loop.ts --cpu-prof /tmp/prof    # profiles of both bridges and the gateway
//
// The bridges run with the sidecar's Node options (SIDECAR_NODE_OPTIONS) unless --node-options says
// otherwise, and each keeps --ballast MB of live objects, like a sidecar's heap. B acknowledges every
// --ack-every datagrams (84 bytes, a sealed TCP ACK); --datagram sizes the data datagrams. Prints
// Mbit/s of payload per trial, the CPU seconds per GiB of each process (the bridges' user time apart),
// and each link's datagram and drop counts. The first trial includes the JIT's warm-up.
import { type ChildProcess, fork } from "node:child_process";
import { createSocket, type RemoteInfo } from "node:dgram";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { SIDECAR_NODE_OPTIONS } from "@attestmesh/sidecar/build/bundle.ts";
import { loadSodium, signingKeyFromSeed } from "@attestmesh/sidecar/meshnet/crypto.ts";
import { createLocalSocketFactory } from "@attestmesh/sidecar/meshnet/socketFactory.ts";
import { startBridge } from "@attestmesh/sidecar/transport/bridge.ts";
import pino from "pino";
import { startSniGateway } from "../src/orchestration/gateway.ts";

const { values } = parseArgs({
  allowPositionals: true,
  options: {
    role: { type: "string" },
    trials: { type: "string", default: "5" },
    mib: { type: "string", default: "256" },
    "node-options": { type: "string" },
    "cpu-prof": { type: "string" },
    /** Datagrams in flight (WireGuard's inner TCP window, in datagrams). */
    window: { type: "string", default: "512" },
    /** B acknowledges every this many datagrams (TCP inside WireGuard acks every second segment). */
    "ack-every": { type: "string", default: "2" },
    /** MB of live small objects each bridge process keeps, like a running sidecar's heap (its chain
     * clients, caches, the ABI); a major GC's cost grows with it. */
    ballast: { type: "string", default: "32" },
    /** Datagram size: a full WireGuard data datagram at MTU 1420 is 1452 bytes. */
    datagram: { type: "string", default: "1452" },
  },
});

const DOMAIN = "bridge-loop.bench";
const APPS = {
  a: { appId: "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", memberId: 1n, host: "127.0.0.2", seed: 1 },
  b: { appId: "0xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", memberId: 2n, host: "127.0.0.3", seed: 2 },
} as const;
const CLUSTER = "0x5FbDB2315678afecb367f032d93F642f64180aa3" as const;
/** A full-size WireGuard data datagram at MTU 1420: 1420 + 32 bytes of WireGuard's own. */
const DATAGRAM = Number(values.datagram);
const logger = pino({ level: "warn" });

type Message = Record<string, unknown> & { type: string };
const reply = (message: Message) => process.send?.(message);
const nextMessage = (child: ChildProcess | NodeJS.Process, type: string) =>
  new Promise<Message>((resolve) => {
    const on = (m: Message) => {
      if (m.type !== type) return;
      child.off("message", on);
      resolve(m);
    };
    child.on("message", on);
  });

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuSeconds(pid: number, which: "user" | "system" | "all" = "all"): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  const user = Number(fields[11]);
  const system = Number(fields[12]);
  return (which === "user" ? user : which === "system" ? system : user + system) / 100;
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function runGateway(): Promise<void> {
  const gateway = await startSniGateway({
    host: "127.0.0.1",
    port: 0,
    domain: DOMAIN,
    route: (appId) => Object.values(APPS).find((a) => a.appId === appId)?.host,
    logger,
  });
  reply({ type: "ready", port: gateway.port });
}

/** Live objects the size of a sidecar's old generation: records, strings and bigints, not one big array. */
function ballast(mb: number): unknown[] {
  const kept: unknown[] = [];
  // About 100 bytes per record.
  for (let i = 0; i < mb * 10_000; i++)
    kept.push({ id: BigInt(i), name: `member-${i}`, at: i * 1.5, tags: [i] });
  return kept;
}
let kept: unknown[] = [];

async function runBridge(self: "a" | "b", wgPort: number, gatewayPort: number, ingressPort: number) {
  kept = ballast(Number(values.ballast));
  await loadSodium();
  const keys = {
    a: signingKeyFromSeed(new Uint8Array(32).fill(1)),
    b: signingKeyFromSeed(new Uint8Array(32).fill(2)),
  };
  const me = APPS[self];
  const other = self === "a" ? APPS.b : APPS.a;
  const bridge = await startBridge({
    signer: {
      chainId: 31337,
      cluster: CLUSTER,
      selfMemberId: () => me.memberId,
      sign: (m) => keys[self].sign(m),
    },
    identityKey: (memberId) =>
      memberId === other.memberId ? keys[self === "a" ? "b" : "a"].publicKey : undefined,
    factory: createLocalSocketFactory(),
    logger,
    wgListenPort: wgPort,
    gatewayDomain: DOMAIN,
    gatewayAddress: { host: "127.0.0.1", port: gatewayPort },
    ingressHost: me.host,
    ingressPort,
  });
  const endpoints = await bridge.setPeers([{ memberId: other.memberId, appId: other.appId }]);
  reply({
    type: "ready",
    endpoint: endpoints.get(other.memberId),
    heapMb: process.memoryUsage().heapUsed / 2 ** 20,
    kept: kept.length,
  });
  process.on("message", (m: Message) => {
    if (m.type === "status")
      reply({
        type: "status",
        status: String(
          JSON.stringify(bridge.status(other.memberId), (_, v) => (typeof v === "bigint" ? v.toString() : v)),
        ),
      });
  });
}

/** Both nodes' WireGuard: A sends numbered datagrams to its link for B, B acknowledges to its link for A. */
async function runWireGuard(): Promise<void> {
  const window = Number(values.window);
  const ackEvery = Number(values["ack-every"]);
  const a = createSocket({ type: "udp4", recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  const b = createSocket({ type: "udp4", recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  a.bind(0, "127.0.0.1");
  b.bind(0, "127.0.0.1");
  await Promise.all([once(a, "listening"), once(b, "listening")]);
  reply({ type: "ready", a: a.address().port, b: b.address().port });
  const { endpoint } = (await nextMessage(process, "endpoints")) as unknown as { endpoint: string };
  const [host, portText] = endpoint.split(":");
  const port = Number(portText);
  const payload = Buffer.alloc(DATAGRAM, 0x5a);
  let sent = 0;
  let acked = 0;
  let received = 0;
  let lastAckAt = Date.now();
  let goal = 0;
  let done: (() => void) | undefined;
  // A retransmission timeout, crudely: a stalled window is written off and sending goes on.
  setInterval(() => {
    if (goal > 0 && Date.now() - lastAckAt > 200 && sent - acked >= window) {
      acked = sent - window / 2;
      lastAckAt = Date.now();
      pump();
    }
  }, 50).unref();
  function pump(): void {
    while (sent < goal && sent - acked < window) {
      payload.writeUInt32BE(sent, 0);
      a.send(payload, port, host);
      sent += 1;
    }
  }
  let bAck: RemoteInfo | undefined;
  b.on("message", (message, from) => {
    received += 1;
    bAck = from;
    const seq = message.readUInt32BE(0);
    if (received % ackEvery === 0 || seq === goal - 1) {
      // A WireGuard-sealed TCP ACK: 52 bytes of IP and TCP headers, 32 of WireGuard's.
      const ack = Buffer.alloc(84);
      ack.writeUInt32BE(seq, 0);
      b.send(ack, bAck.port, bAck.address);
    }
  });
  a.on("message", (message) => {
    const seq = message.readUInt32BE(0);
    if (seq + 1 > acked) acked = seq + 1;
    lastAckAt = Date.now();
    if (seq === goal - 1) done?.();
    pump();
  });
  process.on("message", async (m: Message) => {
    if (m.type !== "run") return;
    const count = Number(m.datagrams);
    // Warm up the path: the first datagrams open the stream.
    received = 0;
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    const start = process.hrtime.bigint();
    goal = sent + count;
    acked = sent;
    lastAckAt = Date.now();
    pump();
    await finished;
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    reply({ type: "result", seconds, received, count });
  });
}

async function parent(): Promise<void> {
  const trials = Number(values.trials);
  const mib = Number(values.mib);
  const nodeOptions = values["node-options"] ?? SIDECAR_NODE_OPTIONS;
  const script = fileURLToPath(import.meta.url);
  const prof = (name: string) =>
    values["cpu-prof"] === undefined
      ? []
      : ["--cpu-prof", `--cpu-prof-dir=${join(values["cpu-prof"], name)}`];
  const spawn = (args: string[], execArgv: string[]) =>
    fork(script, args, {
      execArgv: [...process.execArgv, ...execArgv],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
  const children: ChildProcess[] = [];
  try {
    const gateway = spawn(["--role", "gateway"], prof("gateway"));
    children.push(gateway);
    const { port: gatewayPort } = (await nextMessage(gateway, "ready")) as unknown as { port: number };
    const wg = spawn(
      [
        "--role",
        "wireguard",
        "--window",
        values.window!,
        "--ack-every",
        values["ack-every"]!,
        "--datagram",
        values.datagram!,
      ],
      [],
    );
    children.push(wg);
    const wgPorts = (await nextMessage(wg, "ready")) as unknown as { a: number; b: number };
    const ingressPort = await freePort();
    const bridges = await Promise.all(
      (["a", "b"] as const).map(async (self) => {
        const child = spawn(
          [
            "--role",
            `bridge-${self}`,
            "--ballast",
            values.ballast!,
            String(wgPorts[self]),
            String(gatewayPort),
            String(ingressPort),
          ],
          [...nodeOptions.split(/\s+/).filter(Boolean), ...prof(`bridge-${self}`)],
        );
        children.push(child);
        const { endpoint } = (await nextMessage(child, "ready")) as unknown as { endpoint: string };
        return { child, endpoint };
      }),
    );
    wg.send({ type: "endpoints", endpoint: bridges[0]!.endpoint });
    const run = async (datagrams: number) => {
      wg.send({ type: "run", datagrams });
      return (await nextMessage(wg, "result")) as unknown as {
        seconds: number;
        received: number;
        count: number;
      };
    };
    await run(2000);
    const groups = {
      bridges: bridges.map((b) => b.child.pid!),
      gateway: [gateway.pid!],
      wireguard: [wg.pid!],
    };
    const bridgePids = groups.bridges;
    const bridgeUser = () => bridgePids.reduce((s, p) => s + cpuSeconds(p, "user"), 0);
    process.stderr.write(`bridges with NODE_OPTIONS "${nodeOptions}"; ${trials} × ${mib} MiB\n`);
    const rows: Array<{ mbps: number; loss: number; cpu: Record<string, number> }> = [];
    for (let t = 0; t < trials; t++) {
      const count = Math.round((mib * 1024 * 1024) / DATAGRAM);
      const before = Object.fromEntries(
        Object.entries(groups).map(([k, pids]) => [k, pids.reduce((s, p) => s + cpuSeconds(p), 0)]),
      );
      const userBefore = bridgeUser();
      const r = await run(count);
      const gib = (r.received * DATAGRAM) / 2 ** 30;
      const cpu = Object.fromEntries(
        Object.entries(groups).map(([k, pids]) => [
          k,
          (pids.reduce((s, p) => s + cpuSeconds(p), 0) - before[k]!) / gib,
        ]),
      );
      const mbps = (r.received * DATAGRAM * 8) / r.seconds / 1e6;
      cpu["bridges' user"] = (bridgeUser() - userBefore) / gib;
      rows.push({ mbps, loss: 1 - r.received / r.count, cpu });
      process.stdout.write(
        `trial ${t + 1}: ${mbps.toFixed(0)} Mbit/s, lost ${(100 * (1 - r.received / r.count)).toFixed(2)} %, CPU s/GiB ${Object.entries(
          cpu,
        )
          .map(([k, v]) => `${k} ${v.toFixed(1)}`)
          .join(", ")}\n`,
      );
    }
    for (const [i, b] of bridges.entries()) {
      b.child.send({ type: "status" });
      const { status } = (await nextMessage(b.child, "status")) as unknown as { status: string };
      const { datagramsOut, datagramsIn, dropped } = JSON.parse(status) as Record<string, number>;
      process.stdout.write(
        `bridge ${"ab"[i]}: datagrams out ${datagramsOut}, in ${datagramsIn}, dropped ${dropped}\n`,
      );
    }
    const sorted = rows.map((r) => r.mbps).sort((x, y) => x - y);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    process.stdout.write(
      `median ${median.toFixed(0)} Mbit/s (min ${sorted[0]!.toFixed(0)}, max ${sorted.at(-1)!.toFixed(0)})\n`,
    );
  } finally {
    for (const child of children) child.kill("SIGINT");
    await Promise.all(children.map((c) => (c.exitCode === null ? once(c, "exit") : undefined)));
  }
}

const role = values.role;
if (role === undefined) await parent();
else {
  process.on("SIGINT", () => process.exit(0));
  if (role === "gateway") await runGateway();
  else if (role === "wireguard") await runWireGuard();
  else if (role === "bridge-a" || role === "bridge-b") {
    const [wgPort, gatewayPort, ingressPort] = process.argv.slice(-3).map(Number) as [number, number, number];
    await runBridge(role === "bridge-a" ? "a" : "b", wgPort, gatewayPort, ingressPort);
  } else throw new Error(`unknown role ${role}`);
}
