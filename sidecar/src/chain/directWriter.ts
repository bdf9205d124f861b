// The funded-key writer: the gas key sends the cluster call as an ordinary transaction. Kept for
// chains without a bundler; it was the only write path before sponsorship.
//
// One gas key, one nonce sequence: the node's loops (registration, CSK commit and confirmation, messages)
// may submit at the same moment, and two transactions priced from the same pending nonce would collide
// ("nonce too low"). Submissions therefore take the key's lock from simulation until the node has the
// transaction; only the wait for its inclusion runs concurrently.
import { Mutex } from "async-mutex";
import { retryableError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ChainContext, GasWallet } from "./client.ts";
import { type ClusterWriter, simulateClusterCall } from "./writer.ts";

export function createDirectWriter(options: {
  readonly chain: ChainContext;
  readonly wallet: GasWallet;
  readonly logger: Logger;
}): ClusterWriter {
  const { chain, wallet, logger } = options;
  const from = wallet.account.address;
  const nonceLock = new Mutex();
  return {
    mode: "direct",
    from,
    async submit(call, submitOptions = {}) {
      const hash = await nonceLock.runExclusive(async () => {
        // Nodes may not report an empty account clearly (Hardhat answers "invalid parameters"), so say it.
        const balance = await chain.publicClient.getBalance({ address: from });
        if (balance === 0n) {
          throw retryableError(
            "GasKeyUnfunded",
            `the gas account ${from} (ATTESTMESH_GAS_KEY) has no funds to pay for ${call.functionName}; fund it, or configure ATTESTMESH_BUNDLER_URL and ATTESTMESH_PAYMASTER_URL for sponsored operations`,
            { details: { account: from } },
          );
        }
        const { request } = await simulateClusterCall(chain, call, wallet.account);
        return wallet.writeContract(request as never);
      });
      logger.info({ txHash: hash, function: call.functionName, from }, "transaction submitted");
      const receipt = await chain.publicClient.waitForTransactionReceipt({
        hash,
        confirmations: Math.max(1, submitOptions.confirmations ?? 1),
        timeout: submitOptions.timeoutMs ?? 120_000,
      });
      return {
        txHash: hash,
        blockNumber: receipt.blockNumber,
        status: receipt.status,
        gasUsed: receipt.gasUsed,
        feeWei: receipt.gasUsed * receipt.effectiveGasPrice,
        from,
        sponsored: false,
        logs: receipt.logs.map(({ address, topics, data }) => ({ address, topics, data })),
      };
    },
  };
}
