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
    /**
     * Growth within each process lifetime beyond the bounds: from its first sample after `warmupS`
     * to the largest of its last quarter of samples.
     */
    leaks(bounds: { rssMb: number; fds: number; warmupS: number }): string[] {
      const lifetimes = new Map<string, Sample[]>();
      for (const s of samples) {
        const key = `${s.process}/${s.pid}`;
        lifetimes.set(key, [...(lifetimes.get(key) ?? []), s]);
      }
      const found: string[] = [];
      for (const [key, list] of lifetimes) {
        if (UNBOUNDED.has(list[0]!.process)) continue;
        const base = list.find((s) => s.tS >= list[0]!.tS + bounds.warmupS);
        const tail = list.slice(Math.floor((list.length * 3) / 4));
        if (base === undefined || tail.length === 0 || tail[0]!.tS <= base.tS) continue;
        const rss = Math.max(...tail.map((s) => s.rssMb)) - base.rssMb;
        const fds = Math.max(...tail.map((s) => s.fds)) - base.fds;
        if (rss > bounds.rssMb)
          found.push(`${key}: resident memory grew ${rss.toFixed(1)} MB (bound ${bounds.rssMb})`);
        if (fds > bounds.fds) found.push(`${key}: open fds grew by ${fds} (bound ${bounds.fds})`);
      }
      return found;
    },
    csv(): string {
      return [
        "t_s,process,pid,rss_mb,fds",
        ...samples.map((s) => `${s.tS},${s.process},${s.pid},${s.rssMb},${s.fds}`),
      ].join("\n");
    },
  };
}
