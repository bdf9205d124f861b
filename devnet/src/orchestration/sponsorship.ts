// The devnet's gas sponsorship: the EntryPoint v0.7, the member-account factory and the paymaster
// deployed next to the cluster, Pimlico's Alto bundler and the sponsorship service as detached
// processes. Nodes then hold no ETH: every write is a UserOperation the operator's paymaster pays.
import { join } from "node:path";
import { deploySponsorship } from "@attestmesh/scripts/deploy/sponsorship.ts";
import { type Address, parseEventLogs } from "viem";
import { entryPoint07Abi } from "viem/account-abstraction";
import { altoInvocation, prepareDevChain, waitForBundler } from "../bundler/alto.ts";
import { devnetAccount, devnetPrivateKey } from "./accounts.ts";
import type { DevnetClients } from "./chain.ts";
import { REPO_ROOT, spawnDetached, waitFor } from "./processes.ts";
import { DEVNET_DIR, type DevnetSponsorship } from "./state.ts";

export const BUNDLER_PORT = 4337;
export const SPONSOR_PORT = 4338;
/** Devnet accounts (development keys only) for the sponsor's signer and Alto's executor and utility. */
const SIGNER_ACCOUNT = 17;
const EXECUTOR_ACCOUNT = 18;
const UTILITY_ACCOUNT = 19;
/** The paymaster's EntryPoint deposit on the devnet. */
const DEPOSIT_WEI = 100n * 10n ** 18n;

/**
 * Deploys the sponsorship's contracts and starts the bundler and the sponsorship service; returns them
 * before they serve, with `ready`, which settles once both do. Alto takes seconds to boot (it deploys its
 * own simulation contracts from its utility account), in which `devnet up` starts the indexer.
 */
export async function launchDevnetSponsorship(
  clients: DevnetClients,
  options: { rpcUrl: string; chainId: number; cluster: Address },
): Promise<{ sponsorship: DevnetSponsorship; ready: Promise<void> }> {
  const deployed = await deploySponsorship({
    wallet: clients.owner,
    client: clients.client,
    params: {
      cluster: options.cluster,
      signer: devnetAccount(SIGNER_ACCOUNT).address,
      owner: clients.owner.account.address,
      depositWei: DEPOSIT_WEI,
    },
  });
  await prepareDevChain(options.rpcUrl);
  const alto = altoInvocation({
    rpcUrl: options.rpcUrl,
    entryPoint: deployed.entryPoint,
    port: BUNDLER_PORT,
    executorKey: devnetPrivateKey(EXECUTOR_ACCOUNT),
    utilityKey: devnetPrivateKey(UTILITY_ACCOUNT),
    logLevel: "info",
  });
  const bundlerPid = spawnDetached(alto.command, alto.args, {
    logFile: join(DEVNET_DIR, "bundler.log"),
    env: { ...process.env, ...alto.env },
  });
  const bundlerUrl = `http://127.0.0.1:${BUNDLER_PORT}`;

  // The sponsorship service needs the chain, not the bundler: both boot at once.
  const sponsorPid = spawnDetached(process.execPath, [join(REPO_ROOT, "sponsor/src/bin.mjs")], {
    logFile: join(DEVNET_DIR, "sponsor.log"),
    env: {
      ...process.env,
      SPONSOR_RPC_URL: options.rpcUrl,
      SPONSOR_CHAIN_ID: String(options.chainId),
      SPONSOR_CLUSTER: options.cluster,
      SPONSOR_ENTRY_POINT: deployed.entryPoint,
      SPONSOR_ACCOUNT_FACTORY: deployed.accountFactory,
      SPONSOR_PAYMASTER: deployed.paymaster,
      SPONSOR_SIGNER_KEY: devnetPrivateKey(SIGNER_ACCOUNT),
      SPONSOR_HOST: "127.0.0.1",
      SPONSOR_PORT: String(SPONSOR_PORT),
      // The caps ledger lives with the devnet; a Hardhat chain does not reorg, so spends count at once.
      SPONSOR_STATE_DB: join(DEVNET_DIR, "sponsor.sqlite"),
      SPONSOR_CONFIRMATIONS: "0",
    },
  });
  const paymasterUrl = `http://127.0.0.1:${SPONSOR_PORT}`;
  const ready = Promise.all([
    waitForBundler(bundlerUrl, deployed.entryPoint, 90_000),
    waitFor(
      "the sponsorship service",
      async () =>
        (await fetch(`${paymasterUrl}/healthz`).then(
          (r) => r.ok,
          () => false,
        )) || undefined,
      30_000,
    ),
  ]).then(() => undefined);
  // Awaited later: a failure meanwhile must not surface as an unhandled rejection first.
  ready.catch(() => undefined);
  return {
    sponsorship: {
      entryPoint: deployed.entryPoint,
      accountFactory: deployed.accountFactory,
      paymaster: deployed.paymaster,
      bundlerUrl,
      paymasterUrl,
      bundlerPid,
      sponsorPid,
    },
    ready,
  };
}

/** The sidecar environment that makes a node sponsored. */
export function sponsoredNodeEnv(sponsorship: DevnetSponsorship): Record<string, string> {
  return {
    ATTESTMESH_BUNDLER_URL: sponsorship.bundlerUrl,
    ATTESTMESH_PAYMASTER_URL: sponsorship.paymasterUrl,
    ATTESTMESH_ENTRY_POINT: sponsorship.entryPoint,
    ATTESTMESH_ACCOUNT_FACTORY: sponsorship.accountFactory,
  };
}

/** What the paymaster paid per sender account (wei), from the EntryPoint's UserOperationEvent logs. */
export async function sponsoredSpend(
  clients: DevnetClients,
  sponsorship: Pick<DevnetSponsorship, "entryPoint" | "paymaster">,
  fromBlock: bigint,
): Promise<Map<string, bigint>> {
  const logs = await clients.client.getLogs({ address: sponsorship.entryPoint, fromBlock });
  const spend = new Map<string, bigint>();
  for (const log of parseEventLogs({ abi: entryPoint07Abi, logs, eventName: "UserOperationEvent" })) {
    if (log.args.paymaster.toLowerCase() !== sponsorship.paymaster.toLowerCase()) continue;
    const sender = log.args.sender.toLowerCase();
    spend.set(sender, (spend.get(sender) ?? 0n) + log.args.actualGasCost);
  }
  return spend;
}
