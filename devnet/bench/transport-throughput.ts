// TCP throughput between two devnet nodes across the mesh: direct UDP against the gateway bridge
// (WireGuard datagrams framed onto TLS through the devnet's SNI gateway). One bounded transfer per
// path (--mib MiB from node1 to node2's mesh IP, capped at --seconds), each on a fresh 2-node devnet
// started with `devnet up --transport <path>`; prints a Markdown table and the ratio. Needs root; run
// it under the devnet lock:
//
//   flock /tmp/attestmesh-netns.lock node devnet/bench/transport-throughput.ts --mib 64
//
// Every step is a synchronous child process (the CLI, the sink, the source), so the measurement
// itself runs in processes of its own and this script only orchestrates.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { REPO_ROOT } from "../src/orchestration/processes.ts";

const { values } = parseArgs({
  options: { mib: { type: "string", default: "64" }, seconds: { type: "string", default: "60" } },
});
const mib = Number(values.mib);
const capSeconds = Number(values.seconds);
if (!Number.isInteger(mib) || mib < 1 || mib > 4096) throw new Error("--mib must be 1..4096");
if (!Number.isInteger(capSeconds) || capSeconds < 1 || capSeconds > 600)
  throw new Error("--seconds must be 1..600");
const log = (message: string) => process.stderr.write(`› ${message}\n`);

type Path = "udp" | "gateway";

interface NodeRow {
  readonly name: string;
  readonly netns: string;
  readonly meshIp: string | null;
  readonly transports: Readonly<Record<string, number>>;
}

interface Sample {
  readonly path: Path;
  readonly bytes: number;
  readonly seconds: number;
}

/** The devnet CLI, as a user runs it; returns its stdout (its progress goes to our stderr). */
function cli(args: string[], timeoutMs = 300_000): string {
  return execFileSync(process.execPath, [join(REPO_ROOT, "scripts/src/cli/main.ts"), "devnet", ...args], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "inherit"],
    timeout: timeoutMs,
    encoding: "utf8",
  });
}

/** A sink on the server's mesh IP (in its namespace, in the background) and a source sending to it. */
function transfer(path: Path): Sample {
  const status = JSON.parse(cli(["status", "--json"], 60_000)) as { nodes: NodeRow[] };
  const [client, server] = status.nodes as [NodeRow, NodeRow];
  if (client.transports[path] !== 1 || server.transports[path] !== 1) {
    throw new Error(
      `peers are on ${JSON.stringify([client.transports, server.transports])}, expected ${path}`,
    );
  }
  const total = mib * 1024 * 1024;
  const limit = (capSeconds + 30) * 1000;
  const sink = `let n=0,t0=0;const s=require("node:net").createServer(c=>{c.on("data",d=>{if(!t0)t0=performance.now();n+=d.length});c.on("end",()=>{console.log(JSON.stringify({bytes:n,seconds:(performance.now()-t0)/1000}));process.exit(0)})});s.listen(7700,"${server.meshIp}");setTimeout(()=>process.exit(2),${limit});`;
  const source = `const c=require("node:net").connect(7700,"${server.meshIp}",()=>{const chunk=Buffer.alloc(65536,1);let left=${total};const stop=Date.now()+${capSeconds * 1000};const pump=()=>{while(left>0&&Date.now()<stop){left-=chunk.length;if(!c.write(chunk)){c.once("drain",pump);return}}c.end()};pump()});c.on("error",e=>{console.error(e.message);process.exit(4)});`;
  const node = JSON.stringify(process.execPath);
  // One shell: the sink starts in the background, the source runs once the sink listens, then wait.
  const script = [
    `ip netns exec ${server.netns} ${node} -e '${sink}' > "$OUT" &`,
    "sink=$!",
    `for i in $(seq 100); do ip netns exec ${server.netns} ss -ltn | grep -q ':7700 ' && break; sleep 0.1; done`,
    `ip netns exec ${client.netns} ${node} -e '${source}'`,
    'wait "$sink"',
    'cat "$OUT"',
  ].join("\n");
  const out = execFileSync("bash", ["-c", script], {
    env: { ...process.env, OUT: `/tmp/attestmesh-throughput-${process.pid}.json` },
    stdio: ["ignore", "pipe", "inherit"],
    timeout: limit + 30_000,
    encoding: "utf8",
  });
  const result = JSON.parse(out.trim().split("\n").at(-1)!) as { bytes: number; seconds: number };
  return { path, ...result };
}

function run(path: Path): Sample {
  log(`${path}: a 2-node devnet with --transport ${path}`);
  cli(["up", "--detach", "--json", "--nodes", "2", "--transport", path]);
  try {
    const sample = transfer(path);
    log(`${path}: ${(sample.bytes / 2 ** 20).toFixed(0)} MiB in ${sample.seconds.toFixed(2)} s`);
    return sample;
  } finally {
    cli(["down"]);
  }
}

const mbps = (s: Sample) => (s.bytes * 8) / s.seconds / 1e6;
try {
  const direct = run("udp");
  const gateway = run("gateway");
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
  try {
    cli(["down"]);
  } catch {}
  process.exit(1);
}
