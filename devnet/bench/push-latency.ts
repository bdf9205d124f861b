// Block → push latency of the indexer, polling alone against woken by new heads, side by side: four
// indexers on one real `hardhat node` watch the same events (poll 250 ms and 1000 ms, each with and
// without ATTESTMESH_INDEXER_WS_URL) and the median, p90 and max of each are printed. The gaps between
// events are drawn from --seed (indexer/test/hardhatChain.ts, `pushLatencies`); the short version in the
// suite is the first Hardhat test of indexer/test/heads.test.ts (6 events, one indexer, seed 1).
//
//   flock /tmp/attestmesh-devnet.lock node devnet/bench/push-latency.ts [--events 20] [--seed 1]
import { median, pushLatencies, startHardhatChain } from "@attestmesh/indexer/testing/hardhatChain.ts";
import { seededRng } from "../src/rng.ts";
import { benchOptions, integerOption, log } from "./harness.ts";

const values = benchOptions({ events: "20", seed: "1" });
const events = integerOption("--events", values.events);
const seed = integerOption("--seed", values.seed, 0);

log("starting a hardhat node and the cluster");
const chain = await startHardhatChain();
try {
  const modes = [250, 1000].flatMap((pollMs) => [
    { name: `poll ${pollMs} ms`, pollMs, heads: false },
    { name: `newHeads + poll ${pollMs} ms`, pollMs, heads: true },
  ]);
  const indexers = [];
  for (const { pollMs, heads } of modes) {
    indexers.push(
      await chain.indexer({
        ATTESTMESH_INDEXER_POLL_INTERVAL_MS: String(pollMs),
        ...(heads ? { ATTESTMESH_INDEXER_WS_URL: `ws://127.0.0.1:${chain.rpcPort}` } : {}),
      }),
    );
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000)); // subscriptions up
  log(`${events} events, seed ${seed}`);
  const latencies = await pushLatencies(chain, indexers, events, seededRng(seed));
  const p90 = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)]!;
  process.stdout.write(`block → push over ${events} blocks, seed ${seed} (ms)\n`);
  for (const [i, { name }] of modes.entries()) {
    const xs = latencies[i]!;
    process.stdout.write(
      `${name.padEnd(24)} median ${median(xs).toFixed(0).padStart(5)}   p90 ${p90(xs).toFixed(0).padStart(5)}   max ${Math.max(
        ...xs,
      )
        .toFixed(0)
        .padStart(5)}\n`,
    );
  }
} finally {
  await chain.stop();
}
