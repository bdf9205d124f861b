// TCP throughput between two devnet nodes across the mesh: direct UDP against the gateway bridge
// (WireGuard datagrams framed onto TLS through the devnet's SNI gateway). One bounded transfer per
// path (--mib MiB from node1 to node2's mesh IP, capped at --seconds), each on a fresh 2-node devnet;
// prints a Markdown table and the ratio. Needs root; run it under the devnet lock:
//
//   flock /tmp/attestmesh-netns.lock node scripts/bench/transport-throughput.ts --mib 64
import { execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { REPO_ROOT } from "../src/devnet/processes.ts";

const execFileAsync = promisify(execFile);
const { values } = parseArgs({
  options: { mib: { type: "string", default: "64" }, seconds: { type: "string", default: "60" } },
});
const mib = Number(values.mib);
const capSeconds = Number(values.seconds);
const log = (message: string) => process.stderr.write(`› ${message}\n`);

interface NodeRow {
  readonly name: string;
  readonly netns: string;
  readonly meshIp: string | null;
  readonly transports: Readonly<Record<string, number>>;
}

interface Sample {
  readonly path: "udp" | "gateway";
  readonly bytes: number;
  readonly seconds: number;
}

/** Sends `mib` MiB from node1 to a sink on node2's mesh IP; the sink times from first to last byte. */
async function transfer(path: "udp" | "gateway"): Promise<Sample> {
  // Everything about the devnet comes from `devnet status --json`, as a user would read it.
  const { stdout } = await execFileAsync(
    process.execPath,
    [join(REPO_ROOT, "scripts/src/cli/main.ts"), "devnet", "status", "--json"],
    { cwd: REPO_ROOT, timeout: 60_000 },
  );
  const status = JSON.parse(stdout) as { nodes: NodeRow[] };
  const [client, server] = status.nodes as [NodeRow, NodeRow];
  if (client.transports[path] !== 1 || server.transports[path] !== 1) {
    throw new Error(
      `peers are on ${JSON.stringify([client.transports, server.transports])}, expected ${path}`,
    );
  }
  const serverHealth = server;
  const meshIp = serverHealth.meshIp!;
  const sink = `let n=0,t0=0;const s=require("node:net").createServer(c=>{c.on("data",d=>{if(!t0)t0=performance.now();n+=d.length});c.on("end",()=>{console.log(JSON.stringify({bytes:n,seconds:(performance.now()-t0)/1000}));process.exit(0)})});s.listen(7700,"${meshIp}",()=>console.log("ready"));setTimeout(()=>process.exit(2),${(capSeconds + 30) * 1000});`;
  const child = spawn("ip", ["netns", "exec", server.netns, process.execPath, "-e", sink]);
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  for (let waited = 0; !out.includes("ready"); waited += 50) {
    if (waited > 20_000 || child.exitCode !== null) throw new Error("the sink did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
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

/** The devnet CLI, as a user runs it (its progress goes to our stderr). */
async function cli(args: string[]): Promise<void> {
  const child = spawn(process.execPath, [join(REPO_ROOT, "scripts/src/cli/main.ts"), "devnet", ...args], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`devnet ${args.join(" ")} exited ${code}`);
}

const devnetDown = () => cli(["down"]);

async function run(path: "udp" | "gateway"): Promise<Sample> {
  log(`${path}: a 2-node devnet with --transport ${path}`);
  await cli(["up", "--detach", "--json", "--nodes", "2", "--transport", path]);
  try {
    const sample = await transfer(path);
    log(`${path}: ${(sample.bytes / 2 ** 20).toFixed(0)} MiB in ${sample.seconds.toFixed(2)} s`);
    return sample;
  } finally {
    await devnetDown();
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
  await devnetDown().catch(() => {});
  process.exit(1);
} finally {
  clearInterval(alive);
}
