// A real sponsorship stack for tests: a Hardhat node over HTTP (the bundler needs one), the cluster,
// the EntryPoint v0.7, the member-account factory and the paymaster, Pimlico's Alto bundler, and the
// sponsorship service in-process. One stack per test file; `stop()` ends every process it started.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type RunningBundler, startAlto } from "@attestmesh/devnet/bundler/alto.ts";
import { createKmsRoot, createSimulatedCvm, type KmsRoot } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { devnetPrivateKey } from "@attestmesh/devnet/orchestration/accounts.ts";
import { deployCluster } from "@attestmesh/scripts/deploy/cluster.ts";
import { type DeployedSponsorship, deploySponsorship } from "@attestmesh/scripts/deploy/sponsorship.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { connectChain } from "@attestmesh/sidecar/chain/client.ts";
import { deriveNodeKeys, type NodeKeys } from "@attestmesh/sidecar/keys.ts";
import { secret } from "@attestmesh/sidecar/secret.ts";
import { captureLogger, freePort, simulatorKeySource } from "@attestmesh/sidecar/testing/helpers.ts";
import { createCapLedger, type DailyCaps } from "@attestmesh/sponsor/caps.ts";
import { createSponsorMetrics } from "@attestmesh/sponsor/metrics.ts";
import { createPolicyChain, type OperationLimits, type PolicyConfig } from "@attestmesh/sponsor/policy.ts";
import { type SponsorServer, startSponsorServer } from "@attestmesh/sponsor/server.ts";
import { createSponsorService } from "@attestmesh/sponsor/service.ts";
import { createSpendWatcher } from "@attestmesh/sponsor/spend.ts";
import {
  createPublicClient,
  createWalletClient,
  defineChain,
  encodeFunctionData,
  getContract,
  type Hex,
  hexToBytes,
  http,
} from "viem";
import { generatePrivateKey, privateKeyToAccount, signTypedData } from "viem/accounts";
import { randomAppId, SIMULATED_CLAIMS, SIMULATED_COMPOSE_HASH } from "./cluster.ts";

const REPO = new URL("../..", import.meta.url).pathname;

/** A `hardhat node` on 127.0.0.1:`port` (HTTP and WebSocket JSON-RPC on that one port), once it answers. */
export async function startHardhatNode(port: number): Promise<ChildProcess> {
  const child = spawn(
    join(REPO, "node_modules/.bin/hardhat"),
    ["node", "--hostname", "127.0.0.1", "--port", String(port)],
    {
      cwd: REPO,
      env: { ...process.env, HARDHAT_DISABLE_TELEMETRY_PROMPT: "true" },
      stdio: "ignore",
    },
  );
  const client = createPublicClient({ transport: http(`http://127.0.0.1:${port}`, { retryCount: 0 }) });
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`hardhat node exited with ${child.exitCode}`);
    try {
      await client.getChainId();
      return child;
    } catch {
      await sleep(250);
    }
  }
  child.kill("SIGKILL");
  throw new Error("the Hardhat node did not answer within 90 s");
}

export interface SponsorOptions {
  readonly caps?: DailyCaps;
  readonly chainId?: number;
  /** The ledger file; a fresh one in a temporary directory unless given (a restart passes the old one). */
  readonly stateDb?: string;
  readonly limits?: OperationLimits;
  readonly confirmations?: number;
  readonly validitySeconds?: number;
}

