// `attestmesh-sponsor`: the sponsorship webhook as a daemon. Checks the chain and the paymaster's
// signer at start (a key that is not the paymaster's signer would approve nothing), then serves.
import { sponsorPaymasterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { checkChainId } from "@attestmesh/shared/service/chainId.ts";
import { loggableConfig, scrubUrls } from "@attestmesh/shared/service/log.ts";
import { createShutdown, exitOnSignals } from "@attestmesh/shared/service/shutdown.ts";
import { createPublicClient, http, isAddressEqual } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { createCapLedger } from "./caps.ts";
import { parseSponsorConfig } from "./config.ts";
import { fatalError } from "./errors.ts";
import { createLogger, type Logger } from "./log.ts";
import { createSponsorMetrics } from "./metrics.ts";
import { createPolicyChain } from "./policy.ts";
import { type SponsorServer, startSponsorServer } from "./server.ts";
import { createSponsorService } from "./service.ts";

export async function runSponsor(
  env: Readonly<Record<string, string | undefined>>,
  logger: Logger = createLogger({ level: parseSponsorConfig(env).logLevel }),
): Promise<SponsorServer> {
  const config = parseSponsorConfig(env);
  logger.info({ config: loggableConfig(config) }, "attestmesh sponsor starting");
  const client = createPublicClient({ transport: http(config.rpcUrl, { timeout: 10_000, retryCount: 2 }) });
  const chainId = await checkChainId({
    getChainId: () => client.getChainId(),
    expected: config.chainId,
    rpcVariable: "SPONSOR_RPC_URL",
    chainIdVariable: "SPONSOR_CHAIN_ID",
  });
  const signer = privateKeyToAccount(config.signerKey.reveal());
  const onChainSigner = await client.readContract({
    address: config.paymaster,
    abi: sponsorPaymasterAbi,
    functionName: "signer",
  });
  if (!isAddressEqual(onChainSigner, signer.address)) {
    throw fatalError(
      "SignerMismatch",
      `SPONSOR_SIGNER_KEY is for ${signer.address} but the paymaster ${config.paymaster} honours ${onChainSigner}; the paymaster owner must call setSigner, or use the right key`,
    );
  }
  const metrics = createSponsorMetrics();
  const policy = {
    chainId: config.chainId,
    entryPoint: config.entryPoint,
    cluster: config.cluster,
    accountFactory: config.accountFactory,
  };
  const service = createSponsorService({
    policy,
    chain: createPolicyChain(client, policy),
    paymaster: config.paymaster,
    signer,
    caps: createCapLedger({ maxOps: config.maxOpsPerDay, maxWei: config.maxWeiPerDay }),
    validitySeconds: config.validitySeconds,
    logger,
    metrics,
  });
  const server = await startSponsorServer({ service, metrics, logger, host: config.host, port: config.port });
  logger.info(
    { chainId, cluster: config.cluster, paymaster: config.paymaster, signer: signer.address },
    "sponsoring member operations",
  );
  return server;
}

export async function main(): Promise<void> {
  try {
    const logger = createLogger({ level: parseSponsorConfig(process.env).logLevel });
    const server = await runSponsor(process.env, logger);
    const shutdown = createShutdown({ logger });
    shutdown.add("sponsor server", () => server.close());
    exitOnSignals(shutdown, { logger });
  } catch (error) {
    process.stderr.write(`attestmesh-sponsor: ${scrubUrls((error as Error).message)}\n`);
    process.exit(1);
  }
}
