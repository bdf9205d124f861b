// Convergence benchmark on the devnet, polling only: the time from a new member's registration block
// (seen by watching the chain every 50 ms) until every existing node has the new peer configured AND
// handshaken (read from `wg show` in each namespace every 100 ms). Median and max of --trials joins.
//
//   node devnet/bench/convergence.ts --nodes 3 --trials 5     (root; tears the devnet down at the end)
//   add --no-indexer for polling only (no indexer pushes)
import { setTimeout as sleep } from "node:timers/promises";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { type Address, getAbiItem, hexToBytes } from "viem";
import { evictApp } from "../src/orchestration/chain.ts";
import { devnetDown } from "../src/orchestration/down.ts";
import { latestHandshakes } from "../src/orchestration/netns.ts";
import type { DevnetNode } from "../src/orchestration/state.ts";
import { addNodeToState, removeNodeFromState } from "../src/orchestration/up.ts";
import { benchDevnet, benchOptions, log, runDevnetBench } from "./harness.ts";

const values = benchOptions({ nodes: "3", trials: "5", "no-indexer": false });
const clusterSize = Number(values.nodes);
const trials = Number(values.trials);

const peersOf = (node: DevnetNode) => latestHandshakes(node.netns, node.wgInterface);

const registered = getAbiItem({ abi: clusterAbi, name: "MemberRegistered" });

async function main() {
  const withIndexer = !values["no-indexer"];
  let { state, clients } = await benchDevnet({
    nodes: clusterSize - 1,
    timeoutMs: 240_000,
    indexer: withIndexer,
  });
  const existing = [...state.nodes];
  const samples: number[] = [];
  /** Until every existing node has the peer configured (the part a push can speed up), before the handshake. */
  const configuredSamples: number[] = [];
  for (let trial = 1; trial <= trials; trial++) {
    const fromBlock = await clients.client.getBlockNumber();
    state = await addNodeToState(clients, state, 100 + trial);
    const joining = state.nodes.at(-1)!;
    let seenAt = 0;
    let wgKey = "";
    while (!seenAt) {
      const logs = await clients.client.getLogs({ address: state.diamond, event: registered, fromBlock });
      const mine = logs.find((l) => l.args.appId?.toLowerCase() === joining.appId.toLowerCase());
      if (mine) {
        seenAt = performance.now();
        wgKey = Buffer.from(hexToBytes(mine.args.wireguardKey!)).toString("base64");
      } else await sleep(50);
    }
    let configuredMs: number | undefined;
    for (;;) {
      const views = await Promise.all(existing.map(peersOf));
      if (configuredMs === undefined && views.every((v) => v.has(wgKey)))
        configuredMs = performance.now() - seenAt;
      if (views.every((v) => (v.get(wgKey) ?? 0) > 0)) break;
      if (performance.now() - seenAt > 60_000) throw new Error("no convergence within 60 s");
      await sleep(100);
    }
    const ms = performance.now() - seenAt;
    samples.push(ms);
    configuredSamples.push(configuredMs ?? ms);
    log(
      `trial ${trial}: ${ms.toFixed(0)} ms (peer configured everywhere after ${(configuredMs ?? ms).toFixed(0)} ms)`,
    );
    await evictApp(clients, state.diamond, joining.appId as Address, 1);
    state = await removeNodeFromState(state, joining);
    for (;;) {
      const views = await Promise.all(existing.map(peersOf));
      if (views.every((v) => !v.has(wgKey))) break;
      await sleep(100);
    }
  }
  await devnetDown(log);
  const stats = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return `${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} | ${sorted.at(-1)!.toFixed(0)}`;
  };
  process.stdout.write(
    `| mode | N (after join) | trials | handshaken: median ms | max ms | configured: median ms | max ms | handshaken samples ms |\n|---|---:|---:|---:|---:|---:|---:|---|\n| ${withIndexer ? "push + polling" : "polling only"} | ${clusterSize} | ${trials} | ${stats(samples)} | ${stats(configuredSamples)} | ${samples.map((s) => s.toFixed(0)).join(", ")} |\n`,
  );
}

await runDevnetBench("convergence", main);
