// Indexer fan-out: one event to N subscribers on this machine, each a real WebSocket authenticated by
// its own member key (N members registered on an in-process Hardhat network). Reports the time from
// the publishing follow step until the last subscriber has the envelope, median and max of --trials.
//
//   node devnet/bench/fanout.ts --subscribers 1000 --trials 5
import { rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseConfig } from "@attestmesh/indexer/config.ts";
import { startIndexer } from "@attestmesh/indexer/main.ts";
import { parseFrame, subscribeTypedData } from "@attestmesh/shared/indexer/protocol.ts";
import { pino } from "pino";
import { custom, type Hex, hexToBytes } from "viem";
import { admit, randomAppId, setupCluster, simulatedNode } from "../../test/helpers/cluster.ts";
import { startDstackSimulator } from "../src/dstack-sim/server.ts";
import { createSimulatedCvm } from "../src/dstack-sim/simulator.ts";

const { values } = parseArgs({
  options: { subscribers: { type: "string", default: "1000" }, trials: { type: "string", default: "5" } },
});
const count = Number(values.subscribers);
const trials = Number(values.trials);
const log = (message: string) => process.stderr.write(`› ${message}\n`);
const silent = pino({ level: "silent" });

const fx = await setupCluster();
const dir = await mkdtemp(join(tmpdir(), "am-fanout-"));
// Removed however the run ends, a failed trial included.
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
const sim = await startDstackSimulator({
  socketPath: join(dir, "indexer.sock"),
  cvm: createSimulatedCvm({ kmsRoot: fx.kmsRoot, appId: hexToBytes(randomAppId()) }),
  logger: silent,
});
log(`registering ${count} members`);
const members = [];
for (let i = 0; i < count; i++) {
  const node = simulatedNode(fx.kmsRoot);
  members.push({ node, id: await admit(fx, node) });
  if ((i + 1) % 100 === 0) log(`${i + 1} members`);
}
const provider = fx.connection.provider;
const indexer = await startIndexer(
  parseConfig({
    ATTESTMESH_INDEXER_RPC_URL: "http://unused.invalid",
    ATTESTMESH_INDEXER_CLUSTERS: fx.deployed.diamond,
    ATTESTMESH_INDEXER_CONFIRMATIONS: "0",
    ATTESTMESH_INDEXER_POLL_INTERVAL_MS: "3600000",
    ATTESTMESH_INDEXER_HOST: "127.0.0.1",
    ATTESTMESH_INDEXER_PORT: "0",
    DSTACK_SIMULATOR_ENDPOINT: join(dir, "indexer.sock"),
  }),
  {
    logger: silent,
    transport: custom({
      request: (args: { method: string; params?: unknown }) => provider.request(args as never),
    }),
  },
);

const { default: WebSocket } = await import("ws");
/** Per trial: when each subscriber received the trial's log envelope. */
let received: number[] = [];
let expectSeq = "";
log(`connecting ${count} subscribers`);
const sockets = await Promise.all(
  members.map(
    ({ node, id }) =>
      new Promise<InstanceType<typeof WebSocket>>((resolve, reject) => {
        const ws = new WebSocket(indexer.url);
        ws.on("error", reject);
        ws.on("message", (data) => {
          const message = parseFrame(data);
          if (message?.type === "challenge") {
            void node.memberAccount
              .signTypedData(
                subscribeTypedData({
                  chainId: fx.chainId,
                  cluster: fx.deployed.diamond,
                  memberId: id,
                  challenge: message.challenge as Hex,
                  signingKey: message.signingKey as Hex,
                  cursor: "",
                }),
              )
              .then((signature) =>
                ws.send(
                  JSON.stringify({
                    type: "subscribe",
                    cluster: fx.deployed.diamond,
                    memberId: id.toString(),
                    signature,
                  }),
                ),
              );
          } else if (message?.type === "envelope") {
            const envelope = message.envelope as { kind: string; seq: string };
            if (envelope.kind === "hello") resolve(ws);
            else if (envelope.seq === expectSeq) {
              received.push(performance.now());
              ws.send(JSON.stringify({ type: "ack", seq: envelope.seq }));
            }
          }
        });
      }),
  ),
);
log(`${sockets.length} subscribers authenticated (${indexer.subscriberCount()} sessions)`);

const samples: number[] = [];
for (let trial = 1; trial <= trials; trial++) {
  const hash = await fx.owner.write.addAppId([randomAppId()]);
  await fx.publicClient.waitForTransactionReceipt({ hash });
  received = [];
  const stream = indexer.streams.get(fx.deployed.diamond.toLowerCase())!;
  expectSeq = (stream.lastSeq() + 1n).toString();
  const start = performance.now();
  await indexer.tick();
  const deadline = Date.now() + 60_000;
  while (received.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  if (received.length < count) throw new Error(`only ${received.length} of ${count} received the event`);
  const ms = Math.max(...received) - start;
  samples.push(ms);
  log(
    `trial ${trial}: last of ${count} after ${ms.toFixed(1)} ms (first after ${(Math.min(...received) - start).toFixed(1)} ms)`,
  );
}

for (const ws of sockets) ws.terminate();
await indexer.stop();
await sim.close();
const sorted = [...samples].sort((a, b) => a - b);
process.stdout.write(
  `| subscribers | trials | median ms | max ms | samples ms |\n|---:|---:|---:|---:|---|\n| ${count} | ${trials} | ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} | ${sorted.at(-1)!.toFixed(1)} | ${samples.map((s) => s.toFixed(1)).join(", ")} |\n`,
);
process.exit(0);
