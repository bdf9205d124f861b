// A steady stream of small UDP datagrams between devnet nodes' mesh IPs, to see how long the mesh ever
// stops carrying traffic (a direct-path test that blackholes the gateway path shows as a gap). Every
// node sends one datagram to every other node each `intervalMs` for `durationMs`, from a process in
// its own namespace; each receiver writes down when every datagram arrived.
import { spawn } from "node:child_process";

export interface StreamLeg {
  readonly from: string;
  readonly to: string;
  readonly sent: number;
  readonly received: number;
  /** The longest time between two datagrams of this leg arriving (or the start, or the end), in ms. */
  readonly longestGapMs: number;
}

// Argv: own mesh IP, port, interval ms, duration ms, then the other nodes' mesh IPs. Sends once "go"
// arrives on stdin; prints one JSON line: per sender, how many arrived and the longest gap between them
// (from the start, and to the end, of sending too).
const SCRIPT = `
const [self, port, every, lasting, ...others] = process.argv.slice(1);
const s = require("node:dgram").createSocket("udp4");
const arrivals = new Map(others.map((o) => [o, { n: 0, last: 0, gap: 0 }]));
let started = false;
s.on("message", (_m, from) => {
  const a = arrivals.get(from.address);
  if (a === undefined || !started) return;
  const t = performance.now();
  a.gap = Math.max(a.gap, t - a.last);
  a.n += 1;
  a.last = t;
});
s.bind(Number(port), self, () => console.log("ready"));
process.stdin.once("data", () => {
  // Gaps count from here and up to the last send: a leg silent from the start, or at the end, shows.
  const start = performance.now();
  for (const a of arrivals.values()) a.last = start;
  started = true;
  let sent = 0;
  const beat = setInterval(() => {
    sent += 1;
    for (const o of others) s.send("x", Number(port), o, () => {});
  }, Number(every));
  setTimeout(() => clearInterval(beat), Number(lasting));
  // Stragglers a second later still count; then report and stop.
  setTimeout(() => {
    for (const a of arrivals.values()) a.gap = Math.max(a.gap, start + Number(lasting) - a.last);
    console.log(JSON.stringify({ sent, from: Object.fromEntries([...arrivals].map(([o, a]) => [o, { n: a.n, gap: Math.round(a.gap) }])) }));
    process.exit(0);
  }, Number(lasting) + 1000);
});
setTimeout(() => process.exit(3), Number(lasting) + 60000).unref();
`;

/** Streams between every pair of `nodes` (both ways) and reports each directed leg. */
export async function meshStream(
  nodes: ReadonlyArray<{ readonly name: string; readonly netns: string; readonly meshIp: string | null }>,
  options: { readonly port: number; readonly intervalMs: number; readonly durationMs: number },
): Promise<StreamLeg[]> {
  const children = nodes.map((node) =>
    spawn("ip", [
      "netns",
      "exec",
      node.netns,
      process.execPath,
      "-e",
      SCRIPT,
      String(node.meshIp),
      String(options.port),
      String(options.intervalMs),
      String(options.durationMs),
      ...nodes.filter((n) => n !== node).map((n) => String(n.meshIp)),
    ]),
  );
  const outputs = children.map((child) => {
    let text = "";
    child.stdout.on("data", (d: Buffer) => {
      text += d.toString();
    });
    const exited = new Promise<string>((resolve, reject) =>
      child.once("exit", (code) =>
        code === 0 ? resolve(text) : reject(new Error(`mesh stream exited ${code}: ${text}`)),
      ),
    );
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout.on("data", () => {
        if (text.includes("ready")) resolve();
      });
      exited.catch(reject);
    });
    return { child, exited, ready };
  });
  try {
    await Promise.all(outputs.map((o) => o.ready));
    for (const o of outputs) o.child.stdin.end("go\n");
    const reports = (await Promise.all(outputs.map((o) => o.exited))).map(
      (text) =>
        JSON.parse(text.split("\n").find((l) => l.startsWith("{"))!) as {
          sent: number;
          from: Record<string, { n: number; gap: number }>;
        },
    );
    return nodes.flatMap((to, i) =>
      nodes
        .filter((from) => from !== to)
        .map((from) => {
          const heard = reports[i]!.from[String(from.meshIp)]!;
          return {
            from: from.name,
            to: to.name,
            sent: reports[nodes.indexOf(from)]!.sent,
            received: heard.n,
            longestGapMs: heard.gap,
          };
        }),
    );
  } finally {
    for (const o of outputs) if (o.child.exitCode === null) o.child.kill();
  }
}
