// The sponsored writer: each cluster call becomes an ERC-4337 UserOperation from the node's member
// account, approved by the operator's sponsorship service (an ERC-7677 paymaster web service) and
// sent through any bundler. The node holds no ETH; its member key signs the operation.
//
// The account's EntryPoint nonce moves only when an operation is included, so two operations built at
// the same moment would carry the same nonce and one would be dropped: submissions from this account
// go one at a time, each until its inclusion.
import { clusterAbi, memberAccountAbi } from "@attestmesh/shared/contracts/abi.ts";
import { sponsorRequestDigest } from "@attestmesh/shared/contracts/sponsorRequest.ts";
import { Mutex } from "async-mutex";
import {
  type Address,
  BaseError,
  decodeFunctionData,
  encodeFunctionData,
  type Hex,
  http,
  RpcRequestError,
  type Transport,
} from "viem";
import {
  type BundlerClient,
  createBundlerClient,
  createPaymasterClient,
  type GetPaymasterDataParameters,
  type GetPaymasterStubDataParameters,
} from "viem/account-abstraction";
import { privateKeyToAccount } from "viem/accounts";
import { retryableError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Secret } from "../secret.ts";
import type { ChainContext } from "./client.ts";
import { type MemberSmartAccount, toMemberAccount } from "./memberAccount.ts";
import { type ClusterCall, type ClusterWriter, simulateClusterCall, type WriteReceipt } from "./writer.ts";

export interface SponsoredWriterOptions {
  readonly chain: ChainContext;
  readonly memberKey: Secret<Hex>;
  readonly entryPoint: Address;
  readonly accountFactory: Address;
  readonly bundler: Transport | string;
  readonly paymaster: Transport | string;
  readonly logger: Logger;
}

/** The cluster function an operation calls, for messages ("register", …). */
function functionOf(callData: Hex): string {
  try {
    const [, , data] = decodeFunctionData({ abi: memberAccountAbi, data: callData }).args as readonly [
      Address,
      bigint,
      Hex,
    ];
    return decodeFunctionData({ abi: clusterAbi, data }).functionName;
  } catch {
    return "an operation";
  }
}

/** The sponsorship service said no; its message carries the policy's reason. */
function sponsorRefusal(error: unknown, functionName: string): never {
  const rpc = error instanceof BaseError ? error.walk((e) => e instanceof RpcRequestError) : undefined;
  const message =
    rpc instanceof RpcRequestError ? rpc.details : error instanceof Error ? error.message : String(error);
  const reason = /^([a-z-]+):/.exec(message)?.[1] ?? "unavailable";
  throw retryableError(
    "SponsorRefused",
    `the sponsorship service refused to pay for ${functionName} (${message}); the operator's policy decides, and this node retries`,
    { cause: error, details: { reason } },
  );
}

export async function createSponsoredWriter(options: SponsoredWriterOptions): Promise<ClusterWriter> {
  const { chain, logger } = options;
  const owner = privateKeyToAccount(options.memberKey.reveal());
  const account: MemberSmartAccount = await toMemberAccount({
    client: chain.publicClient,
    owner,
    entryPoint: options.entryPoint,
    factory: options.accountFactory,
  });
  const toTransport = (t: Transport | string) => (typeof t === "string" ? http(t, { retryCount: 0 }) : t);
  const paymasterClient = createPaymasterClient({ transport: toTransport(options.paymaster) });
  const bundler: BundlerClient = createBundlerClient({
    client: chain.publicClient,
    account,
    transport: toTransport(options.bundler),
    paymaster: {
      async getPaymasterStubData(parameters: GetPaymasterStubDataParameters) {
        return paymasterClient
          .getPaymasterStubData(parameters)
          .catch((e) => sponsorRefusal(e, functionOf(parameters.callData)));
      },
      async getPaymasterData(parameters: GetPaymasterDataParameters) {
        return paymasterClient
          .getPaymasterData(parameters)
          .catch((e) => sponsorRefusal(e, functionOf(parameters.callData)));
      },
    },
    // The receipt poll: a registration's peers wait for it, and an operation is included within a
    // block or two, so a few cheap requests more per write are worth 75 ms of a join on average.
    pollingInterval: 100,
  });
  const nonceLock = new Mutex();
  return {
    mode: "sponsored",
    from: account.address,
    submit(call, submitOptions = {}) {
      return nonceLock
        .runExclusive(() => submitOne(call, submitOptions.timeoutMs ?? 120_000))
        .then(async (written) => {
          // Deeper confirmations need not hold the account: the next operation's nonce is already due.
          if ((submitOptions.confirmations ?? 1) > 1) {
            await chain.publicClient.waitForTransactionReceipt({
              hash: written.txHash,
              confirmations: submitOptions.confirmations ?? 1,
              timeout: submitOptions.timeoutMs ?? 120_000,
            });
          }
          return written;
        });
    },
  };

  async function submitOne(call: ClusterCall, timeoutMs: number): Promise<WriteReceipt> {
    // Simulated from the account so a cluster refusal is decoded before anyone is asked to pay.
    await simulateClusterCall(chain, call, account.address);
    const data = encodeFunctionData({
      abi: clusterAbi,
      functionName: call.functionName,
      args: call.args,
    } as never);
    // The sponsor approves only what the member key asked for: it signs the operation's identity
    // (account, nonce, initCode, callData) and sends it as the ERC-7677 context.
    const calls = [{ to: chain.cluster, data }] as const;
    const nonce = await account.getNonce();
    const factoryArgs = (await account.isDeployed()) ? {} : await account.getFactoryArgs();
    const memberSignature = await owner.signMessage({
      message: {
        raw: sponsorRequestDigest({
          chainId: chain.chainId,
          entryPoint: options.entryPoint,
          sender: account.address,
          nonce,
          factory: factoryArgs.factory,
          factoryData: factoryArgs.factoryData,
          callData: await account.encodeCalls(calls),
        }),
      },
    });
    const userOpHash = await bundler.sendUserOperation({
      calls,
      nonce,
      paymasterContext: { memberSignature },
    });
    logger.info(
      { userOpHash, function: call.functionName, account: account.address },
      "sponsored operation submitted",
    );
    const receipt = await bundler.waitForUserOperationReceipt({ hash: userOpHash, timeout: timeoutMs });
    return {
      txHash: receipt.receipt.transactionHash,
      blockNumber: receipt.receipt.blockNumber,
      status: receipt.success ? "success" : "reverted",
      gasUsed: receipt.actualGasUsed,
      feeWei: receipt.actualGasCost,
      from: account.address,
      sponsored: true,
      userOpHash,
      logs: receipt.logs.map(({ address, topics, data }) => ({ address, topics, data })),
    };
  }
}
