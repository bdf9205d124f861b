// WireGuard reconcile at scale, simulated: N members, each running the sidecar's real reconciler
// (desired peers from the membership view, the diff, applied to its own in-memory WireGuard backend)
// beside the real liveness code, in one process on the simulator's clock (devnet/src/sim/reconcile.ts).
// For each N: the time until every interface holds every peer from a cold start, then for --joins
// registrations and --evictions evictions, one at a time, the time until every member's interface shows
// the change (median and worst), the WireGuard operations a member made for it, and the CPU per pass.
//
//   node devnet/bench/reconcile-sim.ts [--members 10,100,1000] [--joins 3] [--evictions 3] [--seed 1]
//                                      [--poll-only] [--poll-ms 2000] [--hardhat]
//
// --hardhat registers the N members on an in-process Hardhat chain first (devnet/src/sim/onchain.ts): the
// reconcilers then compute their peers from the records the sidecar's reader read back (real WireGuard
// keys and mesh IPs); joins and evictions after that are changes to the simulator's view.
//
// Modelled: the chain follower (the view, answered after 100 ms) and the indexer's push (50–500 ms after
// a change; --poll-only leaves the members to their poll). devnet/bench/reconcile-scale.ts measures one
// real sidecar against 1,000 members registered on an in-process Hardhat chain.
import { median } from "../src/sim/liveness.ts";
import { runReconcileScale } from "../src/sim/reconcile.ts";
import { benchOptions, integerOption } from "./harness.ts";

const values = benchOptions({
  members: "10,100,1000",
  joins: "3",
  evictions: "3",
  seed: "1",
  "poll-only": false,
  "poll-ms": "2000",
  hardhat: false,
  quiet: false,
});
const sizes = values.members.split(",").map((s) => integerOption("--members", s, 2));
const joins = integerOption("--joins", values.joins);
const evictions = integerOption("--evictions", values.evictions);
const pollMs = integerOption("--poll-ms", values["poll-ms"], 100);

/** --hardhat: N members registered on an in-process Hardhat chain, read back by the sidecar's reader. */
async function registered(n: number) {
  const { registerOnchain } = await import("../src/sim/onchain.ts");
  return registerOnchain(n, (line) => process.stderr.write(`N=${n}: ${line}\n`));
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const rows: string[] = [];
const started = performance.now();
for (const n of sizes) {
  if (joins + evictions >= n)
    throw new Error(`N=${n} is too small for ${joins} joins and ${evictions} evictions`);
  const onchain = values.hardhat ? await registered(n) : undefined;
  const r = await runReconcileScale({
    ...(onchain === undefined ? {} : { roster: onchain.roster }),
    members: n,
    seed: Number(values.seed),
    joins,
    evictions,
    options: { pollMs, ...(values["poll-only"] ? { pollOnly: true } : {}) },
    ...(values.quiet ? {} : { progress: (line: string) => process.stderr.write(`${line}\n`) }),
  });
  const of = (kind: "join" | "evict") => r.changes.filter((c) => c.kind === kind);
  const spread = (kind: "join" | "evict") => {
    const xs = of(kind).map((c) => c.allMs);
    return `${s(median(xs))} (max ${s(Math.max(...xs))})`;
  };
  const ops = Math.max(...r.changes.map((c) => c.operationsMax));
  const cpu = median(r.changes.map((c) => c.cpuMsPerPass));
  await onchain?.close();
  rows.push(
    `| ${n} | ${s(r.configure.ms)} (${r.configure.operationsPerMember.toFixed(0)} ops per member) | ${spread("join")} | ${spread("evict")} | ${ops} | ${cpu.toFixed(2)} ms | ${(r.wallMs / 1000).toFixed(0)} s |`,
  );
}
process.stdout.write(
  [
    `WireGuard reconcile, simulated (${values.hardhat ? "members registered on Hardhat, " : ""}seed ${values.seed}, ${joins} joins, ${evictions} evictions, ${values["poll-only"] ? "poll only" : "indexer push 50–500 ms"}, poll ${pollMs} ms, membership read 100 ms)`,
    "",
    "| N | cold start: every interface holds every peer | join in every interface, median (max) | eviction in every interface, median (max) | WireGuard operations per member per change, max | CPU per reconcile pass, median | run time |",
    "|---|---|---|---|---|---|---|",
    ...rows,
    "",
    `total ${((performance.now() - started) / 1000).toFixed(0)} s`,
    "",
  ].join("\n"),
);
