// Idle cost of a sidecar: brings up an N-node devnet, waits until every node is healthy and then at rest
// (no joins, no rotations, --settle seconds after the last node turned healthy), and samples each sidecar
// process's CPU (utime + stime from /proc/<pid>/stat) and resident memory (VmRSS from /proc/<pid>/status)
// over a fixed window. Prints per node and the medians. Tears the devnet down at the end unless --keep.
//
//   flock /tmp/attestmesh-devnet.lock node devnet/bench/idle-cost.ts --nodes 8          (root)
//   add --profile DIR to also take a CPU profile of one sidecar (--profile-node, default node2) over a second window (through the
//   inspector, opened with SIGUSR1 after the measurement, so the figures are not skewed by it) and
//   write DIR/idle.cpuprofile plus its top self-time functions and packages, and each sample charged to
//   the nearest attestmesh source file on its stack (through a source map of the same bundle).
// It also prints the JSON-RPC calls per second each sidecar made in the window, by method (its
// attestmesh_rpc_calls_total counter), median over the nodes.
//
// Before/after: run the same command in a checkout of the old commit and in the new one (the bench
// only drives the devnet; it measures whatever sidecar that checkout builds).
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { SourceMap } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { bundleSidecar, SIDECAR_BUNDLE } from "@attestmesh/sidecar/build/bundle.ts";
import { devnetDown } from "../src/orchestration/down.ts";
import { readHealth } from "../src/orchestration/health.ts";
import type { DevnetNode } from "../src/orchestration/state.ts";
import { devnetUp } from "../src/orchestration/up.ts";

const { values } = parseArgs({
  options: {
    nodes: { type: "string", default: "3" },
    window: { type: "string", default: "20" },
    settle: { type: "string", default: "40" },
    profile: { type: "string" },
    "profile-node": { type: "string", default: "node2" },
    keep: { type: "boolean", default: false },
  },
});
const clusterSize = Number(values.nodes);
const windowMs = Number(values.window) * 1000;
const settleMs = Number(values.settle) * 1000;
const log = (message: string) => process.stderr.write(`› ${message}\n`);
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());

interface Sample {
  readonly ticks: number;
  /** cutime + cstime: CPU of the children it waited for (e.g. `wg`, `ip netns exec` runs). */
  readonly childTicks: number;
  readonly rssKb: number;
  readonly at: number;
}

/** utime + stime of `pid` (clock ticks) and its VmRSS (kB); the comm field may hold spaces, so split after ')'. */
async function sample(pid: number): Promise<Sample> {
  const [stat, status] = await Promise.all([
    readFile(`/proc/${pid}/stat`, "utf8"),
    readFile(`/proc/${pid}/status`, "utf8"),
  ]);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the comm field: state is field 3, utime field 14, stime field 15 (man 5 proc).
  const ticks = Number(fields[14 - 3]) + Number(fields[15 - 3]);
  const childTicks = Number(fields[16 - 3]) + Number(fields[17 - 3]);
  const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? Number.NaN);
  return { ticks, childTicks, rssKb, at: performance.now() };
}

const median = (xs: readonly number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

interface NodeFigure {
  readonly name: string;
  readonly cpuPercent: number;
  readonly childCpuPercent: number;
  readonly rssMb: number;
  readonly peakRssMb: number;
}

/** CPU ticks of each thread of `pid`, summed by thread name (main thread "node", V8 workers, libuv...). */
async function threadTicks(pid: number): Promise<Map<string, number>> {
  const byName = new Map<string, number>();
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, "utf8").catch(() => undefined);
    if (stat === undefined) continue;
    const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    byName.set(name, (byName.get(name) ?? 0) + Number(fields[14 - 3]) + Number(fields[15 - 3]));
  }
  return byName;
}

