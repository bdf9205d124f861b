// TCP throughput between two devnet nodes across the mesh: direct UDP against the gateway bridge
// (WireGuard datagrams framed onto TLS through the devnet's SNI gateway). One bounded transfer per
// path (--mib MiB from node1 to node2's mesh IP, capped at --seconds), each on a fresh 2-node devnet;
// prints a Markdown table and the ratio. Needs root; run it under the devnet lock:
//
//   flock /tmp/attestmesh-netns.lock node scripts/bench/transport-throughput.ts --mib 64
import { execFile, spawn } from "node:child_process";
import { parseArgs, promisify } from "node:util";
import { devnetDown } from "../src/devnet/down.ts";
import { readHealth } from "../src/devnet/health.ts";
import { waitFor } from "../src/devnet/processes.ts";
import { type DevnetNode, readState } from "../src/devnet/state.ts";
import { devnetUp } from "../src/devnet/up.ts";

const execFileAsync = promisify(execFile);
const { values } = parseArgs({
  options: { mib: { type: "string", default: "64" }, seconds: { type: "string", default: "60" } },
});
const mib = Number(values.mib);
const capSeconds = Number(values.seconds);
const log = (message: string) => process.stderr.write(`› ${message}\n`);

interface Sample {
  readonly path: "udp" | "gateway";
  readonly bytes: number;
  readonly seconds: number;
}

/** Sends `mib` MiB from node1 to a sink on node2's mesh IP; the sink times from first to last byte. */
async function transfer(path: "udp" | "gateway"): Promise<Sample> {
  const state = (await readState())!;
  const [client, server] = state.nodes as [(typeof state.nodes)[0], (typeof state.nodes)[0]];
  const health = (node: DevnetNode) =>
    waitFor(`${node.name}'s /healthz`, async () => (await readHealth(node)).health, 20_000);
  const serverHealth = await health(server);
  const clientHealth = await health(client);
  const peers = clientHealth.peers as ReadonlyArray<{ transport?: string }>;
  if (!peers.every((p) => (p.transport ?? "udp") === path)) {
    throw new Error(
      `node1's peers are on ${JSON.stringify(peers.map((p) => p.transport))}, expected ${path}`,
    );
  }
  const meshIp = serverHealth.meshIp!;
  const sink = `let n=0,t0=0;const s=require("node:net").createServer(c=>{c.on("data",d=>{if(!t0)t0=performance.now();n+=d.length});c.on("end",()=>{console.log(JSON.stringify({bytes:n,seconds:(performance.now()-t0)/1000}));process.exit(0)})});s.listen(7700,"${meshIp}",()=>console.log("ready"));setTimeout(()=>process.exit(2),${(capSeconds + 30) * 1000});`;
  const child = spawn("ip", ["netns", "exec", server.netns, process.execPath, "-e", sink]);
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  while (!out.includes("ready")) await new Promise((r) => setTimeout(r, 50));
  const total = mib * 1024 * 1024;
  const source = `const c=require("node:net").connect(7700,"${meshIp}",()=>{const chunk=Buffer.alloc(65536,1);let left=${total};const stop=Date.now()+${capSeconds * 1000};const pump=()=>{while(left>0&&Date.now()<stop){left-=chunk.length;if(!c.write(chunk)){c.once("drain",pump);return}}c.end()};pump()});c.on("error",e=>{console.error(e.message);process.exit(4)});`;
  await execFileAsync("ip", ["netns", "exec", client.netns, process.execPath, "-e", source], {
    timeout: (capSeconds + 30) * 1000,
  });
  await new Promise((resolve) => child.once("exit", resolve));
  const result = JSON.parse(out.split("\n").find((l) => l.startsWith("{"))!) as {
    bytes: number;
    seconds: number;
  };
  return { path, ...result };
}

async function run(path: "udp" | "gateway"): Promise<Sample> {
  log(`${path}: a 2-node devnet with --transport ${path}`);
  await devnetUp({ nodes: 2, timeoutMs: 240_000, progress: log, transport: path });
  try {
    const sample = await transfer(path);
    log(`${path}: ${(sample.bytes / 2 ** 20).toFixed(0)} MiB in ${sample.seconds.toFixed(2)} s`);
    return sample;
  } finally {
    await devnetDown(log);
  }
}

const mbps = (s: Sample) => (s.bytes * 8) / s.seconds / 1e6;
// fetch's timeouts do not keep the process alive; this does, so a slow read fails instead of exiting.
const alive = setInterval(() => {}, 1000);
try {
  const direct = await run("udp");
  const gateway = await run("gateway");
  process.stdout.write(
    "| path | MiB | seconds | Mbit/s |\n|---|---:|---:|---:|\n" +
      [direct, gateway]
        .map(
          (s) =>
            `| ${s.path} | ${(s.bytes / 2 ** 20).toFixed(0)} | ${s.seconds.toFixed(2)} | ${mbps(s).toFixed(0)} |`,
        )
        .join("\n") +
      `\n\ngateway / direct = ${(mbps(gateway) / mbps(direct)).toFixed(2)}\n`,
  );
} catch (error) {
  process.stderr.write(`throughput benchmark failed: ${(error as Error).message}\n`);
  await devnetDown(log).catch(() => {});
  process.exit(1);
} finally {
  clearInterval(alive);
}
