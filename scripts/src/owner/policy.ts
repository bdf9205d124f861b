// `policy show`: the policy as the chain's views report it now; `policy history`: the same policy rebuilt
// from events alone (policyHistory.ts), with the events that made it. Both return the same shape, so an
// auditor can compare them; both read at one block.

import type { Address, Hex } from "viem";
import { type ClusterContext, readCluster } from "./context.ts";
import { clusterLogs, findDeployBlock } from "./logs.ts";
import { POLICY_EVENT_NAMES, type PolicyHistory, rebuildPolicy } from "./policyHistory.ts";
import { jsonSafe } from "./transact.ts";

export interface PolicyView {
  readonly cluster: Address;
  readonly chainId: number;
  readonly block: string;
  readonly owner: Address;
  readonly policy: PolicyHistory;
}

export interface PolicyEventRow {
  readonly block: string;
  readonly logIndex: number;
  readonly transactionHash: Hex;
  readonly name: string;
  readonly args: Readonly<Record<string, unknown>>;
}

export interface PolicyHistoryView {
  readonly cluster: Address;
  readonly chainId: number;
  readonly fromBlock: string;
  readonly toBlock: string;
  readonly events: readonly PolicyEventRow[];
  readonly policy: PolicyHistory;
}

const sortHex = <T extends string>(values: readonly T[]): T[] =>
  [...values].map((v) => v.toLowerCase() as T).sort();

/** The live policy: views for the allowlists and revocation times; reasons from the revocation events. */
export async function readPolicy(
  ctx: ClusterContext,
  options: { fromBlock?: bigint } = {},
): Promise<PolicyView> {
  const head = await ctx.net.client.getBlockNumber();
  const cluster = readCluster(ctx);
  const at = { blockNumber: head };
  const [snapshot, owner] = await Promise.all([cluster.read.policySnapshot(at), cluster.read.owner(at)]);
  // The views cannot enumerate revocations: the events name the candidates, the views confirm them.
  const fromBlock = options.fromBlock ?? (await findDeployBlock(ctx, head));
  const logs = await clusterLogs(ctx, { fromBlock, toBlock: head });
  const replayed = rebuildPolicy(logs);
  const appIdRevocations = [];
  for (const r of replayed.appIdRevocations) {
    const revokedAt = await cluster.read.appIdRevokedAt([r.appId], at);
    if (revokedAt !== 0n) appIdRevocations.push({ ...r, revokedAt });
  }
  const deviceRevocations = [];
  for (const r of replayed.deviceRevocations) {
    const revokedAt = await cluster.read.deviceRevokedAt([r.deviceId], at);
    if (revokedAt !== 0n) deviceRevocations.push({ ...r, revokedAt });
  }
  return {
    cluster: ctx.cluster,
    chainId: ctx.net.chain.id,
    block: head.toString(),
    owner,
    policy: {
      allowAnyDevice: snapshot.allowAnyDevice,
      requireTcbUpToDate: snapshot.requireTcbUpToDate,
      composeHashes: sortHex(snapshot.composeHashes),
      indexerComposeHashes: sortHex(snapshot.indexerComposeHashes),
      deviceIds: sortHex(snapshot.deviceIds),
      appIds: [...snapshot.appIds].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1)),
      indexerAppIds: [...snapshot.indexerAppIds].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1)),
      kmsRoots: [...snapshot.kmsRoots].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1)),
      appIdRevocations,
      deviceRevocations,
    },
  };
}

/** The policy rebuilt from the diamond's events alone, and those events. */
export async function readPolicyHistory(
  ctx: ClusterContext,
  options: { fromBlock?: bigint } = {},
): Promise<PolicyHistoryView> {
  const toBlock = await ctx.net.client.getBlockNumber();
  const fromBlock = options.fromBlock ?? (await findDeployBlock(ctx, toBlock));
  const logs = (await clusterLogs(ctx, { fromBlock, toBlock })).filter((l) =>
    POLICY_EVENT_NAMES.has(l.eventName),
  );
  return {
    cluster: ctx.cluster,
    chainId: ctx.net.chain.id,
    fromBlock: fromBlock.toString(),
    toBlock: toBlock.toString(),
    events: logs.map((l) => ({
      block: l.blockNumber.toString(),
      logIndex: l.logIndex,
      transactionHash: l.transactionHash,
      name: l.eventName,
      args: jsonSafe(l.args) as Record<string, unknown>,
    })),
    policy: rebuildPolicy(logs),
  };
}
