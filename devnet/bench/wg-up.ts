// The real WireGuard backend on a join's critical path, on a wireguard-go interface in a network
// namespace of its own: `up` once the mesh address is known, after `prepare` made the interface (as the
// sidecar does around registration), then `setRouteMtus` giving --peers gateway-path peers their routes
// and taking them away again. Each timed, with the processes it spawned counted, median of --runs.
// With --baseline DIR (a checkout of an earlier tree, e.g. the lead's main), that tree's backend runs
// too, alternating run by run with this one's on the same namespace, so both see the same machine.
//
//   node devnet/bench/wg-up.ts [--runs 20] [--peers 7] [--baseline DIR] [--tag amwgb]   (root; needs
//   ip, wg and wireguard-go)
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { median } from "../src/sim/liveness.ts";
import { benchOptions, integerOption, log } from "./harness.ts";

type CreateWgBackend = typeof import("@attestmesh/sidecar/wireguard/wg.ts").createWgBackend;

const values = benchOptions({ runs: "20", peers: "7", baseline: "", tag: "amwgb" });
const runs = integerOption("--runs", values.runs);
const peers = integerOption("--peers", values.peers);
if (!/^[a-z0-9]{1,6}$/.test(values.tag)) throw new Error("--tag must be 1-6 of a-z 0-9");
if (peers > 200) throw new Error("--peers must be at most 200");
if (process.getuid?.() !== 0) throw new Error("needs root (network namespaces, TUN devices)");

const variants: { name: string; create: CreateWgBackend }[] = [
  { name: "this tree", create: (await import("@attestmesh/sidecar/wireguard/wg.ts")).createWgBackend },
];
if (values.baseline !== "") {
  const path = resolve(values.baseline, "sidecar/src/wireguard/wg.ts");
  const head = execFileSync("git", ["-C", values.baseline, "rev-parse", "--short", "HEAD"], {
    encoding: "utf8",
  }).trim();
  const baseline = (await import(pathToFileURL(path).href)) as { createWgBackend: CreateWgBackend };
  variants.unshift({ name: `baseline ${head}`, create: baseline.createWgBackend });
}

const netns = `${values.tag}-${process.pid}`;
const ip = (...args: string[]) => execFileSync("ip", args, { encoding: "utf8", timeout: 10_000 });
const routes = new Map(
  Array.from({ length: peers }, (_, i) => [`10.77.${1 + (i >> 8)}.${i & 255}/32`, 4064] as const),
);

interface Sample {
  up: number;
  upProcesses: number;
  routes: number;
  routesProcesses: number;
  removed: number;
  removedProcesses: number;
}

/** One run of a variant: prepare, then up, the routes and their removal timed, then down. */
async function once(create: CreateWgBackend, index: number): Promise<Sample> {
  let spawned = 0;
  const noop = () => {};
  const logger = {
    debug: (_fields: object, message: string) => {
      if (message === "wireguard command finished") spawned += 1;
    },
    info: noop,
    warn: noop,
    error: noop,
  };
  const name = `${values.tag}${process.pid}${index}`.slice(-15);
  const backend = create({ netns, mode: "userspace", logger });
  const config = { name, privateKey: new Uint8Array(32).fill(index + 1), listenPort: 51820 };
  try {
    await backend.prepare!(config);
    const timed = async (step: () => Promise<void>) => {
      spawned = 0;
      const started = performance.now();
      await step();
      return [performance.now() - started, spawned] as const;
    };
    const [up, upProcesses] = await timed(() => backend.up({ ...config, address: "10.77.0.9/16" }));
    const [routesMs, routesProcesses] = await timed(() => backend.setRouteMtus!(routes));
    const [removed, removedProcesses] = await timed(() => backend.setRouteMtus!(new Map()));
    return { up, upProcesses, routes: routesMs, routesProcesses, removed, removedProcesses };
  } finally {
    await backend.down();
  }
}

ip("netns", "add", netns);
const samples = variants.map(() => [] as Sample[]);
try {
  ip("-n", netns, "link", "set", "lo", "up");
  for (let run = 0; run < runs; run++) {
    // Alternating who goes first, so neither always follows the other's teardown.
    const order = variants.map((_, i) => i);
    if (run % 2 === 1) order.reverse();
    for (const i of order) samples[i]!.push(await once(variants[i]!.create, i));
    log(`run ${run + 1}/${runs}`);
  }
} finally {
  ip("netns", "del", netns);
}

const ms = (xs: number[]) => `${median(xs).toFixed(1)} ms`;
const count = (xs: number[]) =>
  Math.min(...xs) === Math.max(...xs) ? `${xs[0]}` : `${Math.min(...xs)}–${Math.max(...xs)}`;
process.stdout.write(
  [
    `WireGuard backend on wireguard-go in a network namespace: median of ${runs} runs, ${peers} peers' routes`,
    "",
    `| backend | up after prepare | processes | setRouteMtus, ${peers} routes added | processes | setRouteMtus, ${peers} removed | processes |`,
    "|---|---|---|---|---|---|---|",
    ...variants.map((variant, i) => {
      const s = samples[i]!;
      const col = (key: keyof Sample) => s.map((sample) => sample[key]);
      return `| ${variant.name} | ${ms(col("up"))} | ${count(col("upProcesses"))} | ${ms(col("routes"))} | ${count(col("routesProcesses"))} | ${ms(col("removed"))} | ${count(col("removedProcesses"))} |`;
    }),
    "",
  ].join("\n"),
);
