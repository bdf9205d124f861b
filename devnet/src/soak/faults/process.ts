// Process faults: a sidecar stopped with SIGTERM or SIGKILL and started again with the environment the
// devnet gave it; a sidecar paused (SIGSTOP) past the heartbeat timeout; the indexer killed and restarted.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isAlive, REPO_ROOT, signalGroup, spawnDetached } from "../../orchestration/processes.ts";
import type { DevnetNode } from "../../orchestration/state.ts";
import { disruptable, type Fault, type SoakContext } from "../fault.ts";

/** A process's environment as /proc shows it, so a restart gets exactly what the devnet started it with. */
export async function processEnv(pid: number): Promise<NodeJS.ProcessEnv> {
  const environ = await readFile(`/proc/${pid}/environ`, "utf8");
  return Object.fromEntries(
    environ
      .split("\0")
      .filter((kv) => kv.includes("="))
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
}

async function argv(pid: number): Promise<string[]> {
  return (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter(Boolean);
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await sleep(100);
  }
  return !isAlive(pid);
}

async function restartSidecar(ctx: SoakContext, node: DevnetNode, signal: "SIGTERM" | "SIGKILL") {
  const env = await processEnv(node.sidecarPid);
  const [cmd, ...args] = await argv(node.sidecarPid);
  if (signal === "SIGTERM") process.kill(node.sidecarPid, "SIGTERM");
  else signalGroup(node.sidecarPid, "SIGKILL");
  if (!(await waitGone(node.sidecarPid, 15_000))) signalGroup(node.sidecarPid, "SIGKILL");
  await waitGone(node.sidecarPid, 5_000);
  return async () => {
    const pid = spawnDetached(cmd ?? process.execPath, args, {
      logFile: join(node.logDir, "sidecar.log"),
      env,
    });
    const state = ctx.state();
    await ctx.setState({
      ...state,
      nodes: state.nodes.map((n) => (n.name === node.name ? { ...n, sidecarPid: pid } : n)),
    });
  };
}

function sidecarRestart(kind: "sidecar-sigterm" | "sidecar-sigkill", signal: "SIGTERM" | "SIGKILL"): Fault {
  return {
    kind,
    eligible: (ctx) => disruptable(ctx).length > 0,
    async inject(ctx, rng) {
      const node = rng.pick(disruptable(ctx));
      const holdMs = ctx.hold(rng.int(1_000, 8_000));
      ctx.excuse([node.name]);
      const start = await restartSidecar(ctx, node, signal);
      return {
        detail: `${signal} ${node.name}'s sidecar, restarted after ${holdMs} ms`,
        scope: [node.name],
        holdMs,
        budgetMs: 90_000,
        heal: start,
      };
    },
  };
}

export const sidecarSigterm = sidecarRestart("sidecar-sigterm", "SIGTERM");
export const sidecarSigkill = sidecarRestart("sidecar-sigkill", "SIGKILL");

export const sidecarPause: Fault = {
  kind: "sidecar-pause",
  eligible: (ctx) => disruptable(ctx).length > 0,
  async inject(ctx, rng) {
    const node = rng.pick(disruptable(ctx));
    const holdMs = ctx.heartbeatTimeoutMs + ctx.hold(rng.int(2_000, 6_000));
    ctx.excuse([node.name]);
    signalGroup(node.sidecarPid, "SIGSTOP");
    return {
      detail: `SIGSTOP ${node.name}'s sidecar for ${holdMs} ms (heartbeat timeout ${ctx.heartbeatTimeoutMs} ms)`,
      scope: [node.name],
      holdMs,
      budgetMs: 60_000,
      heal: async () => signalGroup(node.sidecarPid, "SIGCONT"),
    };
  },
};

export const indexerKill: Fault = {
  kind: "indexer-kill",
  eligible: (ctx) => ctx.state().indexer !== undefined,
  async inject(ctx, rng) {
    const indexer = ctx.state().indexer!;
    const holdMs = ctx.hold(rng.int(2_000, 15_000));
    const env = await processEnv(indexer.pid);
    signalGroup(indexer.pid, "SIGKILL");
    await waitGone(indexer.pid, 5_000);
    return {
      detail: `SIGKILL the indexer, restarted after ${holdMs} ms`,
      // Sidecars always poll the chain: an indexer outage may cost wake-up latency, nothing else.
      scope: [],
      holdMs,
      budgetMs: 30_000,
      async heal() {
        const pid = spawnDetached(process.execPath, [join(REPO_ROOT, "indexer/src/bin.mjs")], {
          logFile: join(indexer.logDir, "indexer.log"),
          env,
        });
        await ctx.setState({ ...ctx.state(), indexer: { ...indexer, pid } });
      },
    };
  },
};
