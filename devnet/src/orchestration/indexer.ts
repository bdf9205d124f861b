// The devnet's indexers: each with its own dstack simulator socket and app id, the `attestmesh-indexer`
// process following the cluster from its deploy block, and the owner's `setIndexer` (the first) or
// `addIndexer` (a second, `devnet up --indexers 2`) with the key chain the indexer reports, so every
// sidecar finds them in the registry and subscribes to both.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { type Address, getAddress, type Hex, keccak256, toHex } from "viem";
import { clusterContract, type DevnetClients, devnetTrust, predictMemberAppId } from "./chain.ts";
import { startDstackSim } from "./dstackSim.ts";
import { REPO_ROOT, spawnDetached, waitFor } from "./processes.ts";
import { DEVNET_DIR, type DevnetIndexer, type DevnetState, INDEXER_PORT } from "./state.ts";

interface IndexerHealth {
  readonly ok: boolean;
  /** The proof file `attestmesh indexer set --proof` reads. */
  readonly registration: {
    readonly appId: Address;
    readonly signingKey: Hex;
    readonly appPubkey: Hex;
    readonly appSignature: Hex;
    readonly kmsSignature: Hex;
    readonly guestApiVersion?: 0 | 1;
    readonly codeId: Hex;
  };
}

/** IPolicy.AppRole.Indexer: the indexer's app id may boot only compose hashes allowed for this role. */
const INDEXER_ROLE = 1;

/**
 * The compose hash the devnet indexer's simulator reports: sha256 of a placeholder app-compose.json of
 * its own, so the indexer's compose differs from the nodes' and the devnet exercises the role scoping
 * (allowed for the indexer role only; a node app id could not boot it).
 */
export function devnetIndexerComposeHash(): Hex {
  const compose = JSON.stringify({
    manifest_version: 2,
    name: "attestmesh-devnet-indexer",
    runner: "docker-compose",
  });
  return `0x${createHash("sha256").update(compose).digest("hex")}`;
}

async function confirm(clients: DevnetClients, hash: Hex): Promise<void> {
  const receipt = await clients.client.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`devnet transaction ${hash} reverted`);
}

/** Starts the indexer and registers it in the cluster's indexer registry. */
export async function startIndexer(
  clients: DevnetClients,
  state: DevnetState,
  progress: (message: string) => void,
  /** TEST ONLY: run the indexer in its lying mode, dropping every log that names these nodes' app ids. */
  suppressNodes: readonly string[] = [],
  /** 0 for the first indexer (port INDEXER_PORT, `setIndexer`); 1.. for more (next ports, `addIndexer`). */
  index = 0,
): Promise<DevnetIndexer> {
  const logDir = join(DEVNET_DIR, index === 0 ? "indexer" : `indexer${index + 1}`);
  const port = INDEXER_PORT + index;
  const socketPath = join(logDir, "dstack.sock");
  const appId = getAddress(keccak256(toHex(`attestmesh devnet indexer ${index} ${Date.now()}`)).slice(0, 42));
  const cluster = clusterContract(clients, state.diamond);
  const composeHash = devnetIndexerComposeHash();
  await confirm(clients, await cluster.write.addAppIdFor([appId, INDEXER_ROLE]));
  if (index === 0) await confirm(clients, await cluster.write.addComposeHashFor([composeHash, INDEXER_ROLE]));

  const simPid = await startDstackSim({
    socketPath,
    appId,
    composeHash,
    trust: await devnetTrust(clients, state),
    ...(state.guestApi === undefined ? {} : { guestApi: state.guestApi }),
    appName: "attestmesh-devnet-indexer",
    logFile: join(logDir, "dstack-sim.log"),
    owner: "the indexer",
  });

  const suppressed = await Promise.all(
    suppressNodes.map((n) => predictMemberAppId(clients, state.diamond, n)),
  );
  if (suppressed.length > 0) {
    progress(
      `TEST ONLY: the indexer lies, suppressing every log of ${suppressNodes.join(", ")} (${suppressed.join(", ")})`,
    );
  }
  const url = `ws://127.0.0.1:${port}`;
  const healthUrl = `http://127.0.0.1:${port}/healthz`;
  progress(`starting the indexer on ${url}`);
  const pid = spawnDetached(process.execPath, [join(REPO_ROOT, "indexer/src/bin.mjs")], {
    logFile: join(logDir, "indexer.log"),
    env: {
      ...process.env,
      ATTESTMESH_INDEXER_RPC_URL: state.rpcUrl,
      ATTESTMESH_INDEXER_CLUSTERS: state.diamond,
      ATTESTMESH_INDEXER_CHAIN_ID: String(state.chainId),
      ATTESTMESH_INDEXER_START_BLOCK: state.deployBlock,
      ATTESTMESH_INDEXER_CONFIRMATIONS: "0",
      // Hardhat's node serves eth_subscribe on its HTTP port: each new block wakes the indexer at once,
      // and the 250 ms poll stays as the fallback.
      ATTESTMESH_INDEXER_WS_URL: state.rpcUrl.replace(/^http/, "ws"),
      ATTESTMESH_INDEXER_POLL_INTERVAL_MS: "250",
      ATTESTMESH_INDEXER_HOST: "127.0.0.1",
      ATTESTMESH_INDEXER_PORT: String(port),
      DSTACK_SIMULATOR_ENDPOINT: socketPath,
      ...(suppressed.length > 0
        ? {
            ATTESTMESH_INDEXER_TEST_SUPPRESS_APP_IDS: suppressed.join(","),
            ATTESTMESH_INDEXER_TEST_ONLY: "i-know-this-indexer-lies",
          }
        : {}),
    },
  });
  const health = await waitFor(
    "the indexer's /healthz",
    async () => {
      const response = await fetch(healthUrl, { signal: AbortSignal.timeout(2_000) });
      const body = (await response.json()) as IndexerHealth;
      return response.status === 200 ? body : undefined;
    },
    30_000,
  );
  progress("registering the indexer in the cluster's registry");
  const { codeId, signingKey, guestApiVersion, ...proof } = health.registration;
  const record = [url, codeId, signingKey, { ...proof, guestApiVersion: guestApiVersion ?? 0 }] as const;
  await confirm(
    clients,
    index === 0 ? await cluster.write.setIndexer(record) : await cluster.write.addIndexer(record),
  );
  return {
    url,
    healthUrl,
    appId,
    pid,
    simPid,
    logDir,
    ...(suppressed.length > 0 ? { suppressedAppIds: suppressed } : {}),
  };
}
