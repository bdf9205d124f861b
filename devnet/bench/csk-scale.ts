// CSK rotation at scale: N members running the sidecar's real liveness code and real CSK custody code
// (csk/manager.ts, client.ts, server.ts, holder.ts, standing.ts, the dstack-simulated key derivation) in
// one process over a simulated network with seeded loss and delay (devnet/src/sim/csk.ts). For each N,
// --rotations epochs open one after another on the modelled chain; each is committed by the rank-0
// member and pulled by every other member. Prints the time from the commitment landing on chain until
// every member holds the key (median and worst over the rotations), the pull traffic, and how the
// requests spread over the members that answer them.
//
//   node devnet/bench/csk-scale.ts [--members 10,100,1000] [--rotations 5] [--seed 1] [--loss 0]
//                                  [--read-ms 100] [--write-ms 2000] [--hardhat]
//
// --hardhat registers the N members on an in-process Hardhat chain first (devnet/src/sim/onchain.ts) and
// runs the members on the records the sidecar's reader reads back and the keys their CVMs derived.
//
// Modelled: the chain's CSK state (a read answers after --read-ms, a commitment or confirmation lands
// --write-ms after it is sent). Real: everything a member runs between its chain reads.
import { parseArgs } from "node:util";
import { runCskScale } from "../src/sim/cskScale.ts";
import { median } from "../src/sim/liveness.ts";

const { values } = parseArgs({
  options: {
    members: { type: "string", default: "10,100,1000" },
    rotations: { type: "string", default: "5" },
    seed: { type: "string", default: "1" },
    loss: { type: "string", default: "0" },
    "read-ms": { type: "string", default: "100" },
    "write-ms": { type: "string", default: "2000" },
    hardhat: { type: "boolean", default: false },
    quiet: { type: "boolean", default: false },
  },
});

function positiveInteger(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1)
    throw new Error(`${flag} must be a positive integer, not ${text}`);
  return value;
}
const sizes = values.members.split(",").map((s) => positiveInteger("--members", s));
const rotations = positiveInteger("--rotations", values.rotations);
const loss = Number(values.loss);
if (!(loss >= 0 && loss < 1)) throw new Error(`--loss must be in [0, 1), not ${values.loss}`);
const readMs = Number(values["read-ms"]);
const writeMs = Number(values["write-ms"]);
if (!(readMs >= 0) || !(writeMs >= 0)) throw new Error("--read-ms and --write-ms must be ≥ 0");

/** --hardhat: N members registered on an in-process Hardhat chain, read back by the sidecar's reader. */
async function registered(n: number) {
  const { registerOnchain } = await import("../src/sim/onchain.ts");
  return registerOnchain(n, (line) => process.stderr.write(`N=${n}: ${line}\n`));
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const rows: string[] = [];
const started = performance.now();
for (const n of sizes) {
  const onchain = values.hardhat ? await registered(n) : undefined;
  const r = await runCskScale({
    ...(onchain === undefined ? {} : { onchain }),
    members: n,
    seed: Number(values.seed),
    rotations,
    loss,
    chain: { readMs, writeMs },
    ...(values.quiet ? {} : { progress: (line: string) => process.stderr.write(`${line}\n`) }),
  });
  const half = r.rotations.map((x) => x.heldAfterMs[Math.floor((x.heldAfterMs.length - 1) / 2)] ?? 0);
  const perMember = (f: (x: (typeof r.rotations)[number]) => number) =>
    median(r.rotations.map((x) => f(x) / n));
  await onchain?.close();
  rows.push(
    `| ${n} | ${s(r.medianMs)} (max ${s(r.maxMs)}) | ${s(median(half))} | ${s(median(r.rotations.map((x) => x.openToCommitMs)))} | ${perMember((x) => x.requests).toFixed(1)} | ${median(r.rotations.map((x) => x.maxAnsweredByOne))} | ${median(r.rotations.map((x) => x.bytesPerMember)).toFixed(0)} | ${(r.wallMs / 1000).toFixed(0)} s |`,
  );
}
process.stdout.write(
  [
    `CSK rotation at scale (${values.hardhat ? "members registered on Hardhat, " : ""}seed ${values.seed}, ${rotations} rotations, loss ${loss * 100} %, chain read ${readMs} ms, write ${writeMs} ms, CSK tick 1 s)`,
    "",
    "| N | commitment → every member holds it, median (max) | half the members hold it | epoch opened → commitment | requests per member | most requests answered by one member | CSK bytes per member (sent + received) | run time |",
    "|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
    `total ${((performance.now() - started) / 1000).toFixed(0)} s`,
    "",
  ].join("\n"),
);