/** attestmesh_rpc_calls_total by method, from the node's /metrics. */
async function rpcCalls(node: DevnetNode): Promise<Map<string, number>> {
  const text = await (await fetch(node.healthUrl.replace(/\/healthz$/, "/metrics"))).text();
  const calls = new Map<string, number>();
  for (const m of text.matchAll(/^attestmesh_rpc_calls_total\{method="([^"]+)"\} (\d+)/gm)) {
    calls.set(m[1]!, Number(m[2]));
  }
  return calls;
}

async function measure(nodes: readonly DevnetNode[], threadsOf: DevnetNode): Promise<NodeFigure[]> {
  const callsBefore = await Promise.all(nodes.map(rpcCalls));
  const threadsBefore = await threadTicks(threadsOf.sidecarPid);
  const first = await Promise.all(nodes.map((n) => sample(n.sidecarPid)));
  const peaks = first.map((s) => s.rssKb);
  const rssSums = first.map((s) => s.rssKb);
  let rssCount = 1;
  const end = performance.now() + windowMs;
  while (performance.now() < end) {
    await sleep(1000);
    const now = await Promise.all(nodes.map((n) => sample(n.sidecarPid)));
    now.forEach((s, i) => {
      peaks[i] = Math.max(peaks[i]!, s.rssKb);
      rssSums[i]! += s.rssKb;
    });
    rssCount++;
  }
  const last = await Promise.all(nodes.map((n) => sample(n.sidecarPid)));
  const threadsAfter = await threadTicks(threadsOf.sidecarPid);
  const callsAfter = await Promise.all(nodes.map(rpcCalls));
  const seconds = (last[0]!.at - first[0]!.at) / 1000;
  const methods = [...new Set(callsAfter.flatMap((c) => [...c.keys()]))].sort();
  const perSecond = (method: string) =>
    median(
      nodes.map((_, i) => ((callsAfter[i]!.get(method) ?? 0) - (callsBefore[i]!.get(method) ?? 0)) / seconds),
    );
  const rates = methods.map((m) => [m, perSecond(m)] as const).filter(([, r]) => r > 0);
  const total = median(
    nodes.map(
      (_, i) =>
        methods.reduce((n, m) => n + (callsAfter[i]!.get(m) ?? 0) - (callsBefore[i]!.get(m) ?? 0), 0) /
        seconds,
    ),
  );
  process.stdout.write(
    `JSON-RPC calls per second per sidecar (median over the nodes): ${total.toFixed(2)}\n${rates
      .map(([m, r]) => `  ${r.toFixed(2).padStart(6)}  ${m}`)
      .join("\n")}\n`,
  );
  const threads = [...threadsAfter]
    .map(
      ([name, ticks]) =>
        [name, (100 * (ticks - (threadsBefore.get(name) ?? 0))) / CLK_TCK / seconds] as const,
    )
    .sort((a, b) => b[1] - a[1])
    .map(([name, percent]) => `  ${percent.toFixed(2).padStart(6)} %  ${name}`);
  process.stdout.write(`${threadsOf.name}'s sidecar by thread (CPU of one core):\n${threads.join("\n")}\n`);
  return nodes.map((node, i) => {
    const seconds = (last[i]!.at - first[i]!.at) / 1000;
    const cpuSeconds = (last[i]!.ticks - first[i]!.ticks) / CLK_TCK;
    return {
      name: node.name,
      cpuPercent: (100 * cpuSeconds) / seconds,
      childCpuPercent: (100 * (last[i]!.childTicks - first[i]!.childTicks)) / CLK_TCK / seconds,
      rssMb: rssSums[i]! / rssCount / 1024,
      peakRssMb: peaks[i]! / 1024,
    };
  });
}

