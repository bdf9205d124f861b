// Picks the write path from the configuration: sponsored UserOperations when a bundler is configured
// (nodes hold no ETH), else the funded gas key, else none (the node can run but cannot register).
import type { SidecarConfig } from "../config.ts";
import type { NodeKeys } from "../keys.ts";
import type { Logger } from "../log.ts";
import type { ChainContext } from "./client.ts";
import { createDirectWriter } from "./directWriter.ts";
import { createSponsoredWriter } from "./sponsoredWriter.ts";
import type { ClusterWriter } from "./writer.ts";

export async function selectClusterWriter(options: {
  readonly config: Pick<SidecarConfig, "bundlerUrl" | "paymasterUrl" | "entryPoint" | "accountFactory">;
  readonly chain: ChainContext;
  readonly keys: Pick<NodeKeys, "member">;
  readonly logger: Logger;
}): Promise<ClusterWriter | undefined> {
  const { config, chain, logger } = options;
  if (
    config.bundlerUrl !== undefined &&
    config.paymasterUrl !== undefined &&
    config.accountFactory !== undefined
  ) {
    return createSponsoredWriter({
      chain,
      memberKey: options.keys.member.secret,
      entryPoint: config.entryPoint,
      accountFactory: config.accountFactory,
      bundler: config.bundlerUrl,
      paymaster: config.paymasterUrl,
      logger,
    });
  }
  if (chain.wallet !== undefined) return createDirectWriter({ chain, wallet: chain.wallet, logger });
  return undefined;
}

/** The chain's chosen writer, or the gas key's when none was chosen (tests, tools), or undefined. */
export function writerOf(chain: ChainContext, logger: Logger): ClusterWriter | undefined {
  if (chain.writer !== undefined) return chain.writer;
  return chain.wallet === undefined ? undefined : createDirectWriter({ chain, wallet: chain.wallet, logger });
}
