// Network faults: an RPC provider goes dark or lies (the devnet's RPC proxies, rpc-proxy/), the gateway
// drops every connection (process killed and restarted) or delays new ones, a node loses UDP.
import { writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { blockUdp, unblockUdp } from "../../orchestration/netns.ts";
import { isAlive, signalGroup } from "../../orchestration/processes.ts";
import { GATEWAY_FAULTS_FILE } from "../../orchestration/state.ts";
import { spawnGateway } from "../../orchestration/up.ts";
import { setProxyBehaviour } from "../../rpc-proxy/proxy.ts";
import { disruptable, type Fault, type SoakContext } from "../fault.ts";

export const rpcDown: Fault = {
  kind: "rpc-down",
  eligible: (ctx) => (ctx.state().rpcProxies ?? []).length > 0,
  async inject(ctx, rng) {
    const proxy = rng.pick(ctx.state().rpcProxies ?? []);
    const holdMs = ctx.hold(rng.int(5_000, 20_000));
    await setProxyBehaviour(proxy.url, { behaviour: "down" });
    return {
      detail: `RPC provider ${proxy.url} down (connections reset) for ${holdMs} ms`,
      // One provider of three is out: the quorum of two still answers, nothing may change.
      scope: [],
      holdMs,
      budgetMs: 15_000,
      heal: () => setProxyBehaviour(proxy.url, { behaviour: "honest" }),
    };
  },
};

const LIES = ["inject-member", "hide-eviction", "other-chain", "stale-head"] as const;

export const rpcLie: Fault = {
  kind: "rpc-lie",
  eligible: (ctx) => (ctx.state().rpcProxies ?? []).length > 0,
  async inject(ctx, rng) {
    const proxy = rng.pick(ctx.state().rpcProxies ?? []);
    const behaviour = rng.pick(LIES);
    const holdMs = ctx.hold(rng.int(5_000, 20_000));
    await setProxyBehaviour(proxy.url, { behaviour });
    return {
      detail: `RPC provider ${proxy.url} lies (${behaviour}) for ${holdMs} ms`,
      // A lie outvoted by the quorum must change nothing: no stranger peer, no missing member.
      scope: [],
      holdMs,
      budgetMs: 15_000,
      heal: () => setProxyBehaviour(proxy.url, { behaviour: "honest" }),
    };
  },
};

/** Starts a new gateway once the killed one (`old`, if any) has gone, at most 5 s later. */
async function respawnGateway(ctx: SoakContext, old: number | undefined): Promise<void> {
  if (old !== undefined) for (let i = 0; i < 50 && isAlive(old); i++) await sleep(100);
  await ctx.setState({ ...ctx.state(), gatewayPid: spawnGateway() });
}

async function restartGateway(ctx: SoakContext): Promise<void> {
  const old = ctx.state().gatewayPid;
  if (old !== undefined) signalGroup(old, "SIGKILL");
  await respawnGateway(ctx, old);
}

export const gatewayDrop: Fault = {
  kind: "gateway-drop",
  eligible: (ctx) => ctx.state().gatewayPid !== undefined,
  async inject(ctx, rng) {
    const holdMs = ctx.hold(rng.int(1_000, 10_000));
    const old = ctx.state().gatewayPid!;
    signalGroup(old, "SIGKILL");
    return {
      detail: `gateway killed (every TLS stream dropped), back after ${holdMs} ms`,
      // The transport carries WireGuard; peer sets and keys come from the chain and must not move.
      scope: [],
      holdMs,
      budgetMs: 30_000,
      heal: () => respawnGateway(ctx, old),
    };
  },
};

export const gatewayDelay: Fault = {
  kind: "gateway-delay",
  eligible: (ctx) => ctx.state().gatewayPid !== undefined,
  async inject(ctx, rng) {
    const delayMs = rng.int(500, 4_000);
    const holdMs = ctx.hold(rng.int(5_000, 20_000));
    await writeFile(GATEWAY_FAULTS_FILE, `${JSON.stringify({ connectDelayMs: delayMs })}\n`);
    // Drop what is open, so every stream reconnects through the delay.
    await restartGateway(ctx);
    return {
      detail: `gateway connections dropped and every new one delayed ${delayMs} ms, for ${holdMs} ms`,
      scope: [],
      holdMs,
      budgetMs: 30_000,
      heal: () => writeFile(GATEWAY_FAULTS_FILE, `${JSON.stringify({ connectDelayMs: 0 })}\n`),
    };
  },
};

export const udpBlock: Fault = {
  kind: "udp-block",
  eligible: (ctx) => !ctx.state().blockUdp && disruptable(ctx).length > 0,
  async inject(ctx, rng) {
    const node = rng.pick(disruptable(ctx));
    const holdMs = ctx.hold(rng.int(5_000, 20_000));
    await blockUdp(node.netns);
    return {
      detail: `UDP dropped on ${node.name}'s underlay for ${holdMs} ms (only the gateway path works)`,
      scope: [],
      holdMs,
      budgetMs: 30_000,
      heal: () => unblockUdp(node.netns).catch(() => {}),
    };
  },
};