/** A minimal Chrome DevTools Protocol session over Node's built-in WebSocket client. */
async function inspect(pid: number) {
  process.kill(pid, "SIGUSR1");
  let url: string | undefined;
  for (let attempt = 0; attempt < 50 && url === undefined; attempt++) {
    await sleep(100);
    try {
      const targets = (await (await fetch("http://127.0.0.1:9229/json/list")).json()) as Array<{
        webSocketDebuggerUrl: string;
      }>;
      url = targets[0]?.webSocketDebuggerUrl;
    } catch {}
  }
  if (url === undefined) throw new Error(`the inspector of pid ${pid} did not open on 127.0.0.1:9229`);
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.addEventListener("open", resolve, { once: true });
    socket.addEventListener("error", reject, { once: true });
  });
  let next = 1;
  const pending = new Map<number, (result: unknown) => void>();
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: unknown };
    if (message.id !== undefined)
      pending.get(message.id)?.(message.error ? { error: message.error } : message.result);
  });
  const call = <T>(method: string, params: object = {}) =>
    new Promise<T>((resolve) => {
      const id = next++;
      pending.set(id, resolve as (result: unknown) => void);
      socket.send(JSON.stringify({ id, method, params }));
    });
  return { call, close: () => socket.close() };
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
  readonly hitCount: number;
  readonly children?: readonly number[];
}

/**
 * Each busy sample charged to the nearest attestmesh source file on its stack (a sample of undici or
 * V8 work that a sidecar call started shows under that file; one with no sidecar frame under the Node
 * module or V8 entry at its leaf). Needs a source map of the very bundle that ran.
 */
function attribute(profile: { nodes: ProfileNode[]; samples: number[] }, map: SourceMap): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const hits = new Map<number, number>();
  for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  const byFile = new Map<string, number>();
  for (const [id, count] of hits) {
    const leaf = byId.get(id)!.callFrame;
    if (leaf.functionName === "(idle)") continue;
    let owner: string | undefined;
    let firstNode: string | undefined;
    for (let at: number | undefined = id; at !== undefined && owner === undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      if (frame.url.endsWith(".mjs") && frame.url.includes("/sidecar/dist/")) {
        const source = map.findEntry(frame.lineNumber, frame.columnNumber ?? 0);
        const file = "originalSource" in source ? source.originalSource : "";
        const ours = /\/(sidecar|shared)\/src\/(.*)$/.exec(file);
        if (ours && !file.includes("/node_modules/")) owner = `${ours[1]}/${ours[2]}`;
      } else if (firstNode === undefined && frame.url.startsWith("node:")) firstNode = frame.url;
    }
    const key = owner ?? `(no sidecar frame) ${firstNode ?? leaf.functionName}`;
    byFile.set(key, (byFile.get(key) ?? 0) + count);
  }
  const total = profile.samples.length;
  return [...byFile]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 25)
    .map(([k, v]) => `  ${((100 * v) / total).toFixed(2).padStart(5)}%  ${k}`)
    .join("\n");
}

/**
 * A source map of the bundle the devnet runs, built again beside a copy that must be byte-identical (in a
 * directory removed once the map is read).
 */