export async function setupSponsorship() {
  const rpcPort = await freePort();
  const rpcUrl = `http://127.0.0.1:${rpcPort}`;
  const hardhat = await startHardhatNode(rpcPort);
  const stops: Array<() => Promise<void>> = [
    async () => {
      hardhat.kill("SIGTERM");
      await sleep(200);
      if (hardhat.exitCode === null) hardhat.kill("SIGKILL");
    },
  ];
  try {
    const transport = http(rpcUrl, { retryCount: 0 });
    const probe = createPublicClient({ transport });
    const chainId = await probe.getChainId();
    const chain = defineChain({
      id: chainId,
      name: "test",
      nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
      rpcUrls: { default: { http: [rpcUrl] } },
    });
    const publicClient = createPublicClient({ chain, transport, pollingInterval: 100 });
    const owner = createWalletClient({ chain, transport, account: privateKeyToAccount(devnetPrivateKey(0)) });
    const relayer = createWalletClient({
      chain,
      transport,
      account: privateKeyToAccount(devnetPrivateKey(1)),
    });
    const kmsRoot = createKmsRoot();
    const cluster = await deployCluster({
      wallet: owner,
      client: publicClient,
      params: { owner: owner.account.address, meshCidr: "10.77.0.0/16", kmsRoots: [kmsRoot.address] },
    });
    const signer = privateKeyToAccount(generatePrivateKey());
    const sponsorship = await deploySponsorship({
      wallet: owner,
      client: publicClient,
      params: {
        cluster: cluster.diamond,
        signer: signer.address,
        owner: owner.account.address,
        depositWei: 10n ** 19n,
      },
    });
    const bundler = await startAlto({
      rpcUrl,
      entryPoint: sponsorship.entryPoint,
      port: await freePort(),
      executorKey: devnetPrivateKey(18),
      utilityKey: devnetPrivateKey(19),
      ...(process.env.ALTO_LOG === undefined
        ? {}
        : { logFile: process.env.ALTO_LOG, logLevel: "debug" as const }),
    });
    stops.push(() => bundler.stop());
    const clusterAsOwner = getContract({
      address: cluster.diamond,
      abi: clusterAbi,
      client: { public: publicClient, wallet: owner },
    });
    // The simulated CVMs' compose hash on any device, so their registrations meet the policy.
    for (const hash of [
      await clusterAsOwner.write.addComposeHash([SIMULATED_COMPOSE_HASH]),
      await clusterAsOwner.write.setAllowAnyDevice([true]),
    ]) {
      await publicClient.waitForTransactionReceipt({ hash });
    }
    const policy: PolicyConfig = {
      chainId,
      entryPoint: sponsorship.entryPoint,
      cluster: cluster.diamond,
      accountFactory: sponsorship.accountFactory,
    };

    /** A sponsorship service with its own caps and logs (several may run against one chain). */
    async function startSponsor(options: SponsorOptions = {}) {
      const logs = captureLogger("info");
      const metrics = createSponsorMetrics();
      let stateDb = options.stateDb;
      if (stateDb === undefined) {
        // Kept until the whole fixture stops (a test may restart a sponsor on the same state), then removed.
        const dir = mkdtempSync(join(tmpdir(), "attestmesh-sponsor-"));
        stops.unshift(() => rm(dir, { recursive: true, force: true }));
        stateDb = join(dir, "state.sqlite");
      }
      const ledger = createCapLedger(options.caps ?? { maxOps: 100, maxWei: 10n ** 18n }, stateDb);
      const policyChain = createPolicyChain(publicClient, policy);
      const watcher = createSpendWatcher({
        client: publicClient,
        entryPoint: sponsorship.entryPoint,
        paymaster: sponsorship.paymaster,
        ledger,
        confirmations: options.confirmations ?? 0,
        ownerOf: (account) => policyChain.accountOwner(account),
        logger: logs.logger,
        pollMs: 200,
      });
      await watcher.sync();
      watcher.start();
      const service = createSponsorService({
        policy: {
          ...policy,
          chainId: options.chainId ?? chainId,
          ...(options.limits === undefined ? {} : { limits: options.limits }),
        },
        chain: policyChain,
        paymaster: sponsorship.paymaster,
        signer,
        caps: ledger,
        validitySeconds: options.validitySeconds ?? 300,
        logger: logs.logger,
        metrics,
      });
      const server: SponsorServer = await startSponsorServer({
        service,
        metrics,
        logger: captureLogger("silent").logger,
        host: "127.0.0.1",
        port: 0,
      });
      let stopped = false;
      const stop = async () => {
        if (stopped) return;
        stopped = true;
        await server.close();
        await watcher.stop();
        ledger.close();
      };
      stops.push(stop);
      return { server, logs, metrics, url: server.url, ledger, watcher, stateDb, stop };
    }

    /** A simulated node whose app id the owner allowed (unless told not to). */
    async function node(options: { allow?: boolean; kmsRoot?: KmsRoot } = {}) {
      const appId = randomAppId();
      const keys = await deriveNodeKeys(
        simulatorKeySource(
          createSimulatedCvm({ kmsRoot: options.kmsRoot ?? kmsRoot, appId: hexToBytes(appId) }),
        ),
      );
      if (options.allow !== false) {
        await publicClient.waitForTransactionReceipt({
          hash: await clusterAsOwner.write.addAppId([keys.appId]),
        });
      }
      return keys;
    }

    /** The node's member-key signature over Register: its keys (or another WireGuard key) and the simulated claims. */
    function signRegister(
      keys: NodeKeys,
      nonce: bigint,
      wireguardKey: Hex = keys.wireguard.publicKey,
    ): Promise<Hex> {
      return signTypedData({
        privateKey: keys.member.secret.reveal(),
        domain: memberDomain(chainId, cluster.diamond),
        types: memberTypes,
        primaryType: "Register",
        message: {
          appId: keys.appId,
          wireguardKey,
          identityKey: keys.identity.publicKey,
          ...SIMULATED_CLAIMS,
          nonce,
        },
      });
    }

    /** Calldata of `leaveCluster(memberId)`, signed by the node's member key. */
    async function leaveCall(keys: NodeKeys, memberId: bigint): Promise<Hex> {
      const signature = await signTypedData({
        privateKey: keys.member.secret.reveal(),
        domain: memberDomain(chainId, cluster.diamond),
        types: memberTypes,
        primaryType: "Leave",
        message: { memberId },
      });
      return encodeFunctionData({
        abi: clusterAbi,
        functionName: "leaveCluster",
        args: [memberId, signature],
      });
    }

    /** The sidecar's chain context: no gas key unless one is given (a node with zero balance). */
    async function chainContext(gasKey?: Hex) {
      return connectChain({
        transport,
        cluster: cluster.diamond,
        pollingIntervalMs: 100,
        ...(gasKey === undefined ? {} : { gasKey: secret(gasKey) }),
      });
    }

    return {
      rpcUrl,
      chainId,
      publicClient,
      owner,
      relayer,
      kmsRoot,
      cluster,
      clusterAsOwner,
      sponsorship: sponsorship as DeployedSponsorship,
      signer,
      bundler: bundler as RunningBundler,
      policy,
      transport,
      startSponsor,
      node,
      signRegister,
      leaveCall,
      chainContext,
      async stop() {
        for (const stop of stops.reverse()) await stop().catch(() => {});
      },
    };
  } catch (error) {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    throw error;
  }
}

export type SponsorshipFixture = Awaited<ReturnType<typeof setupSponsorship>>;
