// The data path, side by side in one run (root, under the devnet lock; tears everything down at the end):
//
//   throughput  one bounded TCP transfer (--mib MiB, a Node sink and source, the same in every case) per
//               trial, over (1) bare wireguard-go between two namespaces of its own on a veth pair, no
//               devnet running; (2) bare wireguard-go between the two nodes' namespaces of a 2-node devnet
//               on direct UDP, over the same underlay, alternating trial by trial with (3) that devnet's
//               mesh; (4) a 2-node devnet mesh through the gateway bridge and the devnet's SNI gateway;
//               ratios direct/bare (same namespaces) and gateway/direct on the medians
//   join        on an --nodes 8 cluster (one node joins, is measured, is evicted, --trials times), with
//               indexer pushes and then polling only:
//                 handshaken  registration block → every existing node has handshaken with the newcomer
//                 configured  registration block → every existing node has the newcomer as a peer
//                 CSK         the newcomer's "WireGuard interface up" → "CSK acquired" (its own log)
//                 CSK joined  registration block → the newcomer's "CSK acquired" (what its app waits for)
//                 rotation    eviction transaction → every remaining node holds the new epoch's CSK
//                 cut off     eviction transaction → no remaining node has the evicted peer any more
//
//   flock /tmp/attestmesh-devnet.lock node devnet/bench/datapath.ts                # all of it, ~10 min
//   flock /tmp/attestmesh-devnet.lock node devnet/bench/datapath.ts --only throughput --trials 5
//   flock /tmp/attestmesh-devnet.lock node devnet/bench/datapath.ts --only join --modes push   # ~3 min
//
// The moments measured are sampled often and cheaply: the registration by eth_getLogs every 20 ms, each
// node's handshakes from its wireguard-go control socket every 10 ms (no process per sample; before
// issue 15's last step, `wg show` in every namespace every 50 ms, which loaded the 2 cores it measured).
//
// Tracing a slow join: each trial's progress line names every node's first handshake with the newcomer
// (ms after the registration) and the nodes whose handshake fell back to none (a re-add). With
// ATTESTMESH_BENCH_LOGS=<dir> the devnet's logs are kept there (one copy per mode); with
// ATTESTMESH_LOG_LEVEL=trace as well, each sidecar's log holds wireguard-go's handshake messages.
//
// Medians and maxima of --trials; prints Markdown tables on stdout, progress on stderr.
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { cp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { SIDECAR_NODE_OPTIONS } from "@attestmesh/sidecar/build/bundle.ts";
import { type Address, getAbiItem, hexToBytes } from "viem";
import { currentCsk, devnetClients, evictApp } from "../src/orchestration/chain.ts";
import { devnetDown } from "../src/orchestration/down.ts";
import { devnetStatus, readHealth } from "../src/orchestration/health.ts";
import { latestHandshakes } from "../src/orchestration/netns.ts";
import { DEVNET_DIR, type DevnetNode, readState } from "../src/orchestration/state.ts";
import { addNodeToState, devnetUp, removeNodeFromState } from "../src/orchestration/up.ts";

const { values } = parseArgs({
  options: {
    only: { type: "string" },
    trials: { type: "string", default: "5" },
    mib: { type: "string", default: "64" },
    /** Write --cpu-prof profiles of the devnet's Node processes (sidecars, gateway) to this directory. */
    "cpu-prof": { type: "string" },
    nodes: { type: "string", default: "8" },
    /** Join trials with indexer pushes, polling only, or both (comma-separated). */
    modes: { type: "string", default: "push,poll" },
  },
});
const trials = Number(values.trials);
const mib = Number(values.mib);
const clusterSize = Number(values.nodes);
if (!Number.isInteger(trials) || trials < 1 || trials > 50) throw new Error("--trials must be 1..50");
if (!Number.isInteger(mib) || mib < 1 || mib > 1024) throw new Error("--mib must be 1..1024");
if (!Number.isInteger(clusterSize) || clusterSize < 2 || clusterSize > 32)
  throw new Error("--nodes must be 2..32");
if (values.only !== undefined && values.only !== "throughput" && values.only !== "join")
  throw new Error("--only is throughput or join");
const modes = values.modes.split(",").map((m) => m.trim());
if (modes.length === 0 || modes.some((m) => m !== "push" && m !== "poll"))
  throw new Error("--modes is push, poll or push,poll");
const log = (message: string) => process.stderr.write(`› ${message}\n`);

interface Stats {
  readonly median: number;
  readonly max: number;
  readonly min: number;
  readonly samples: readonly number[];
}

function stats(samples: readonly number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  const median = sorted.length % 2 === 1 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, max: sorted.at(-1)!, min: sorted[0]!, samples };
}