async function bundleSourceMap(): Promise<SourceMap | undefined> {
  const dir = await mkdtemp(join(tmpdir(), "attestmesh-idle-map-"));
  try {
    await bundleSidecar({ outdir: dir, sourcemap: true });
    const copy = join(dir, "attestmesh-sidecar.mjs");
    if (!(await readFile(copy)).equals(await readFile(SIDECAR_BUNDLE))) return undefined;
    return new SourceMap(JSON.parse(await readFile(`${copy}.map`, "utf8")));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function summarise(profile: { nodes: ProfileNode[]; samples: number[] }) {
  const total = profile.samples.length;
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  for (const node of profile.nodes) {
    if (node.hitCount === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url
      .replace(/^file:\/\//, "")
      .replace(/^.*\/node_modules\/\.pnpm\/[^/]+\/node_modules\//, "");
    const fn = `${functionName || "(anonymous)"} ${where}${url ? `:${lineNumber + 1}` : ""}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + node.hitCount);
    const pkg = url.includes("/node_modules/")
      ? url.replace(/^.*\/node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+).*$/, "$1")
      : url.startsWith("node:")
        ? "node core"
        : url === ""
          ? functionName
          : url.replace(/^.*\/(sidecar|shared)\/src\/.*$/, "attestmesh $1");
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + node.hitCount);
  }
  const top = (map: Map<string, number>, n: number) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `  ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`)
      .join("\n");
  return `samples: ${total}\nby package (self time):\n${top(byPackage, 15)}\ntop functions (self time):\n${top(byFunction, 25)}\n`;
}

async function profile(node: DevnetNode, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const session = await inspect(node.sidecarPid);
  try {
    await session.call("Profiler.enable");
    await session.call("Profiler.setSamplingInterval", { interval: 1000 });
    await session.call("Profiler.start");
    await sleep(windowMs);
    const { profile } = await session.call<{ profile: { nodes: ProfileNode[]; samples: number[] } }>(
      "Profiler.stop",
    );
    await writeFile(join(dir, "idle.cpuprofile"), JSON.stringify(profile));
    const memory = await session.call<{ result: { value: unknown } }>("Runtime.evaluate", {
      expression: "JSON.stringify(process.memoryUsage())",
      returnByValue: true,
    });
    const map = await bundleSourceMap().catch(() => undefined);
    const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === "(idle)").map((n) => n.id));
    const busy = profile.samples.filter((id) => !idle.has(id)).length;
    const byFile =
      map === undefined
        ? "by attestmesh source file: (no source map of the running bundle)\n"
        : `by nearest attestmesh source file (busy ${((100 * busy) / profile.samples.length).toFixed(2)}% of samples):\n${attribute(profile, map)}\n`;
    const summary = `${summarise(profile)}${byFile}process.memoryUsage(): ${memory.result.value}\n`;
    await writeFile(join(dir, "idle-profile.txt"), summary);
    process.stdout.write(
      `\nprofile of ${node.name}'s sidecar over ${windowMs / 1000} s (${dir}):\n${summary}`,
    );
  } finally {
    session.close();
  }
}

async function main() {
  await devnetUp({ nodes: clusterSize, timeoutMs: 300_000, progress: log });
  const state = (await import("../src/orchestration/state.ts").then((m) => m.readState()))!;
  log(`healthy; letting the mesh settle for ${settleMs / 1000} s`);
  await sleep(settleMs);
  const unhealthy = (await Promise.all(state.nodes.map(readHealth))).filter((h) => !h.ok).length;
  if (unhealthy > 0) throw new Error(`${unhealthy} node(s) not healthy after settling`);
  const profiled = state.nodes.find((n) => n.name === values["profile-node"]) ?? state.nodes[0]!;
  log(`sampling ${state.nodes.length} sidecars over ${windowMs / 1000} s`);
  const figures = await measure(state.nodes, profiled);
  const lines = figures.map(
    (f) =>
      `${f.name.padEnd(7)} ${f.cpuPercent.toFixed(2).padStart(6)} % ${f.rssMb.toFixed(1).padStart(7)} MB ${f.peakRssMb.toFixed(1).padStart(7)} MB ${f.childCpuPercent.toFixed(2).padStart(6)} %`,
  );
  process.stdout.write(
    `idle cost, N = ${state.nodes.length}, ${windowMs / 1000} s window after ${settleMs / 1000} s at rest\n` +
      `node      CPU (1 core)   RSS mean  RSS peak  children CPU\n${lines.join("\n")}\n` +
      `median  ${median(figures.map((f) => f.cpuPercent))
        .toFixed(2)
        .padStart(6)} % ${median(figures.map((f) => f.rssMb))
        .toFixed(1)
        .padStart(7)} MB         ${median(figures.map((f) => f.childCpuPercent))
        .toFixed(2)
        .padStart(6)} %\n`,
  );
  if (values.profile) await profile(profiled, values.profile);
  if (!values.keep) await devnetDown(log);
}

main().catch(async (error) => {
  process.stderr.write(`${(error as Error).stack ?? error}\n`);
  if (!values.keep) await devnetDown(log).catch(() => {});
  process.exit(1);
});
