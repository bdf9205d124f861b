// The sidecar's view of the chain: one public client for reads and, when a gas key is configured, one
// wallet client that pays for the registration transaction. Both share one (counted) transport.

import { checkChainId } from "@attestmesh/shared/service/chainId.ts";
import {
  type Account,
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
  defineChain,
  type Hex,
  type PublicClient,
  type Transport,
  type WalletClient,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { fatalError, retryableError } from "../errors.ts";
import type { Secret } from "../secret.ts";
import type { ClusterWriter } from "./writer.ts";

export type GasWallet = WalletClient<Transport, Chain, Account>;

export interface ChainContext {
  readonly chainId: number;
  readonly chain: Chain;
  readonly cluster: Address;
  readonly publicClient: PublicClient<Transport, Chain>;
  /** Undefined without a gas key: the node can run but cannot register. */
  readonly wallet: GasWallet | undefined;
  /**
   * The write path chosen at start (selectWriter.ts): sponsored UserOperations or the gas key. When
   * absent, writers fall back to the gas key (`writerOf`).
   */
  readonly writer?: ClusterWriter | undefined;
}

/**
 * Connects to the chain and checks it is the one configured: the chain id (when expected) and that
 * the cluster address holds a contract. A wrong chain or address is fatal; an unreachable RPC is not.
 */
export async function connectChain(options: {
  readonly transport: Transport;
  readonly cluster: Address;
  readonly expectedChainId?: number | undefined;
  readonly gasKey?: Secret<Hex> | undefined;
  readonly pollingIntervalMs?: number;
}): Promise<ChainContext> {
  const { transport, cluster } = options;
  const probe = createPublicClient({ transport, cacheTime: 0 });
  const chainId = await checkChainId({
    getChainId: () => probe.getChainId(),
    expected: options.expectedChainId,
    rpcVariable: "ATTESTMESH_RPC_URL",
    chainIdVariable: "ATTESTMESH_CHAIN_ID",
  });
  let code: Hex | undefined;
  try {
    code = await probe.getCode({ address: cluster });
  } catch (cause) {
    throw retryableError(
      "RpcUnavailable",
      "the RPC endpoint did not answer; check ATTESTMESH_RPC_URL and the network.",
      { cause },
    );
  }
  if (code === undefined || code === "0x") {
    throw fatalError(
      "ClusterNotFound",
      `no contract at ATTESTMESH_CLUSTER ${cluster} on chain ${chainId}; check the address and the chain.`,
      { details: { cluster, chainId } },
    );
  }
  const chain = defineChain({
    id: chainId,
    name: `chain-${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [] } },
  });
  const pollingInterval = options.pollingIntervalMs ?? 1000;
  // cacheTime 0: the follower must see every new head, not a block number cached for a poll interval.
  const publicClient = createPublicClient({ chain, transport, cacheTime: 0, pollingInterval });
  const wallet =
    options.gasKey === undefined
      ? undefined
      : createWalletClient({
          account: privateKeyToAccount(options.gasKey.reveal()),
          chain,
          transport,
          pollingInterval,
        });
  return { chainId, chain, cluster, publicClient, wallet };
}