// ---------------------------------------------------------------------------------------------------
// Throughput

const SINK_PORT = 7700;

/** One transfer of `mib` MiB from `clientNetns` to `serverIp:7700` in `serverNetns`; Mbit/s. */
function transfer(serverNetns: string, serverIp: string, clientNetns: string): number {
  const total = mib * 1024 * 1024;
  const sink = `let n=0,t0=0;const s=require("node:net").createServer(c=>{c.on("data",d=>{if(!t0)t0=performance.now();n+=d.length});c.on("end",()=>{console.log(JSON.stringify({bytes:n,seconds:(performance.now()-t0)/1000}));process.exit(0)})});s.listen(${SINK_PORT},"${serverIp}");setTimeout(()=>process.exit(2),120000);`;
  const source = `const c=require("node:net").connect(${SINK_PORT},"${serverIp}",()=>{const chunk=Buffer.alloc(65536,1);let left=${total};const pump=()=>{while(left>0){left-=chunk.length;if(!c.write(chunk)){c.once("drain",pump);return}}c.end()};pump()});c.on("error",e=>{console.error(e.message);process.exit(4)});`;
  const node = JSON.stringify(process.execPath);
  const script = [
    `ip netns exec ${serverNetns} ${node} -e '${sink}' > "$OUT" &`,
    "sink=$!",
    `for i in $(seq 100); do ip netns exec ${serverNetns} ss -ltn | grep -q ':${SINK_PORT} ' && break; sleep 0.1; done`,
    `ip netns exec ${clientNetns} ${node} -e '${source}'`,
    'wait "$sink"',
    'cat "$OUT"',
  ].join("\n");
  // The sink's result goes through a file, removed once the transfer is over, whatever its outcome.
  const file = join(tmpdir(), `attestmesh-datapath-${process.pid}.json`);
  let out: string;
  try {
    out = execFileSync("bash", ["-c", script], {
      env: { ...process.env, OUT: file },
      stdio: ["ignore", "pipe", "inherit"],
      timeout: 180_000,
      encoding: "utf8",
    });
  } finally {
    rmSync(file, { force: true });
  }
  const result = JSON.parse(out.trim().split("\n").at(-1)!) as { bytes: number; seconds: number };
  if (result.bytes !== total) throw new Error(`the sink got ${result.bytes} of ${total} bytes`);
  return (result.bytes * 8) / result.seconds / 1e6;
}

const sh = (args: string[], input?: string) =>
  execFileSync(args[0]!, args.slice(1), {
    encoding: "utf8",
    stdio: [input === undefined ? "ignore" : "pipe", "pipe", "inherit"],
    ...(input === undefined ? {} : { input }),
  }).trim();

/** CPU seconds (user + system, or user only) a process has used so far; 0 if it is gone. */
function cpuSeconds(pid: number, userOnly = false): number {
  try {
    const stat = execFileSync("cat", [`/proc/${pid}/stat`], { encoding: "utf8" });
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + (userOnly ? 0 : Number(fields[12]))) / 100;
  } catch {
    return 0;
  }
}

