// Follows one cluster's logs at the confirmed head (head − confirmations): eth_getLogs in batches of at
// most `batchBlocks` from the start block (narrowed, and kept narrower, when the provider refuses the
// range: shared/src/chain/logRange.ts), and reorg detection by block hash. Before each advance it
// checks that the last processed block still has the hash it had; if not, it walks back over the
// hashes it remembers to the newest block still on the chain, retracts every log emitted above it
// (`removed: true`, newest first) and reads forward again, so what changed is emitted anew.
import { createLogScanner } from "@attestmesh/shared/chain/logRange.ts";
import type { Address, Chain, Hex, PublicClient, Transport } from "viem";
import type { Logger } from "./log.ts";

export interface ChainLog {
  readonly address: Address;
  readonly topics: readonly Hex[];
  readonly data: Hex;
  readonly blockNumber: bigint;
  readonly blockHash: Hex;
  readonly transactionHash: Hex;
  readonly logIndex: number;
}

export interface FollowerEvent {
  readonly log: ChainLog;
  readonly removed: boolean;
}

export interface TickResult {
  readonly head: bigint;
  /** The last block fully processed (confirmed); undefined before the first block. */
  readonly processed: bigint | undefined;
  readonly processedHash: Hex | undefined;
  readonly events: readonly FollowerEvent[];
  readonly reorg: { readonly forkBlock: bigint; readonly retracted: number } | undefined;
}

export interface ClusterFollower {
  /** One step: reorg check, then read up to the confirmed head. Errors leave the state unchanged. */
  tick(): Promise<TickResult>;
  /** The next block to read. */
  nextBlock(): bigint;
}

/** How many remembered block hashes (and retractable logs' blocks) are kept. */
const HASH_MEMORY = 512;

export function createClusterFollower(options: {
  readonly client: PublicClient<Transport, Chain | undefined>;
  readonly cluster: Address;
  /** undefined: the confirmed head at the first tick. */
  readonly startBlock: bigint | undefined;
  readonly confirmations: number;
  readonly batchBlocks: number;
  readonly logger: Logger;
}): ClusterFollower {
  const { client, cluster, logger } = options;
  const confirmations = BigInt(options.confirmations);
  const scanner = createLogScanner({
    maxBlocks: BigInt(options.batchBlocks),
    onShrink: (blocks, error) =>
      logger.warn(
        { cluster, blocks: Number(blocks), err: error },
        "the provider refused the log range; reading narrower batches",
      ),
  });
  let next: bigint | undefined = options.startBlock;
  /** Hashes of processed blocks we saw (batch ends and blocks with logs), by number. */
  const hashes = new Map<bigint, Hex>();
  /** Emitted logs that a reorg could still retract, oldest first. */
  let live: ChainLog[] = [];

  async function hashAt(blockNumber: bigint): Promise<Hex | undefined> {
    try {
      const block = await client.getBlock({ blockNumber, includeTransactions: false });
      return block.hash ?? undefined;
    } catch (error) {
      // A block above the node's head (e.g. after evm_revert) does not exist: not on the chain.
      if (error instanceof Error && /not found|could not be found/i.test(error.message)) return undefined;
      throw error;
    }
  }

  function prune(): void {
    if (hashes.size <= HASH_MEMORY) return;
    const keep = [...hashes.keys()].sort((a, b) => (a < b ? -1 : 1)).slice(-HASH_MEMORY);
    const oldest = keep[0]!;
    for (const n of hashes.keys()) if (n < oldest) hashes.delete(n);
    live = live.filter((l) => l.blockNumber >= oldest);
  }

  /** The newest remembered block still on the chain, or one below the oldest remembered. */
  async function findFork(): Promise<bigint> {
    const known = [...hashes.keys()].sort((a, b) => (a > b ? -1 : 1));
    for (const n of known) {
      if ((await hashAt(n)) === hashes.get(n)) return n;
    }
    const oldest = known[known.length - 1];
    return oldest === undefined ? (next ?? 0n) - 1n : oldest - 1n;
  }

  return {
    nextBlock: () => next ?? 0n,
    async tick() {
      // The head and the last processed block's hash side by side, then each batch's logs and its end
      // block's hash side by side: two round trips for a step that finds one new block, not four.
      const checked = next === undefined ? undefined : next - 1n;
      const checkedHash = checked === undefined ? undefined : hashes.get(checked);
      const [head, checkedNow] = await Promise.all([
        client.getBlockNumber({ cacheTime: 0 }),
        checked === undefined || checkedHash === undefined ? undefined : hashAt(checked),
      ]);
      const target = head - confirmations;
      const events: FollowerEvent[] = [];
      let reorg: TickResult["reorg"];
      if (next === undefined) {
        next = target < 0n ? 0n : target + 1n;
        logger.info(
          { cluster, startBlock: next },
          "no start block configured: following from the confirmed head",
        );
      }
      let cursor = next;
      // Work on copies: the state changes only when the whole tick succeeded.
      const newHashes = new Map(hashes);
      let newLive = [...live];

      if (checkedHash !== undefined && checkedNow !== checkedHash) {
        const fork = await findFork();
        const retracted = newLive.filter((l) => l.blockNumber > fork).reverse();
        for (const log of retracted) events.push({ log, removed: true });
        newLive = newLive.filter((l) => l.blockNumber <= fork);
        for (const n of [...newHashes.keys()]) if (n > fork) newHashes.delete(n);
        cursor = fork + 1n;
        reorg = { forkBlock: fork, retracted: retracted.length };
        logger.warn(
          { cluster, forkBlock: fork, retracted: retracted.length },
          "reorg: re-reading from the fork",
        );
      }

      while (cursor <= target) {
        const to = cursor + scanner.blocks - 1n < target ? cursor + scanner.blocks - 1n : target;
        const [logs, endHash] = await Promise.all([
          scanner.forward(cursor, to, (fromBlock, toBlock) =>
            client.getLogs({ address: cluster, fromBlock, toBlock }),
          ),
          hashAt(to),
        ]);
        if (endHash === undefined) break;
        const ordered = logs
          .filter((l) => !l.removed && l.blockHash !== null && l.transactionHash !== null)
          .sort((a, b) =>
            a.blockNumber === b.blockNumber
              ? a.logIndex! - b.logIndex!
              : a.blockNumber! < b.blockNumber!
                ? -1
                : 1,
          );
        const endLogs = ordered.filter((l) => l.blockNumber === to);
        // The batch end moved to another fork between the two calls: read it again next tick.
        if (endLogs.some((l) => l.blockHash !== endHash)) break;
        for (const l of ordered) {
          const log: ChainLog = {
            address: l.address,
            topics: l.topics as Hex[],
            data: l.data,
            blockNumber: l.blockNumber!,
            blockHash: l.blockHash!,
            transactionHash: l.transactionHash!,
            logIndex: l.logIndex!,
          };
          newHashes.set(log.blockNumber, log.blockHash);
          newLive.push(log);
          events.push({ log, removed: false });
        }
        newHashes.set(to, endHash);
        cursor = to + 1n;
      }

      next = cursor;
      hashes.clear();
      for (const [n, h] of newHashes) hashes.set(n, h);
      live = newLive;
      prune();
      const processed = cursor - 1n;
      return {
        head,
        processed: processed >= 0n ? processed : undefined,
        processedHash: hashes.get(processed),
        events,
        reorg,
      };
    },
  };
}
