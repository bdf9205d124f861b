// CSK and heartbeat figures on the devnet (real WireGuard in namespaces; root, under the netns lock):
//   acquisition  a node joins; time from its WireGuard interface coming up to the CSK held (both read
//                from the joining sidecar's own log timestamps), median of --trials joins
//   rotation     that node is then evicted; time from the eviction transaction to every remaining node
//                holding the new epoch's CSK (each /healthz polled every 50 ms); N = cluster size
//                before the eviction (--nodes + 1)
//   bandwidth    finally one more node joins and stays (N = --nodes + 1); heartbeat bytes each node
//                sends and receives per second over --window seconds (attestmesh_mesh_bytes_total)
//
//   flock /tmp/attestmesh-netns.lock node devnet/bench/csk.ts --nodes 2 --trials 10
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Address } from "viem";
import { currentCsk, evictApp } from "../src/orchestration/chain.ts";
import { devnetDown } from "../src/orchestration/down.ts";
import { readHealth } from "../src/orchestration/health.ts";
import type { DevnetNode } from "../src/orchestration/state.ts";
import { addNodeToState, removeNodeFromState, waitHealthy } from "../src/orchestration/up.ts";
import { benchDevnet, benchOptions, log, runDevnetBench } from "./harness.ts";

const values = benchOptions({ nodes: "2", trials: "10", window: "20" });
const existingCount = Number(values.nodes);
const trials = Number(values.trials);
const windowSeconds = Number(values.window);

interface LogLine {
  time: number;
  msg: string;
}

async function logLines(node: DevnetNode): Promise<LogLine[]> {
  const text = await readFile(join(node.logDir, "sidecar.log"), "utf8");
  return text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as LogLine);
}

async function until<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 120_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function metric(node: DevnetNode, labels: string): Promise<number> {
  const res = await fetch(node.healthUrl.replace("/healthz", "/metrics"));
  const line = (await res.text())
    .split("\n")
    .find((l) => l.startsWith(`attestmesh_mesh_bytes_total{${labels}}`));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

const stats = (samples: number[]) => {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    median: sorted[Math.floor(sorted.length / 2)] ?? Number.NaN,
    max: sorted.at(-1) ?? Number.NaN,
    list: samples.map((s) => s.toFixed(0)).join(", "),
  };
};

async function main() {
  let { state, clients } = await benchDevnet({ nodes: existingCount, timeoutMs: 300_000 });
  const existing = [...state.nodes];
  const acquisition: number[] = [];
  const rotation: number[] = [];
  for (let trial = 1; trial <= trials; trial++) {
    state = await addNodeToState(clients, state, 100 + trial);
    const joining = state.nodes.at(-1)!;
    await until("the joining node to hold the CSK", async () =>
      (await readHealth(joining)).health?.cskAcquired ? true : undefined,
    );
    const lines = await logLines(joining);
    const up = lines.find((l) => l.msg === "WireGuard interface up");
    const got = lines.find((l) => l.msg === "CSK acquired from a peer; hash matches the chain");
    if (up === undefined || got === undefined)
      throw new Error(`trial ${trial}: log lines missing in ${joining.logDir}`);
    acquisition.push(got.time - up.time);

    const { epoch: epochBefore } = await currentCsk(clients, state.diamond);
    const evictedAt = performance.now();
    await evictApp(clients, state.diamond, joining.appId as Address, 1);
    await until(
      "every remaining node to hold the new epoch",
      async () => {
        const healths = await Promise.all(existing.map(readHealth));
        const next = (epochBefore + 1n).toString();
        return healths.every((h) => h.health?.cskEpoch === next && h.health.cskAcquired === true)
          ? true
          : undefined;
      },
      120_000,
    );
    rotation.push(performance.now() - evictedAt);
    log(`trial ${trial}: acquisition ${acquisition.at(-1)} ms, rotation ${rotation.at(-1)!.toFixed(0)} ms`);
    state = await removeNodeFromState(state, joining);
  }

  state = await addNodeToState(clients, state, 200);
  await waitHealthy(state, state.nodes, 180_000, log);
  log(`measuring liveness bandwidth at N = ${state.nodes.length} over ${windowSeconds} s`);
  const read = () =>
    Promise.all(
      state.nodes.map(async (n) => ({
        sent: await metric(n, 'direction="sent",type="liveness"'),
        received: await metric(n, 'direction="received",type="liveness"'),
      })),
    );
  const start = await read();
  const began = performance.now();
  await sleep(windowSeconds * 1000);
  const end = await read();
  const seconds = (performance.now() - began) / 1000;
  const sent = end.map((e, i) => (e.sent - start[i]!.sent) / seconds);
  const received = end.map((e, i) => (e.received - start[i]!.received) / seconds);
  await devnetDown(log);

  const a = stats(acquisition);
  const r = stats(rotation);
  const n = existingCount + 1;
  process.stdout.write(
    [
      "| figure | N | trials | median ms | max ms | samples ms |",
      "|---|---:|---:|---:|---:|---|",
      `| CSK acquisition (interface up → CSK held) | ${n} | ${trials} | ${a.median.toFixed(0)} | ${a.max.toFixed(0)} | ${a.list} |`,
      `| rotation (eviction tx → all remaining hold the new epoch) | ${n} → ${n - 1} | ${trials} | ${r.median.toFixed(0)} | ${r.max.toFixed(0)} | ${r.list} |`,
      "",
      `liveness bandwidth at N = ${state.nodes.length} (UDP payload, per node): sent ${stats(sent).median.toFixed(0)} B/s median (max ${stats(sent).max.toFixed(0)}), received ${stats(received).median.toFixed(0)} B/s median (max ${stats(received).max.toFixed(0)})`,
      "",
    ].join("\n"),
  );
}

await runDevnetBench("csk", main);