/** The wireguard-go processes in `netns`: those serving `only` (an interface name test), or all. */
function wireguardGoPids(netns: string, only: (iface: string) => boolean = () => true): number[] {
  return sh(["ip", "netns", "pids", netns])
    .split("\n")
    .filter(Boolean)
    .map(Number)
    .filter((pid) => {
      try {
        const argv = execFileSync("cat", [`/proc/${pid}/cmdline`], { encoding: "utf8" }).split("\0");
        return argv[0]?.endsWith("wireguard-go") === true && only(argv[1] ?? "");
      } catch {
        return false;
      }
    });
}
const isBare = (iface: string) => iface.startsWith("ambwg");

/** CPU seconds per process group over `run`, per GiB moved. */
function cpuDuring(
  groups: Record<string, number[]>,
  run: () => number,
): { mbps: number; cpu: Record<string, number> } {
  // A group named "… user" counts user time only (what the process itself computes, without the
  // kernel's network stack it runs through).
  const seconds = (k: string, pid: number) => cpuSeconds(pid, k.endsWith(" user"));
  const before = Object.fromEntries(
    Object.entries(groups).map(([k, pids]) => [k, pids.map((pid) => seconds(k, pid))]),
  );
  const mbps = run();
  const gib = mib / 1024;
  const cpu = Object.fromEntries(
    Object.entries(groups).map(([k, pids]) => [
      k,
      pids.reduce((sum, pid, i) => sum + seconds(k, pid) - before[k]![i]!, 0) / gib,
    ]),
  );
  return { mbps, cpu };
}

const BARE = ["ambench-a", "ambench-b"] as const;
const BARE_MESH = ["10.199.0.1", "10.199.0.2"] as const;

/** Removes the bare pair: its wireguard-go processes and interfaces, and namespaces it created. */
function bareDown(namespaces: readonly string[] = BARE, ownNamespaces = true): void {
  for (const ns of namespaces) {
    try {
      for (const pid of wireguardGoPids(ns, isBare)) process.kill(pid, "SIGKILL");
      if (ownNamespaces) sh(["ip", "netns", "del", ns]);
      else
        for (const i of [0, 1])
          execFileSync("ip", ["-n", ns, "link", "del", `ambwg${i}`], { stdio: "ignore" });
    } catch {
      // not there
    }
  }
}

/**
 * Bare wireguard-go, configured by hand with wg(8) (the devnet's MTU, no keepalive), between two
 * namespaces: by default its own pair on a veth link; given `within`, two existing namespaces (the devnet
 * nodes', next to their mesh interfaces, over the same underlay) on port 52820. Returns the sink's address.
 *
 * Each daemon runs in a session of its own (setsid), as the mesh's does (in its sidecar's session) and
 * as any VPN daemon does apart from the applications it carries. Left in this benchmark's session it
 * would share the scheduler's autogroup with the transfer's sender and sink, which it never does in
 * use: measured that way it switched contexts about half as often as the mesh's (25 k against 45 k per
 * 64 MiB) and ran 1.2–1.3 times as fast, and so did the mesh's own backend started from this session —
 * docs/performance.md, "The direct path's gap was the scheduler's".
 */
