// The chain-id check every daemon runs at start: the RPC must serve the chain the configuration names.
// An RPC that does not answer is retryable; the wrong chain is fatal.
import { fatalError, retryableError } from "./errors.ts";

/**
 * Reads the RPC's chain id and compares it with `expected` (when set); `rpcVariable` and
 * `chainIdVariable` name the settings in the messages. Returns the RPC's chain id.
 */
export async function checkChainId(options: {
  readonly getChainId: () => Promise<number>;
  readonly expected: number | undefined;
  readonly rpcVariable: string;
  readonly chainIdVariable: string;
}): Promise<number> {
  let chainId: number;
  try {
    chainId = await options.getChainId();
  } catch (cause) {
    throw retryableError(
      "RpcUnavailable",
      `the RPC endpoint did not answer; check ${options.rpcVariable} and the network.`,
      { cause },
    );
  }
  if (options.expected !== undefined && chainId !== options.expected) {
    throw fatalError(
      "ChainIdMismatch",
      `the RPC serves chain ${chainId} but ${options.chainIdVariable} is ${options.expected}; point ${options.rpcVariable} at the right chain or fix ${options.chainIdVariable}.`,
      { details: { rpcChainId: chainId, expectedChainId: options.expected } },
    );
  }
  return chainId;
}
