// Reads what the dashboard needs from the chain with the CLI's own readers (members.ts, logs.ts) and the
// cluster ABI: logs are fetched once and then only for new blocks; members, policy views and the CSK are
// read at the head on every call. Read-only: it holds no key and sends nothing.

import { memberAccountFactoryAbi } from "@attestmesh/shared/contracts/abi.ts";
import { type Address, parseEventLogs } from "viem";
import { entryPoint07Abi } from "viem/account-abstraction";
import { type ClusterContext, readCluster } from "../owner/context.ts";
import { clusterLogs, findDeployBlock, rawLogs } from "../owner/logs.ts";
import { listMembers } from "../owner/members.ts";
import type { ChainFacts, FactLog, SpendEntry } from "./buildView.ts";
import type { NotAvailable } from "./model.ts";

/** The ERC-4337 contracts whose events give the sponsorship spend (absent: spend is not available). */
export interface SponsorshipAddresses {
  readonly entryPoint: Address;
  readonly paymaster: Address;
  readonly accountFactory?: Address;
}

export interface ChainReaderOptions {
  readonly fromBlock?: bigint;
  /** How the context's client reads (one RPC, or a quorum), for the page's footer. */
  readonly reads?: string;
  readonly sponsorship?: SponsorshipAddresses;
}

export interface ChainReader {
  read(): Promise<ChainFacts>;
}

const NO_SPONSORSHIP: NotAvailable = {
  available: false,
  reason: "no paymaster given: pass --entry-point and --paymaster (the devnet passes its own)",
};

export function createChainReader(ctx: ClusterContext, options: ChainReaderOptions = {}): ChainReader {
  const client = ctx.net.client;
  const cluster = readCluster(ctx);
  let fromBlock: bigint | undefined;
  let lastBlock = -1n;
  let logs: FactLog[] = [];
  let spend: SpendEntry[] = [];
  let accountOwners = new Map<string, string>();
  let blockTimes = new Map<bigint, number>();

  async function timesOf(blocks: Iterable<bigint>): Promise<void> {
    const missing = [...new Set(blocks)].filter((b) => !blockTimes.has(b));
    for (let i = 0; i < missing.length; i += 20) {
      const batch = missing.slice(i, i + 20);
      const found = await Promise.all(batch.map((blockNumber) => client.getBlock({ blockNumber })));
      for (const block of found) blockTimes.set(block.number, Number(block.timestamp));
    }
  }

  async function catchUp(head: bigint): Promise<void> {
    if (head < lastBlock) {
      // The chain went back (a devnet restarted): start over.
      lastBlock = -1n;
      logs = [];
      spend = [];
      accountOwners = new Map();
      blockTimes = new Map();
      fromBlock = undefined;
    }
    fromBlock ??= options.fromBlock ?? (await findDeployBlock(ctx, head));
    if (head <= lastBlock) return;
    const start = lastBlock < fromBlock ? fromBlock : lastBlock + 1n;
    const fresh = await clusterLogs(ctx, { fromBlock: start, toBlock: head });
    const added: FactLog[] = fresh.map((l) => ({
      eventName: l.eventName,
      args: l.args,
      blockNumber: l.blockNumber,
      logIndex: l.logIndex,
      transactionHash: l.transactionHash,
    }));
    const blocks = added.map((l) => l.blockNumber);
    const s = options.sponsorship;
    if (s !== undefined) {
      const raw = await rawLogs(ctx, s.entryPoint, start, head);
      for (const log of parseEventLogs({
        abi: entryPoint07Abi,
        logs: raw,
        eventName: "UserOperationEvent",
      })) {
        if (log.args.paymaster.toLowerCase() !== s.paymaster.toLowerCase()) continue;
        spend.push({ sender: log.args.sender, wei: log.args.actualGasCost, blockNumber: log.blockNumber });
        blocks.push(log.blockNumber);
      }
      if (s.accountFactory !== undefined) {
        const created = await rawLogs(ctx, s.accountFactory, start, head);
        for (const log of parseEventLogs({
          abi: memberAccountFactoryAbi,
          logs: created,
          eventName: "MemberAccountCreated",
        })) {
          accountOwners.set(log.args.account.toLowerCase(), log.args.owner.toLowerCase());
        }
      }
    }
    await timesOf(blocks);
    logs = logs.concat(added);
    lastBlock = head;
  }

  return {
    async read() {
      // viem caches the block number for its polling interval; a live view needs the real head.
      const head = await client.getBlockNumber({ cacheTime: 0 });
      await catchUp(head);
      const at = { blockNumber: head };
      const [members, snapshot, owner, csk, indexers] = await Promise.all([
        listMembers(ctx),
        cluster.read.policySnapshot(at),
        cluster.read.owner(at),
        cluster.read.currentCsk(at).catch(() => undefined),
        cluster.read.indexers(at),
      ]);
      const appRevoked = new Map<string, bigint>();
      const deviceRevoked = new Map<string, bigint>();
      for (const log of logs) {
        if (log.eventName === "AppIdRevokedAt") {
          const appId = (log.args as { appId: Address }).appId;
          appRevoked.set(appId.toLowerCase(), await cluster.read.appIdRevokedAt([appId], at));
        } else if (log.eventName === "DeviceRevokedAt") {
          const deviceId = (log.args as { deviceId: `0x${string}` }).deviceId;
          deviceRevoked.set(deviceId.toLowerCase(), await cluster.read.deviceRevokedAt([deviceId], at));
        }
      }
      const [epoch, commitment, committer] = csk ?? [0n, "0x", 0n];
      return {
        network: ctx.net.name,
        chainId: ctx.net.chain.id,
        cluster: ctx.cluster,
        owner,
        head,
        fromBlock: fromBlock ?? 0n,
        members,
        logs,
        blockTimes,
        policy: {
          allowAnyDevice: snapshot.allowAnyDevice,
          composeHashes: snapshot.composeHashes,
          deviceIds: snapshot.deviceIds,
          appIds: snapshot.appIds,
          kmsRoots: snapshot.kmsRoots,
        },
        revokedAt: { app: appRevoked, device: deviceRevoked },
        indexers: indexers.map((r) => ({
          endpoint: r.endpoint,
          signingKey: r.signingKey.toLowerCase(),
          appId: r.appId,
          codeId: r.codeId,
        })),
        ...(options.reads === undefined ? {} : { reads: options.reads }),
        currentCsk: csk === undefined ? null : { epoch, commitment, committer },
        accountOwners,
        spend:
          options.sponsorship === undefined
            ? NO_SPONSORSHIP
            : { available: true, paymaster: options.sponsorship.paymaster, entries: spend },
      };
    },
  };
}
