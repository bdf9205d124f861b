// CSK rotation at scale: N members running the sidecar's real liveness code and real CSK custody code
// (csk/manager.ts, client.ts, server.ts, holder.ts, standing.ts, the dstack-simulated key derivation) in
// one process over a simulated network with seeded loss and delay (devnet/src/sim/csk.ts), against a
// real Hardhat node holding the N registered members (devnet/src/sim/onchain.ts, hardhatChain.ts): each
// member reads the epoch and commits or confirms through the sidecar's own chain code (csk/chain.ts, the
// quorum reads, the gas-key writer) against the deployed contract, a block mined every --block-ms of
// simulated time, every JSON-RPC answer --rpc-ms after its request. For each N, --rotations epochs open
// one after another (the owner's `openCskEpoch`); each is committed by the rank-0 member and pulled by
// every other member. Prints the time from the block holding the commitment until every member holds
// the key (median and worst over the rotations), the pull traffic, how the requests spread over the
// members that answer them, the chain requests, and how long the set-up took.
//
//   node devnet/bench/csk-scale.ts [--members 10,100,1000] [--rotations 5] [--seed 1] [--loss 0]
//                                  [--block-ms 2000] [--rpc-ms 50] [--poll-ms 1000]
//                                  [--modelled [--read-ms 100] [--write-ms 2000] [--hardhat]]
//
// --modelled runs the chain's CSK state as a model instead (a read answers after --read-ms, a commitment
// or confirmation lands --write-ms after it is sent; the contract's checks are not run), on synthetic
// members, or with --hardhat on members registered on Hardhat and read back (only the records are used).
import { runCskScale } from "../src/sim/cskScale.ts";
import { median } from "../src/sim/liveness.ts";
import { benchOptions, integerOption } from "./harness.ts";

const values = benchOptions({
  members: "10,100,1000",
  rotations: "5",
  seed: "1",
  loss: "0",
  "read-ms": "100",
  "write-ms": "2000",
  hardhat: false,
  modelled: false,
  "block-ms": "2000",
  "rpc-ms": "50",
  "poll-ms": "1000",
  quiet: false,
});
const sizes = values.members.split(",").map((s) => integerOption("--members", s));
const rotations = integerOption("--rotations", values.rotations);
const loss = Number(values.loss);
if (!(loss >= 0 && loss < 1)) throw new Error(`--loss must be in [0, 1), not ${values.loss}`);
const readMs = Number(values["read-ms"]);
const writeMs = Number(values["write-ms"]);
if (!(readMs >= 0) || !(writeMs >= 0)) throw new Error("--read-ms and --write-ms must be ≥ 0");
const blockMs = integerOption("--block-ms", values["block-ms"]);
const rpcMs = Number(values["rpc-ms"]);
const pollMs = Number(values["poll-ms"]);
if (!(rpcMs >= 0) || !(pollMs >= 0)) throw new Error("--rpc-ms and --poll-ms must be ≥ 0");
const realChain = !values.modelled;
if (realChain && values.hardhat)
  throw new Error("--hardhat goes with --modelled (the real chain always registers)");

/** N members registered on an in-process Hardhat chain, read back by the sidecar's reader. */
async function registered(n: number) {
  const { registerOnchain } = await import("../src/sim/onchain.ts");
  return registerOnchain(n, (line) => process.stderr.write(`N=${n}: ${line}\n`));
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const rows: string[] = [];
const setups: string[] = [];
const started = performance.now();
for (const n of sizes) {
  const onchain = realChain || values.hardhat ? await registered(n) : undefined;
  const r = await runCskScale({
    ...(onchain === undefined ? {} : { onchain }),
    members: n,
    seed: Number(values.seed),
    rotations,
    loss,
    chain: { readMs, writeMs },
    ...(realChain ? { realChain: { blockMs, rpcMs, pollMs } } : {}),
    ...(values.quiet ? {} : { progress: (line: string) => process.stderr.write(`${line}\n`) }),
  });
  const half = r.rotations.map((x) => x.heldAfterMs[Math.floor((x.heldAfterMs.length - 1) / 2)] ?? 0);
  const perMember = (f: (x: (typeof r.rotations)[number]) => number) =>
    median(r.rotations.map((x) => f(x) / n));
  await onchain?.close();
  rows.push(
    `| ${n} | ${s(r.medianMs)} (max ${s(r.maxMs)}) | ${s(median(half))} | ${s(median(r.rotations.map((x) => x.openToCommitMs)))} | ${perMember((x) => x.requests).toFixed(1)} | ${median(r.rotations.map((x) => x.maxAnsweredByOne))} | ${median(r.rotations.map((x) => x.bytesPerMember)).toFixed(0)} | ${(r.wallMs / 1000).toFixed(0)} s |`,
  );
  if (onchain !== undefined)
    setups.push(
      `| ${n} | ${s(onchain.keysMs)} | ${s(onchain.registerMs)} | ${s(onchain.readMs)} | ${r.chain === undefined ? "-" : `${r.chain.requests} (${r.chain.blocks} blocks, ${r.chain.transactions} transactions)`} |`,
    );
}
const chainText = realChain
  ? `members registered on Hardhat, the CSK contract and the sidecar's chain code, a block every ${blockMs} ms, JSON-RPC ${rpcMs} ms, receipt poll ${pollMs} ms`
  : `${values.hardhat ? "members registered on Hardhat, " : ""}modelled chain: read ${readMs} ms, write ${writeMs} ms`;
process.stdout.write(
  [
    `CSK rotation at scale (${chainText}; seed ${values.seed}, ${rotations} rotations, loss ${loss * 100} %, CSK tick 1 s)`,
    "",
    "| N | commitment → every member holds it, median (max) | half the members hold it | epoch opened → commitment | requests per member | most requests answered by one member | CSK bytes per member (sent + received) | run time |",
    "|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
    ...(setups.length === 0
      ? []
      : [
          "| N | CVM keys and registration signatures | allow + register transactions | records read back | members' JSON-RPC requests during the run |",
          "|---|---|---|---|---|",
          ...setups,
          "",
        ]),
    `total ${((performance.now() - started) / 1000).toFixed(0)} s`,
    "",
  ].join("\n"),
);
