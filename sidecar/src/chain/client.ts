// The sidecar's view of the chain: the quorum read interface over the pinned providers (reads.ts) for
// every read that decides something, a failover public client over the same providers for the rest,
// and, when a gas key is configured, one wallet client that pays for the registration transaction.

import { majority } from "@attestmesh/shared/service/rpcProviders.ts";
import { pino } from "pino";
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
import { AttestmeshError, fatalError, retryableError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Secret } from "../secret.ts";
import { type ChainReads, createChainReads, type ReadsObserver, type RpcEndpoint } from "./reads.ts";
import type { ClusterWriter } from "./writer.ts";

const silentLogger = pino({ level: "silent" });

export type GasWallet = WalletClient<Transport, Chain, Account>;

export interface ChainContext {
  readonly chainId: number;
  readonly chain: Chain;
  readonly cluster: Address;
  /** Quorum reads: everything that decides membership, epochs, commitments, the indexer, messages. */
  readonly reads: ChainReads;
  /** Failover over the providers, for reads that decide nothing (gas, receipts, balances). */
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
 * Connects to the chain through the pinned providers and checks it is the one configured: `quorum`
 * providers agree on the chain id, which must be the expected (pinned) one, and on the code at the
 * cluster address. A wrong chain or address is fatal; providers that do not answer are not.
 */
export async function connectChain(options: {
  /** The providers; or `transport`, one provider (a quorum of one: tests with one chain). */
  readonly endpoints?: readonly RpcEndpoint[];
  readonly transport?: Transport;
  /** Default a majority of the providers. */
  readonly quorum?: number;
  readonly cluster: Address;
  readonly expectedChainId?: number | undefined;
  readonly gasKey?: Secret<Hex> | undefined;
  readonly pollingIntervalMs?: number;
  readonly logger?: Logger;
  readonly observer?: ReadsObserver;
}): Promise<ChainContext> {
  const { cluster } = options;
  const endpoints =
    options.endpoints ??
    (options.transport === undefined ? [] : [{ origin: "rpc", transport: options.transport }]);
  const quorum = options.quorum ?? majority(endpoints.length);
  const logger = options.logger ?? silentLogger;
  const probe = createChainReads({
    endpoints,
    quorum,
    logger,
    ...(options.observer === undefined ? {} : { observer: options.observer }),
  });
  let chainId: number;
  let code: Hex;
  try {
    chainId = await probe.chainId();
    if (options.expectedChainId !== undefined && chainId !== options.expectedChainId) {
      throw fatalError(
        "ChainIdMismatch",
        `${quorum} RPC providers serve chain ${chainId} but the pinned chain id is ${options.expectedChainId}; fix the pinned providers or the chain id.`,
        { details: { rpcChainId: chainId, expectedChainId: options.expectedChainId } },
      );
    }
    code = await probe.getCode(cluster, await probe.agreedBlock(0));
  } catch (cause) {
    if (cause instanceof AttestmeshError && !cause.retryable) throw cause;
    throw retryableError(
      "RpcUnavailable",
      `not enough RPC providers answered alike (${quorum} of ${endpoints.length} must); check the providers and the network.`,
      { cause },
    );
  }
  if (code === "0x") {
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
  const reads = createChainReads({
    endpoints,
    quorum,
    chain,
    logger,
    ...(options.observer === undefined ? {} : { observer: options.observer }),
  });
  const transport = reads.failoverTransport;
  // cacheTime 0: receipts and nonces must be fresh, not cached for a poll interval.
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
  return { chainId, chain, cluster, reads, publicClient, wallet };
}