function bareUp(within?: {
  readonly namespaces: readonly [string, string];
  readonly underlay: readonly [string, string];
}): string {
  const namespaces = within?.namespaces ?? BARE;
  const underlay = within?.underlay ?? ["198.19.77.1", "198.19.77.2"];
  const port = within === undefined ? 51820 : 52820;
  if (within === undefined) {
    bareDown();
    sh(["ip", "netns", "add", BARE[0]]);
    sh(["ip", "netns", "add", BARE[1]]);
    sh([
      "ip",
      "link",
      "add",
      "ambv0",
      "netns",
      BARE[0],
      "type",
      "veth",
      "peer",
      "name",
      "ambv1",
      "netns",
      BARE[1],
    ]);
  }
  const keys = namespaces.map(() => sh(["wg", "genkey"]));
  const pubs = keys.map((k) => sh(["wg", "pubkey"], `${k}\n`));
  namespaces.forEach((ns, i) => {
    if (within === undefined) {
      sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
      sh(["ip", "-n", ns, "address", "add", `${underlay[i]}/24`, "dev", `ambv${i}`]);
      sh(["ip", "-n", ns, "link", "set", `ambv${i}`, "up"]);
    }
    sh(["ip", "netns", "exec", ns, "setsid", "wireguard-go", `ambwg${i}`]);
    // The throwaway key goes through the environment and a pipe, never argv or a file.
    execFileSync(
      "bash",
      ["-c", `ip netns exec ${ns} wg set ambwg${i} listen-port ${port} private-key <(printf '%s' "$KEY")`],
      { env: { ...process.env, KEY: keys[i]! }, stdio: "inherit" },
    );
    const other = 1 - i;
    sh([
      "ip",
      "netns",
      "exec",
      ns,
      "wg",
      "set",
      `ambwg${i}`,
      "peer",
      pubs[other]!,
      "allowed-ips",
      `${BARE_MESH[other]}/32`,
      "endpoint",
      `${underlay[other]}:${port}`,
    ]);
    sh(["ip", "-n", ns, "address", "add", `${BARE_MESH[i]}/24`, "dev", `ambwg${i}`]);
    sh(["ip", "-n", ns, "link", "set", `ambwg${i}`, "mtu", "1420", "up"]);
  });
  return BARE_MESH[1];
}

