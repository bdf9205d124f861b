// Membership faults: a node joins; a node is evicted by the owner or its app id is revoked (which evicts
// its member), and once it has left, its processes and namespace are removed. The devnet runs one compose
// and one simulated device for every node, so revoking a compose hash or a device would end the whole
// cluster: the soak revokes one node's app id instead.
import { setTimeout as sleep } from "node:timers/promises";
import { parseReasonBytes32 } from "@attestmesh/scripts/owner/args.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { clusterContract, evictApp } from "../../orchestration/chain.ts";
import { readHealth } from "../../orchestration/health.ts";
import { isAlive } from "../../orchestration/processes.ts";
import type { DevnetNode } from "../../orchestration/state.ts";
import { addNodeToState, removeNodeFromState } from "../../orchestration/up.ts";
import { disruptable, type Fault, type SoakContext } from "../fault.ts";

export const nodeAdd: Fault = {
  kind: "node-add",
  eligible: (ctx) => ctx.state().nodes.length <= ctx.targetNodes,
  async inject(ctx) {
    const index = ctx.nextNodeIndex();
    ctx.excuse("all");
    await ctx.setState(await addNodeToState(ctx.clients, ctx.state(), index));
    return {
      detail: `node${index} joins`,
      // Every member's peer set grows once the newcomer registers; it must pull the CSK.
      scope: "all",
      holdMs: 0,
      budgetMs: 180_000,
      heal: async () => {},
    };
  },
};

async function currentEpoch(ctx: SoakContext): Promise<bigint> {
  const [epoch] = await ctx.clients.client.readContract({
    address: ctx.state().diamond,
    abi: clusterAbi,
    functionName: "currentCsk",
  });
  return epoch;
}

/**
 * Waits (bounded) until the departed node's sidecar says it is no member, or has exited (a revoked app id
 * can never register again, so its sidecar stops), then takes it off the devnet.
 */
async function removeOnceGone(ctx: SoakContext, node: DevnetNode): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (!isAlive(node.sidecarPid)) break;
    const { health } = await readHealth(node);
    if (health !== undefined && health.memberId == null) break;
    await sleep(250);
  }
  const current = ctx.state().nodes.find((n) => n.name === node.name);
  if (current) await ctx.setState(await removeNodeFromState(ctx.state(), current));
}

function departure(kind: "node-evict" | "app-revoke"): Fault {
  return {
    kind,
    eligible: (ctx) => ctx.state().nodes.length >= ctx.targetNodes && disruptable(ctx).length > 1,
    async inject(ctx, rng) {
      const node = rng.pick(disruptable(ctx));
      ctx.departing(node, await currentEpoch(ctx));
      ctx.excuse("all");
      if (kind === "node-evict") {
        await evictApp(ctx.clients, ctx.state().diamond, node.appId, 1);
      } else {
        const hash = await clusterContract(ctx.clients, ctx.state().diamond).write.revokeAppId([
          node.appId,
          parseReasonBytes32("soak: revoked"),
        ]);
        const receipt = await ctx.clients.client.waitForTransactionReceipt({ hash });
        if (receipt.status !== "success") throw new Error(`revokeAppId(${node.appId}) reverted`);
      }
      return {
        detail: `${kind === "node-evict" ? "owner evicts" : "owner revokes the app id of"} ${node.name}`,
        // Everyone drops it and moves to the epoch its departure opens.
        scope: "all",
        holdMs: 0,
        budgetMs: 90_000,
        heal: async () => {},
        cleanup: () => removeOnceGone(ctx, node),
      };
    },
  };
}

export const nodeEvict = departure("node-evict");
export const appRevoke = departure("app-revoke");
