// A real `hardhat node` process (HTTP and WebSocket JSON-RPC on one port) with a cluster deployed and a
// dstack simulator for indexer keys, for tests and benches that need the node's own newHeads; indexers
// started on it; and block → push latency measured on several indexers over the same events, spaced by
// a seeded generator. Shared with devnet/bench/push-latency.ts as `@attestmesh/indexer/testing/hardhatChain.ts`.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { startDstackSimulator } from "@attestmesh/devnet/dstack-sim/server.ts";
import { createKmsRoot, createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { clusterContract, devnetClients } from "@attestmesh/devnet/orchestration/chain.ts";
import type { Rng } from "@attestmesh/devnet/rng.ts";
import { deployCluster } from "@attestmesh/scripts/deploy/cluster.ts";
import type { LogEnvelope } from "@attestmesh/shared/indexer/envelope.ts";
import { freePort, waitFor } from "@attestmesh/sidecar/testing/helpers.ts";
import { pino } from "pino";
import { type Address, createPublicClient, type Hex, hexToBytes, http } from "viem";
import { randomAppId } from "../../test/helpers/cluster.ts";
import { startHardhatNode } from "../../test/helpers/sponsorship.ts";
import { parseConfig } from "../src/config.ts";
import { type Indexer, type IndexerDeps, startIndexer } from "../src/main.ts";

export interface HardhatChain {
  readonly rpcPort: number;
  readonly cluster: Address;
  /** One owner transaction (automined: its block exists when the call returns); resolves its hash. */
  event(): Promise<Hex>;
  /** An indexer following the cluster from the head, 0 confirmations, with `env` on top. */
  indexer(env: Record<string, string>, deps?: IndexerDeps): Promise<Indexer>;
  /** Stops every indexer started, the simulator and the node. */
  stop(): Promise<void>;
}

export async function startHardhatChain(): Promise<HardhatChain> {
  const rpcPort = await freePort();
  const hardhat = await startHardhatNode(rpcPort);
  const dir = await mkdtemp(join(tmpdir(), "am-idx-chain-"));
  const indexers: Indexer[] = [];
  const stops: Array<() => Promise<void>> = [
    async () => {
      hardhat.kill("SIGTERM");
      await delay(200);
      if (hardhat.exitCode === null) hardhat.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    },
  ];
  const stop = async () => {
    for (const indexer of indexers) await indexer.stop();
    for (const s of stops.reverse()) await s();
  };
  try {
    const rpcUrl = `http://127.0.0.1:${rpcPort}`;
    const chainId = await createPublicClient({ transport: http(rpcUrl) }).getChainId();
    const clients = devnetClients(rpcUrl, chainId);
    const kmsRoot = createKmsRoot();
    const { diamond } = await deployCluster({
      wallet: clients.owner,
      client: clients.client,
      params: { owner: clients.owner.account.address, meshCidr: "10.79.0.0/16", kmsRoots: [kmsRoot.address] },
    });
    const owner = clusterContract(clients, diamond);
    const socketPath = join(dir, "indexer.sock");
    const sim = await startDstackSimulator({
      socketPath,
      cvm: createSimulatedCvm({ kmsRoot, appId: hexToBytes(randomAppId()) }),
      logger: pino({ level: "silent" }),
    });
    stops.push(() => sim.close());
    return {
      rpcPort,
      cluster: diamond,
      event: () => owner.write.addAppId([randomAppId()]),
      async indexer(env, deps = {}) {
        const indexer = await startIndexer(
          parseConfig({
            ATTESTMESH_INDEXER_RPC_URL: rpcUrl,
            ATTESTMESH_INDEXER_CLUSTERS: diamond,
            ATTESTMESH_INDEXER_CONFIRMATIONS: "0",
            ATTESTMESH_INDEXER_HOST: "127.0.0.1",
            ATTESTMESH_INDEXER_PORT: "0",
            DSTACK_SIMULATOR_ENDPOINT: socketPath,
            ...env,
          }),
          { logger: pino({ level: "silent" }), ...deps },
        );
        indexers.push(indexer);
        return indexer;
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Milliseconds from each of `count` events' blocks to its envelope being published to subscribers, per
 * indexer (all watch the same events). Each event waits for the last indexer's push, then 100–1100 ms
 * drawn from `rng`, so events land anywhere in a poll interval of up to 1 s instead of a fixed phase
 * after the slowest poller's step; a seed names the schedule of gaps.
 */
export async function pushLatencies(
  chain: HardhatChain,
  indexers: readonly Indexer[],
  count: number,
  rng: Pick<Rng, "int">,
): Promise<number[][]> {
  const published = indexers.map(() => new Map<string, number>());
  const offs = indexers.map((indexer, i) => {
    const stream = indexer.streams.get(chain.cluster.toLowerCase())!;
    return stream.onPublish(() => {
      for (let s = stream.firstSeq(); s <= stream.lastSeq(); s++) {
        const e = stream.get(s)!.envelope as LogEnvelope;
        if (!published[i]!.has(e.txHash)) published[i]!.set(e.txHash, performance.now());
      }
    });
  });
  const latencies = indexers.map((): number[] => []);
  try {
    for (let n = 0; n < count; n++) {
      const hash = await chain.event();
      const mined = performance.now();
      for (const [i, seen] of published.entries()) {
        const at = await waitFor("the push", () => seen.get(hash), 15_000, 5);
        latencies[i]!.push(Math.max(0, at - mined));
      }
      await delay(rng.int(100, 1_100));
    }
  } finally {
    for (const off of offs) off();
  }
  return latencies;
}

export const median = (xs: readonly number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