async function throughput(): Promise<string> {
  const rows: Array<{ path: string; s: Stats; cpu: Record<string, number> }> = [];
  const medianCpu = (runs: Array<Record<string, number>>) =>
    Object.fromEntries(Object.keys(runs[0]!).map((k) => [k, stats(runs.map((r) => r[k]!)).median]));
  let meshOverBare: number[] = [];
  log(`bare wireguard-go between two namespaces: ${trials} × ${mib} MiB`);
  try {
    const ip = bareUp();
    const groups = { "wireguard-go": BARE.flatMap((ns) => wireguardGoPids(ns)) };
    const runs = Array.from({ length: trials }, () =>
      cpuDuring(groups, () => transfer(BARE[1], ip, BARE[0])),
    );
    rows.push({
      path: "bare wireguard-go, own veth pair, no devnet",
      s: stats(runs.map((r) => r.mbps)),
      cpu: medianCpu(runs.map((r) => r.cpu)),
    });
  } finally {
    bareDown();
  }
  for (const path of ["udp", "gateway"] as const) {
    log(`a 2-node devnet with --transport ${path}: ${trials} × ${mib} MiB`);
    const sidecarOptions = process.env.ATTESTMESH_DEVNET_SIDECAR_NODE_OPTIONS;
    if (values["cpu-prof"] !== undefined) {
      const profile = `--cpu-prof --cpu-prof-dir=${join(values["cpu-prof"], path)}`;
      // The gateway inherits NODE_OPTIONS; the sidecars run with their own (nodes.ts), so they get
      // theirs plus the profiler.
      process.env.NODE_OPTIONS = profile;
      process.env.ATTESTMESH_DEVNET_SIDECAR_NODE_OPTIONS = `${sidecarOptions ?? SIDECAR_NODE_OPTIONS} ${profile}`;
    }
    try {
      await devnetUp({ nodes: 2, timeoutMs: 240_000, progress: log, transport: path, indexer: false });
    } finally {
      delete process.env.NODE_OPTIONS;
      if (sidecarOptions === undefined) delete process.env.ATTESTMESH_DEVNET_SIDECAR_NODE_OPTIONS;
      else process.env.ATTESTMESH_DEVNET_SIDECAR_NODE_OPTIONS = sidecarOptions;
    }
    try {
      const state = (await readState())!;
      const status = await devnetStatus(state);
      for (const n of status.nodes)
        if (n.transports[path] !== 1) throw new Error(`${n.name} is on ${JSON.stringify(n.transports)}`);
      const [client, server] = status.nodes as [(typeof status.nodes)[0], (typeof status.nodes)[0]];
      const groups: Record<string, number[]> = {
        "wireguard-go": status.nodes.flatMap((n) => wireguardGoPids(n.netns, (i) => !isBare(i))),
        sidecars: state.nodes.map((n) => n.sidecarPid),
        "sidecars, user": state.nodes.map((n) => n.sidecarPid),
        ...(path === "gateway" && state.gatewayPid !== undefined
          ? { "devnet gateway": [state.gatewayPid] }
          : {}),
      };
      const mesh = () => cpuDuring(groups, () => transfer(server.netns, server.meshIp!, client.netns));
      if (path === "gateway") {
        const runs = Array.from({ length: trials }, mesh);
        rows.push({
          path: "mesh, gateway bridge",
          s: stats(runs.map((r) => r.mbps)),
          cpu: medianCpu(runs.map((r) => r.cpu)),
        });
        continue;
      }
      // The goal's baseline: bare wireguard-go between the same two namespaces, over the same underlay
      // and under the same devnet (chain, sidecars) running, trial for trial alternating with the mesh,
      // so whatever else loads the machine weighs on both alike.
      const namespaces = [client.netns, server.netns] as const;
      const nodes = namespaces.map((ns) => state.nodes.find((n) => n.netns === ns)!);
      const ip = bareUp({ namespaces, underlay: [nodes[0]!.underlayIp, nodes[1]!.underlayIp] });
      const bareRuns: Array<{ mbps: number; cpu: Record<string, number> }> = [];
      const meshRuns: Array<{ mbps: number; cpu: Record<string, number> }> = [];
      try {
        const bareGroups = { "wireguard-go": namespaces.flatMap((ns) => wireguardGoPids(ns, isBare)) };
        for (let trial = 0; trial < trials; trial++) {
          bareRuns.push(cpuDuring(bareGroups, () => transfer(server.netns, ip, client.netns)));
          meshRuns.push(mesh());
        }
      } finally {
        bareDown(namespaces, false);
      }
      meshOverBare = meshRuns.map((r, i) => r.mbps / bareRuns[i]!.mbps);
      rows.push(
        {
          path: "bare wireguard-go, the devnet nodes' namespaces",
          s: stats(bareRuns.map((r) => r.mbps)),
          cpu: medianCpu(bareRuns.map((r) => r.cpu)),
        },
        {
          path: "mesh, direct UDP",
          s: stats(meshRuns.map((r) => r.mbps)),
          cpu: medianCpu(meshRuns.map((r) => r.cpu)),
        },
      );
    } finally {
      await devnetDown(log);
    }
  }
  const [veth, bare, direct, gateway] = rows.map((r) => r.s) as [Stats, Stats, Stats, Stats];
  return [
    "| path | trials × MiB | median Mbit/s | min | max | samples | CPU s per GiB moved (median) |",
    "|---|---:|---:|---:|---:|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.path} | ${trials} × ${mib} | ${r.s.median.toFixed(0)} | ${r.s.min.toFixed(0)} | ${r.s.max.toFixed(0)} | ${r.s.samples.map((x) => x.toFixed(0)).join(", ")} | ${Object.entries(
          r.cpu,
        )
          .map(([k, v]) => `${k} ${v.toFixed(1)}`)
          .join(", ")} |`,
    ),
    "",
    `direct / bare wireguard-go in the same namespaces = ${(direct.median / bare.median).toFixed(2)} (goal ≥ 0.90; trial by trial: ${meshOverBare.map((x) => x.toFixed(2)).join(", ")}); direct / bare on its own veth pair, no devnet = ${(direct.median / veth.median).toFixed(2)}; gateway / direct = ${(gateway.median / direct.median).toFixed(2)} (goal ≥ 0.70)`,
    "",
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------------
// Join, CSK, rotation, eviction at N = --nodes

const registered = getAbiItem({ abi: clusterAbi, name: "MemberRegistered" });

async function logTime(node: DevnetNode, message: string): Promise<number | undefined> {
  const text = await readFile(join(node.logDir, "sidecar.log"), "utf8");
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line) as { time: number; msg: string };
    if (entry.msg === message) return entry.time;
  }
  return undefined;
}

/** Asks `check` every `everyMs` (after its answer) until it answers; the moments measured ask often. */
async function until<T>(
  what: string,
  check: () => Promise<T | undefined>,
  { timeoutMs = 60_000, everyMs = 50 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function joins(withIndexer: boolean) {
  await devnetUp({ nodes: clusterSize - 1, timeoutMs: 300_000, progress: log, indexer: withIndexer });
  let state = (await readState())!;
  const clients = devnetClients(state.rpcUrl, state.chainId);
  const existing = [...state.nodes];
  const peersOf = (node: DevnetNode) => latestHandshakes(node.netns, node.wgInterface);
  const figures = {
    handshaken: [] as number[],
    configured: [] as number[],
    csk: [] as number[],
    /** Registration seen → the newcomer's "CSK acquired" line (wall clocks of one machine). */
    cskJoined: [] as number[],
  };
  const rotation: number[] = [];
  const cutOff: number[] = [];
  try {
    for (let trial = 1; trial <= trials; trial++) {
      const fromBlock = await clients.client.getBlockNumber();
      state = await addNodeToState(clients, state, 100 + trial);
      const joining = state.nodes.at(-1)!;
      const { seenAt, seenWall, wgKey } = await until(
        "the registration",
        async () => {
          const logs = await clients.client.getLogs({ address: state.diamond, event: registered, fromBlock });
          const mine = logs.find((l) => l.args.appId?.toLowerCase() === joining.appId.toLowerCase());
          return mine === undefined
            ? undefined
            : {
                seenAt: performance.now(),
                seenWall: Date.now(),
                wgKey: Buffer.from(hexToBytes(mine.args.wireguardKey!)).toString("base64"),
              };
        },
        { everyMs: 20 },
      );
      let configuredMs: number | undefined;
      // Per node: its first handshake with the newcomer, and whether it fell back to none (a re-add).
      const firstHandshake = new Map<string, number>();
      const readded = new Set<string>();
      await until(
        "every node to handshake with the newcomer",
        async () => {
          const views = await Promise.all(existing.map(peersOf));
          const at = performance.now() - seenAt;
          if (configuredMs === undefined && views.every((v) => v.has(wgKey))) configuredMs = at;
          for (const [i, v] of views.entries()) {
            const name = existing[i]!.name;
            if ((v.get(wgKey) ?? 0) > 0) {
              if (!firstHandshake.has(name)) firstHandshake.set(name, at);
            } else if (firstHandshake.has(name)) readded.add(name);
          }
          return views.every((v) => (v.get(wgKey) ?? 0) > 0) ? true : undefined;
        },
        { everyMs: 10 },
      );
      log(
        `  first handshakes (ms): ${[...firstHandshake].map(([n, ms]) => `${n} ${ms.toFixed(0)}`).join(", ")}${readded.size > 0 ? `; back to none meanwhile: ${[...readded].join(", ")}` : ""}`,
      );
      figures.handshaken.push(performance.now() - seenAt);
      figures.configured.push(configuredMs ?? performance.now() - seenAt);
      await until("the newcomer to hold the CSK", async () =>
        (await readHealth(joining)).health?.cskAcquired ? true : undefined,
      );
      // The health endpoint can say so before the log line is on disk (pino writes asynchronously).
      const up = await until("the newcomer's interface-up log line", () =>
        logTime(joining, "WireGuard interface up"),
      );
      const got = await until("the newcomer's CSK log line", () =>
        logTime(joining, "CSK acquired from a peer; hash matches the chain"),
      );
      figures.csk.push(got - up);
      figures.cskJoined.push(got - seenWall);

      const { epoch: epochBefore } = await currentCsk(clients, state.diamond);
      const evictedAt = performance.now();
      await evictApp(clients, state.diamond, joining.appId as Address, 1);
      let cut: number | undefined;
      await until(
        "every remaining node to hold the new epoch and drop the peer",
        async () => {
          const [healths, views] = await Promise.all([
            Promise.all(existing.map(readHealth)),
            Promise.all(existing.map(peersOf)),
          ]);
          if (cut === undefined && views.every((v) => !v.has(wgKey))) cut = performance.now() - evictedAt;
          const next = (epochBefore + 1n).toString();
          const rotated = healths.every((h) => h.health?.cskEpoch === next && h.health.cskAcquired === true);
          if (rotated && rotation.length < trial) rotation.push(performance.now() - evictedAt);
          return rotated && cut !== undefined ? true : undefined;
        },
        { everyMs: 20 },
      );
      cutOff.push(cut!);
      log(
        `${withIndexer ? "push" : "poll"} trial ${trial}: handshaken ${figures.handshaken.at(-1)!.toFixed(0)} ms (configured ${figures.configured.at(-1)!.toFixed(0)}), CSK ${figures.csk.at(-1)} ms (after registration ${figures.cskJoined.at(-1)}), rotation ${rotation.at(-1)!.toFixed(0)} ms, cut off ${cut!.toFixed(0)} ms`,
      );
      state = await removeNodeFromState(state, joining);
    }
  } finally {
    const keep = process.env.ATTESTMESH_BENCH_LOGS;
    if (keep) {
      const to = join(keep, withIndexer ? "push" : "poll");
      // Logs and state files only: the sockets in there cannot be copied.
      await cp(DEVNET_DIR, to, {
        recursive: true,
        filter: (src) => !/\.(sock|sqlite[^/]*)$/.test(src) && !src.endsWith(".app-compose.json"),
      }).catch((error: Error) => log(`cannot keep the logs: ${error.message}`));
      log(`devnet logs kept in ${to}`);
    }
    await devnetDown(log);
  }
  return {
    handshaken: stats(figures.handshaken),
    configured: stats(figures.configured),
    csk: stats(figures.csk),
    cskJoined: stats(figures.cskJoined),
    rotation: stats(rotation),
    cutOff: stats(cutOff),
  };
}

async function joinTable(): Promise<string> {
  const rows: string[] = [];
  for (const withIndexer of [true, false].filter((push) => modes.includes(push ? "push" : "poll"))) {
    log(
      `N = ${clusterSize}, ${withIndexer ? "indexer pushes and polling" : "polling only"}: ${trials} joins`,
    );
    const r = await joins(withIndexer);
    const mode = withIndexer ? "push" : "poll only";
    const row = (figure: string, s: Stats) =>
      `| ${figure} | ${mode} | ${s.median.toFixed(0)} | ${s.max.toFixed(0)} | ${s.samples.map((x) => x.toFixed(0)).join(", ")} |`;
    rows.push(
      row("join: registration → every node handshaken", r.handshaken),
      row("join: registration → every node configured", r.configured),
      row("CSK: newcomer's interface up → CSK held", r.csk),
      row("CSK: registration → newcomer holds the CSK", r.cskJoined),
      row(`rotation: eviction → all ${clusterSize - 1} hold the new epoch`, r.rotation),
      row("eviction: → no node has the peer", r.cutOff),
    );
  }
  return [
    `N = ${clusterSize} (after the join), ${trials} trials each, sidecars poll every 1 s`,
    "",
    "| figure | mode | median ms | max ms | samples ms |",
    "|---|---|---:|---:|---|",
    ...rows,
    "",
  ].join("\n");
}

try {
  const out: string[] = [];
  if (values.only !== "join") out.push(await throughput());
  if (values.only !== "throughput") out.push(await joinTable());
  process.stdout.write(out.join("\n"));
} catch (error) {
  process.stderr.write(`datapath benchmark failed: ${(error as Error).stack}\n`);
  bareDown();
  await devnetDown(log).catch(() => {});
  process.exit(1);
}
