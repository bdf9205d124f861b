// Notices an indexer that lags or omits: while subscribed, the sidecar's own cheap log poll records
// when each log this member should be pushed first appeared; a log no verified push named within the
// threshold is flagged. Polling keeps the mesh correct either way; this only says the indexer is late.
import type { Address, Chain, PublicClient, Transport } from "viem";

export interface LagDetector {
  /** Starts watching from the current confirmed head (called when a subscription is verified). */
  reset(): Promise<void>;
  /** A verified push named this log. */
  pushed(txHash: string, logIndex: number): void;
  /** Reads new logs, then returns the logs seen by polling and not pushed within the threshold. */
  check(): Promise<number>;
}

export function createLagDetector(options: {
  readonly client: PublicClient<Transport, Chain | undefined>;
  readonly cluster: Address;
  readonly confirmations: number;
  readonly thresholdMs: number;
  /** Whether a log is one this member should be pushed (not another member's message). */
  readonly relevant: (topics: readonly string[]) => boolean;
  readonly now?: () => number;
}): LagDetector {
  const now = options.now ?? Date.now;
  let next: bigint | undefined;
  const pending = new Map<string, number>();
  /** Logs pushed before polling saw them; bounded. */
  const pushedEarly = new Set<string>();
  const key = (txHash: string, logIndex: number) => `${txHash.toLowerCase()}:${logIndex}`;

  async function confirmedHead(): Promise<bigint> {
    const head = await options.client.getBlockNumber({ cacheTime: 0 });
    return head - BigInt(options.confirmations);
  }

  return {
    async reset() {
      next = (await confirmedHead()) + 1n;
      pending.clear();
      pushedEarly.clear();
    },
    pushed(txHash, logIndex) {
      const k = key(txHash, logIndex);
      if (!pending.delete(k)) {
        pushedEarly.add(k);
        if (pushedEarly.size > 10_000) pushedEarly.delete(pushedEarly.values().next().value!);
      }
    },
    async check() {
      if (next === undefined) return 0;
      const to = await confirmedHead();
      if (to >= next) {
        const from = to - next > 1000n ? to - 1000n : next;
        const logs = await options.client.getLogs({ address: options.cluster, fromBlock: from, toBlock: to });
        for (const log of logs) {
          if (log.transactionHash === null || log.logIndex === null || !options.relevant(log.topics))
            continue;
          const k = key(log.transactionHash, log.logIndex);
          if (pushedEarly.delete(k)) continue;
          if (!pending.has(k)) pending.set(k, now());
        }
        next = to + 1n;
      }
      let late = 0;
      for (const [k, seenAt] of pending) {
        if (now() - seenAt >= options.thresholdMs) {
          late += 1;
          pending.delete(k);
        }
      }
      return late;
    },
  };
}
