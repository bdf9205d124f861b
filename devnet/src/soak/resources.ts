// Resource curves: every few seconds, the resident memory and open file descriptors of each devnet
// process (from /proc), kept as rows for the CSV and checked for growth within one process lifetime.
import { readdir, readFile } from "node:fs/promises";
import type { DevnetState } from "../orchestration/state.ts";

export interface Sample {
  readonly tS: number;
  readonly process: string;
  readonly pid: number;
  readonly rssMb: number;
  readonly fds: number;
}

/** Processes whose memory grows by design (the chain's own history): reported, not bounded. */
const UNBOUNDED = new Set(["hardhat", "bundler"]);

export function processesOf(state: DevnetState): Array<{ name: string; pid: number }> {
  return [
    { name: "hardhat", pid: state.hardhatPid },
    ...(state.rpcProxies ?? []).map((p) => ({ name: `rpc-proxy:${new URL(p.url).port}`, pid: p.pid })),
    ...(state.indexer ? [{ name: "indexer", pid: state.indexer.pid }] : []),
    ...(state.moreIndexers ?? []).map((i, n) => ({ name: `indexer${n + 2}`, pid: i.pid })),
    ...(state.gatewayPid === undefined ? [] : [{ name: "gateway", pid: state.gatewayPid }]),
    ...(state.sponsorship
      ? [
          { name: "bundler", pid: state.sponsorship.bundlerPid },
          { name: "sponsor", pid: state.sponsorship.sponsorPid },
        ]
      : []),
    ...state.nodes.map((n) => ({ name: `sidecar:${n.name}`, pid: n.sidecarPid })),
  ];
}

async function sampleOne(pid: number): Promise<{ rssMb: number; fds: number } | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? "0");
    const fds = (await readdir(`/proc/${pid}/fd`)).length;
    return { rssMb: Math.round(rssKb / 102.4) / 10, fds };
  } catch {
    return undefined;
  }
}

export function createResourceMonitor(startedAt: number) {
  const samples: Sample[] = [];
  return {
    samples: samples as readonly Sample[],
    async sample(state: DevnetState) {
      const tS = Math.round((Date.now() - startedAt) / 1000);
      await Promise.all(
        processesOf(state).map(async ({ name, pid }) => {
          const s = await sampleOne(pid);
          if (s) samples.push({ tS, process: name, pid, ...s });
        }),
      );
    },
    /** Growth within each process lifetime beyond the bounds (leaksIn). */
    leaks(bounds: LeakBounds): string[] {
      return leaksIn(samples, bounds);
    },
    csv(): string {
      return [
        "t_s,process,pid,rss_mb,fds",
        ...samples.map((s) => `${s.tS},${s.process},${s.pid},${s.rssMb},${s.fds}`),
      ].join("\n");
    },
  };
}

export interface LeakBounds {
  readonly rssMb: number;
  readonly fds: number;
  /** Samples this soon after a process's first are start-up, not its working set. */
  readonly warmupS: number;
}

/**
 * Growth within each process lifetime beyond the bounds: from its working set — the largest sample in
 * the first half of its lifetime after the warm-up — to the largest of its last quarter. The first half,
 * not the first sample: a process restarted mid-run (the gateway after a drop, a sidecar after a kill)
 * starts with nothing open and gathers its working set as its peers reconnect, which can take a minute
 * (measured: a respawned gateway went from 23 to 93 descriptors over 150 s, one pair of sockets per
 * relayed stream, then stayed there). A leak keeps growing after that, and shows between the halves.
 */
export function leaksIn(samples: readonly Sample[], bounds: LeakBounds): string[] {
  const lifetimes = new Map<string, Sample[]>();
  for (const s of samples) {
    const key = `${s.process}/${s.pid}`;
    const list = lifetimes.get(key);
    if (list === undefined) lifetimes.set(key, [s]);
    else list.push(s);
  }
  const found: string[] = [];
  for (const [key, list] of lifetimes) {
    if (UNBOUNDED.has(list[0]!.process)) continue;
    const settled = list.filter((s) => s.tS >= list[0]!.tS + bounds.warmupS);
    const working = settled.slice(0, Math.ceil(settled.length / 2));
    const tail = settled.slice(Math.floor((settled.length * 3) / 4));
    if (working.length === 0 || tail.length === 0 || tail[0]!.tS <= working[0]!.tS) continue;
    const rss = Math.max(...tail.map((s) => s.rssMb)) - Math.max(...working.map((s) => s.rssMb));
    const fds = Math.max(...tail.map((s) => s.fds)) - Math.max(...working.map((s) => s.fds));
    if (rss > bounds.rssMb)
      found.push(`${key}: resident memory grew ${rss.toFixed(1)} MB (bound ${bounds.rssMb})`);
    if (fds > bounds.fds) found.push(`${key}: open fds grew by ${fds} (bound ${bounds.fds})`);
  }
  return found;
}
