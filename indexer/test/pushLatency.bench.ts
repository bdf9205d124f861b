// Block → push latency of the indexer, polling alone against woken by new heads, side by side: four
// indexers on one real `hardhat node` watch the same events (poll 250 ms and 1000 ms, each with and
// without ATTESTMESH_INDEXER_WS_URL) and the median and p90 of each are printed.
//   node scripts/bootstrap/toolchain.mjs run -- node indexer/test/pushLatency.bench.ts [events]
import { median, pushLatencies, startHardhatChain } from "./hardhatChain.ts";

const events = Number(process.argv[2] ?? 20);
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
  const latencies = await pushLatencies(chain, indexers, events);
  const p90 = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)]!;
  process.stdout.write(`block → push over ${events} blocks (ms)\n`);
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
