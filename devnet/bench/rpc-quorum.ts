// RPC calls per CSK request, before and after the quorum: the CSK server's one chain read per request
// (the requester's member record, `ClusterReader.member`) and the CSK manager's epoch read
// (`CskChain.current`), each through n counted providers over one in-process Hardhat chain. n = 1 is
// the single-RPC path (one agreed block costs eth_blockNumber + eth_getBlockByNumber on top of the
// read); n = 3 is the devnet's quorum of 2. Member count does not change these (one record per read).
//
//   node devnet/bench/rpc-quorum.ts [--members 8]
import { parseArgs } from "node:util";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { majority } from "@attestmesh/shared/service/rpcProviders.ts";
import { createClusterReader } from "@attestmesh/sidecar/chain/cluster.ts";
import { createChainReads } from "@attestmesh/sidecar/chain/reads.ts";
import { countingTransport, createRpcTally } from "@attestmesh/sidecar/chain/transport.ts";
import { pino } from "pino";
import { custom } from "viem";
import { admit, setupCluster, simulatedNode } from "../../test/helpers/cluster.ts";

const { values } = parseArgs({ options: { members: { type: "string", default: "8" } } });
const members = Number(values.members);
const fx = await setupCluster();
const ids: bigint[] = [];
for (let i = 0; i < members; i++) ids.push(await admit(fx, simulatedNode(fx.kmsRoot)));
const logger = pino({ level: "silent" });

const rows: string[] = [];
for (const n of [1, 3]) {
  const tally = createRpcTally();
  const reads = createChainReads({
    endpoints: Array.from({ length: n }, (_, i) => ({
      origin: `provider-${i}`,
      transport: countingTransport(custom(fx.connection.provider, { retryCount: 0 }), tally.record),
    })),
    quorum: majority(n),
    logger,
  });
  const reader = createClusterReader(reads, fx.deployed.diamond);
  tally.reset();
  await reader.member(ids[0]!);
  const lookup = { total: tally.total(), byMethod: tally.byMethod() };
  tally.reset();
  const at = await reads.agreedBlock(0);
  await Promise.all([
    reads.readContract({ address: fx.deployed.diamond, abi: clusterAbi, functionName: "currentCsk", at }),
    reads.readContract({ address: fx.deployed.diamond, abi: clusterAbi, functionName: "cskRecovery", at }),
  ]);
  const epoch = { total: tally.total(), byMethod: tally.byMethod() };
  const fmt = (t: { total: number; byMethod: Readonly<Record<string, number>> }) =>
    `${t.total} (${Object.entries(t.byMethod)
      .map(([m, c]) => `${m} ×${c}`)
      .join(", ")})`;
  rows.push(`| ${n} | ${majority(n)} | ${fmt(lookup)} | ${fmt(epoch)} |`);
}
process.stdout.write(
  [
    `## RPC calls per CSK request (${members} members on chain)`,
    "",
    "| Providers | Quorum | Requester lookup (`member(id)` at the agreed head) | Epoch read (`currentCsk` + `cskRecovery`) |",
    "|---:|---:|---|---|",
    ...rows,
    "",
  ].join("\n"),
);
await fx.connection.close();
process.exit(0);
