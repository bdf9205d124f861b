// The spend watcher: follows the EntryPoint's UserOperationEvent for operations this paymaster paid,
// `confirmations` blocks behind the head (a reorg shallower than that changes nothing recorded), and
// records each one's actualGasCost against the member key in the cap ledger, converting the approval's
// reservation. The cursor and the spends are written in one transaction, so a restart resumes exactly
// where it stopped and never counts an event twice.
import type { Address, Chain, Hex, PublicClient, Transport } from "viem";
import { entryPoint07Abi } from "viem/account-abstraction";
import type { CapLedger, PaidOperation } from "./caps.ts";
import type { Logger } from "./log.ts";

const USER_OPERATION_EVENT = entryPoint07Abi.find(
  (item): item is Extract<(typeof entryPoint07Abi)[number], { name: "UserOperationEvent" }> =>
    item.type === "event" && item.name === "UserOperationEvent",
);
/** Blocks per getLogs call, so a long catch-up stays within providers' range limits. */
const MAX_RANGE = 2_000n;

export interface SpendWatcher {
  /** Records every confirmed event up to the confirmed head; returns the new cursor block. */
  sync(): Promise<bigint>;
  /** Polls until stopped; a failed poll is logged and retried at the next interval. */
  start(): void;
  stop(): Promise<void>;
}

export function createSpendWatcher(options: {
  readonly client: PublicClient<Transport, Chain | undefined>;
  readonly entryPoint: Address;
  readonly paymaster: Address;
  readonly ledger: CapLedger;
  readonly confirmations: number;
  /** The member key an account belongs to, for an event no reservation names. */
  readonly ownerOf: (account: Address) => Promise<Address | undefined>;
  readonly logger: Logger;
  readonly pollMs?: number;
}): SpendWatcher {
  const { client, ledger, logger } = options;
  if (USER_OPERATION_EVENT === undefined) throw new Error("entryPoint07Abi has no UserOperationEvent");
  const event = USER_OPERATION_EVENT;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;

  async function sync(): Promise<bigint> {
    const head = await client.getBlockNumber({ cacheTime: 0 });
    const confirmed = head - BigInt(options.confirmations);
    let from = (ledger.cursor()?.block ?? -1n) + 1n;
    if (ledger.cursor() === undefined) {
      // A new ledger starts at the confirmed head: it charges what it approves from now on.
      from = confirmed < 0n ? 0n : confirmed;
    }
    while (from <= confirmed) {
      const to = from + MAX_RANGE - 1n < confirmed ? from + MAX_RANGE - 1n : confirmed;
      const logs = await client.getLogs({
        address: options.entryPoint,
        event,
        args: { paymaster: options.paymaster },
        fromBlock: from,
        toBlock: to,
        strict: true,
      });
      const paid: PaidOperation[] = [];
      const times = new Map<bigint, number>();
      const timeOf = async (block: bigint) => {
        let time = times.get(block);
        if (time === undefined) {
          time = Number((await client.getBlock({ blockNumber: block })).timestamp);
          times.set(block, time);
        }
        return time;
      };
      for (const log of logs) {
        const { userOpHash, sender, nonce, success, actualGasCost } = log.args;
        const owner = ledger.reservedOwner(sender, nonce) ?? (await options.ownerOf(sender));
        if (owner === undefined) {
          logger.warn(
            { userOpHash, sender },
            "paid operation from an account with no member key; not charged",
          );
          continue;
        }
        paid.push({
          userOpHash,
          sender,
          nonce,
          success,
          actualGasCost,
          blockNumber: log.blockNumber,
          blockTimestamp: await timeOf(log.blockNumber),
          txHash: log.transactionHash as Hex,
          owner,
        });
      }
      ledger.settle(paid, { block: to, timestamp: await timeOf(to) });
      for (const op of paid) {
        logger.info(
          {
            userOpHash: op.userOpHash,
            owner: op.owner,
            actualGasCostWei: op.actualGasCost.toString(),
            success: op.success,
            block: op.blockNumber.toString(),
          },
          "paid operation charged to its member key",
        );
      }
      from = to + 1n;
    }
    return ledger.cursor()?.block ?? -1n;
  }

  function schedule() {
    if (stopped) return;
    timer = setTimeout(() => {
      running = running
        .then(sync)
        .catch((error: unknown) => logger.warn({ err: error }, "spend watcher poll failed; retrying"))
        .finally(schedule);
    }, options.pollMs ?? 2_000);
  }

  return {
    sync: () => {
      const next = running.then(sync);
      running = next.catch(() => undefined);
      return next;
    },
    start() {
      stopped = false;
      schedule();
    },
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await running;
    },
  };
}
