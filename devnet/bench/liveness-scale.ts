// Liveness at scale: N members running the sidecar's real liveness code (heartbeat/swim.ts, libsodium
// signatures, the member directory) in one process over a simulated network with seeded loss and delay
// (devnet/src/sim/liveness.ts). For each N it prints per-member liveness traffic (UDP payload, sent +
// received) and CPU at steady state, the time until every member sees a new member live, the time from a
// CSK commitment until every member holds the key (the real CSK code, devnet/src/sim/csk.ts), the time until
// every member sees a killed member dead (median and worst of --kills), and the false suspicions and
// false "dead" verdicts during --loss-window-s of 1 % and of 5 % packet loss.
//
//   node devnet/bench/liveness-scale.ts [--members 10,100,1000] [--seed 1] [--kills 3] [--loss-window-s 60]
//                                       [--steady-s 30] [--loss 0.01,0.05]
//
// The chain is represented by the member records the sidecar's directory reads (no Hardhat node):
// the directory, not the chain client, is what liveness consults.
import { parseArgs } from "node:util";
import { median, runScale } from "../src/sim/liveness.ts";

const { values } = parseArgs({
  options: {
    members: { type: "string", default: "10,100,1000" },
    seed: { type: "string", default: "1" },
    kills: { type: "string", default: "3" },
    "loss-window-s": { type: "string", default: "60" },
    "steady-s": { type: "string", default: "30" },
    loss: { type: "string", default: "0.01,0.05" },
    quiet: { type: "boolean", default: false },
  },
});

const sizes = values.members.split(",").map((s) => Number.parseInt(s, 10));
const rows: string[] = [];
const started = performance.now();
for (const n of sizes) {
  const t0 = performance.now();
  const r = await runScale({
    members: n,
    seed: Number(values.seed),
    kills: Number(values.kills),
    lossWindowMs: Number(values["loss-window-s"]) * 1000,
    steadyMs: Number(values["steady-s"]) * 1000,
    lossRates: values.loss.split(",").map(Number),
    ...(values.quiet ? {} : { progress: (line: string) => process.stderr.write(`${line}\n`) }),
  });
  const loss = (rate: number) => {
    const l = r.loss.find((x) => x.rate === rate);
    return l === undefined ? "-" : `${l.suspicions} / ${l.falseDead}`;
  };
  rows.push(
    `| ${n} | ${r.bytesPerSecond.toFixed(0)} (max ${r.maxBytesPerSecond.toFixed(0)}) | ${(r.cpuShare * 100).toFixed(3)} % | ${(r.joinMs / 1000).toFixed(1)} s | ${(r.rotationMs / 1000).toFixed(1)} s | ${(median(r.deadMs) / 1000).toFixed(1)} s (max ${(Math.max(...r.deadMs) / 1000).toFixed(1)} s) | ${loss(0.01)} | ${loss(0.05)} | ${((performance.now() - t0) / 1000).toFixed(0)} s |`,
  );
}
process.stdout.write(
  [
    `Liveness at scale (seed ${values.seed}, ${values.kills} kills, ${values["loss-window-s"]} s per loss rate, probe period 1 s, suspicion 4 s)`,
    "",
    "| N | bytes/s per member (sent + received) | CPU per member | new member live everywhere | rotated CSK held everywhere | killed member dead everywhere (median) | 1 % loss: suspicions / false dead | 5 % loss: suspicions / false dead | run time |",
    "|---|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
    `total ${((performance.now() - started) / 1000).toFixed(0)} s`,
    "",
  ].join("\n"),
);
