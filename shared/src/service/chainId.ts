// The chain-id check every daemon runs at start: the RPC must serve the chain the configuration names.
// An RPC that does not answer is retryable; the wrong chain is fatal.
import type { AttestmeshError } from "../errors.ts";
import { fatalError, retryableError } from "./errors.ts";

/**
 * Reads the RPC's chain id and compares it with `expected` (when set); `rpcVariable` and
 * `chainIdVariable` name the settings in the messages. A tool with its own wording (the owner CLI)
 * passes `unreachable` and `mismatch` to build the errors. Returns the RPC's chain id.
 */
export async function checkChainId(options: {
  readonly getChainId: () => Promise<number>;
  readonly expected: number | undefined;
  readonly rpcVariable: string;
  readonly chainIdVariable: string;
  readonly unreachable?: (cause: unknown) => AttestmeshError;
  readonly mismatch?: (rpcChainId: number, expected: number) => AttestmeshError;
}): Promise<number> {
  let chainId: number;
  try {
    chainId = await options.getChainId();
  } catch (cause) {
    if (options.unreachable !== undefined) throw options.unreachable(cause);
    throw retryableError(
      "RpcUnavailable",
      `the RPC endpoint did not answer; check ${options.rpcVariable} and the network.`,
      { cause },
    );
  }
  if (options.expected !== undefined && chainId !== options.expected) {
    if (options.mismatch !== undefined) throw options.mismatch(chainId, options.expected);
    throw fatalError(
      "ChainIdMismatch",
      `the RPC serves chain ${chainId} but ${options.chainIdVariable} is ${options.expected}; point ${options.rpcVariable} at the right chain or fix ${options.chainIdVariable}.`,
      { details: { rpcChainId: chainId, expectedChainId: options.expected } },
    );
  }
  return chainId;
}
