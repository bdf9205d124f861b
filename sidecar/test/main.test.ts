// The sidecar end to end against a real `hardhat node` process (chain type op, as configured), with the
// dstack simulator served on unix sockets to the official SDK and the in-memory WireGuard backend.
// Sidecars run in-process through `startSidecar`; the last test runs the `attestmesh-sidecar` binary.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type DstackSimulator, startDstackSimulator } from "@attestmesh/devnet/dstack-sim/server.ts";
import { createKmsRoot, createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { devnetAppCompose } from "@attestmesh/devnet/orchestration/dstackSim.ts";
import { deployCluster } from "@attestmesh/scripts/deploy/cluster.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import type { PinnedTrust } from "@attestmesh/shared/service/pinned.ts";
import {
  type Address,
  bytesToHex,
  createPublicClient,
  createWalletClient,
  defineChain,
  getAddress,
  getContract,
  type Hex,
  hexToBytes,
  http,
  type PublicClient,
  parseEventLogs,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { parseConfig } from "../src/config.ts";
import { type Sidecar, startSidecar } from "../src/main.ts";
import { createMemoryBackend, type MemoryBackend } from "../src/wireguard/memory.ts";
import { type CapturedLogger, captureLogger, freePort, waitFor } from "./helpers.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const HARDHAT_CLI = join(ROOT, "node_modules", "hardhat", "dist", "src", "cli.js");
const BIN = join(ROOT, "sidecar", "src", "bin.mjs");

/** Hardhat's well-known development accounts: #0 owns the cluster, the others pay each node's gas. */
const KEYS: readonly Hex[] = [
  "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
  "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
  "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
  "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
];

const kmsRoot = createKmsRoot();

interface Node {
  readonly appId: Address;
  readonly sidecar: Sidecar;
  readonly backend: MemoryBackend;
  readonly log: CapturedLogger;
  stop(): Promise<void>;
}

describe("sidecar against a hardhat node", { timeout: 300_000 }, () => {
  let hardhat: ChildProcess;
  let hardhatOutput = "";
  let rpcUrl: string;
  let meshPort: number;
  let dir: string;
  let cluster: Address;
  let client: PublicClient;
  let owner: ReturnType<typeof ownerContract>;
  /** What each node's attested compose pins: this cluster, its member-app implementation, the test KMS root. */
  let trust: PinnedTrust;
  const running = new Set<Node>();

  function ownerContract(publicClient: PublicClient, url: string) {
    const chain = defineChain({
      id: 31337,
      name: "hardhat",
      nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
      rpcUrls: { default: { http: [url] } },
    });
    const wallet = createWalletClient({
      account: privateKeyToAccount(KEYS[0]!),
      chain,
      transport: http(url),
    });
    return {
      wallet,
      contract: (address: Address) =>
        getContract({ address, abi: clusterAbi, client: { public: publicClient, wallet } }),
    };
  }

  /** Sends an owner transaction and waits for it. */
  async function asOwner(
    send: (c: ReturnType<ReturnType<typeof ownerContract>["contract"]>) => Promise<Hex>,
  ) {
    const hash = await send(owner.contract(cluster));
    const receipt = await client.waitForTransactionReceipt({ hash });
    assert.equal(receipt.status, "success");
  }

  function env(name: string, gasKey: Hex, extra: Record<string, string> = {}): Record<string, string> {
    return {
      ATTESTMESH_RPC_URL: rpcUrl,
      ATTESTMESH_CLUSTER: cluster,
      ATTESTMESH_CHAIN_ID: "31337",
      ATTESTMESH_CONFIRMATIONS: "0",
      ATTESTMESH_POLL_INTERVAL_MS: "200",
      ATTESTMESH_GAS_KEY: gasKey,
      DSTACK_SIMULATOR_ENDPOINT: join(dir, `${name}.sock`),
      ATTESTMESH_WG_MODE: "memory",
      ATTESTMESH_HEALTH_HOST: "127.0.0.1",
      ATTESTMESH_HEALTH_PORT: "0",
      ATTESTMESH_REGISTER_MAX_BACKOFF_MS: "400",
      ATTESTMESH_LOG_LEVEL: "debug",
      ATTESTMESH_MESH_PORT: String(meshPort),
      ATTESTMESH_HEARTBEAT_INTERVAL_MS: "250",
      ATTESTMESH_HEARTBEAT_TIMEOUT_MS: "1500",
      ...extra,
    };
  }

  async function simulator(name: string, appId: Address): Promise<DstackSimulator> {
    return startDstackSimulator({
      socketPath: join(dir, `${name}.sock`),
      cvm: createSimulatedCvm({
        kmsRoot,
        appId: hexToBytes(appId),
        appCompose: devnetAppCompose("v0", trust),
      }),
      logger: captureLogger("silent").logger,
    });
  }

  async function startNode(name: string, appId: Address, gasKey: Hex): Promise<Node> {
    const sim = await simulator(name, appId);
    const backend = createMemoryBackend();
    const log = captureLogger();
    const sidecar = await startSidecar(parseConfig(env(name, gasKey)), {
      logger: log.logger,
      backend,
      initialBackoffMs: 100,
    });
    const node: Node = {
      appId,
      sidecar,
      backend,
      log,
      async stop() {
        running.delete(node);
        assert.equal(await sidecar.stop("test over"), true, "clean shutdown");
        await sidecar.done;
        await sim.close();
      },
    };
    running.add(node);
    return node;
  }

  /** A member app of the cluster (created by the owner, which also allows it) unless `create` is false. */
  async function memberApp(create = true): Promise<{ appId: Address; create(): Promise<void> }> {
    const salt = bytesToHex(randomBytes(32));
    const appId = getAddress(await owner.contract(cluster).read.predictMemberApp([salt]));
    const make = () => asOwner((c) => c.write.createMemberApp([salt]));
    if (create) await make();
    return { appId, create: make };
  }

  async function registeredEvents(appId: Address) {
    const logs = await client.getLogs({ address: cluster, fromBlock: 0n });
    return parseEventLogs({ abi: clusterAbi, logs, eventName: "MemberRegistered" }).filter(
      (log) => log.args.appId === appId,
    );
  }

  async function healthz(node: Node): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${node.sidecar.healthUrl}/healthz`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "am-int-"));
    const port = await freePort();
    meshPort = await freePort();
    rpcUrl = `http://127.0.0.1:${port}`;
    hardhat = spawn(
      process.execPath,
      [HARDHAT_CLI, "node", "--hostname", "127.0.0.1", "--port", String(port)],
      {
        cwd: ROOT,
        env: { ...process.env, HARDHAT_DISABLE_TELEMETRY_PROMPT: "true", FORCE_COLOR: "0" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    hardhat.stdout?.on("data", (chunk: Buffer) => {
      hardhatOutput = (hardhatOutput + chunk.toString()).slice(-20_000);
    });
    hardhat.stderr?.on("data", (chunk: Buffer) => {
      hardhatOutput = (hardhatOutput + chunk.toString()).slice(-20_000);
    });
    client = createPublicClient({ transport: http(rpcUrl, { retryCount: 0 }) });
    await waitFor(
      "the hardhat node to answer",
      async () => {
        if (hardhat.exitCode !== null) throw new Error(`hardhat node exited early:\n${hardhatOutput}`);
        return client.getChainId().then(
          (id) => id === 31337,
          () => false,
        );
      },
      120_000,
      250,
    );
    owner = ownerContract(client, rpcUrl);
    const deployed = await deployCluster({
      wallet: owner.wallet,
      client,
      params: { owner: owner.wallet.account.address, meshCidr: "10.77.0.0/16", kmsRoots: [kmsRoot.address] },
    });
    cluster = getAddress(deployed.diamond);
    trust = {
      chainId: 31337,
      cluster,
      memberAppImplementation: getAddress(await owner.contract(cluster).read.memberAppImplementation()),
      kmsRoots: [kmsRoot.address],
      rpcHosts: [new URL(rpcUrl).host],
    };
  });

  after(async () => {
    for (const node of [...running]) await node.stop().catch(() => {});
    if (hardhat && hardhat.exitCode === null) {
      const exited = new Promise((resolve) => hardhat.once("exit", resolve));
      hardhat.kill("SIGTERM");
      const timer = setTimeout(() => hardhat.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  });

  test("register → appears in the other sidecar's peers → handshakes → healthy → evict → disappears", async () => {
    const appA = (await memberApp()).appId;
    const appB = (await memberApp()).appId;
    const a = await startNode("a", appA, KEYS[1]!);
    const b = await startNode("b", appB, KEYS[2]!);

    const keyOf = (node: Node) => node.sidecar.status().wireguardPublicKey;
    await waitFor("each node to have the other as its only peer", async () => {
      const [pa, pb] = await Promise.all([
        a.backend.interface && a.backend.peers(),
        b.backend.interface && b.backend.peers(),
      ]);
      return (
        pa?.length === 1 && pb?.length === 1 && pa[0]!.publicKey === keyOf(b) && pb[0]!.publicKey === keyOf(a)
      );
    });
    const statusA = a.sidecar.status();
    const statusB = b.sidecar.status();
    assert.notEqual(statusA.memberId, statusB.memberId);
    assert.deepEqual((await a.backend.peers())[0]!.allowedIps, [`${statusB.meshIp}/32`]);
    assert.deepEqual((await b.backend.peers())[0]!.allowedIps, [`${statusA.meshIp}/32`]);
    assert.equal(a.backend.interface?.address, `${statusA.meshIp}/16`);
    assert.equal(a.backend.interface?.publicKey, keyOf(a));
    assert.equal(statusA.phase, "wg-configuring", "no handshake yet");
    assert.equal((await healthz(a)).status, 503);

    a.backend.setHandshake(keyOf(b)!, Math.floor(Date.now() / 1000));
    b.backend.setHandshake(keyOf(a)!, Math.floor(Date.now() / 1000));
    await Promise.all([a.sidecar.wake("test"), b.sidecar.wake("test")]);
    // Healthy also needs the CSK (A commits epoch 0, B pulls it over the loopback mesh) and convergence.
    await waitFor(
      "A and B to be healthy",
      async () => (await healthz(a)).status === 200 && (await healthz(b)).status === 200,
    );
    const health = await healthz(a);
    assert.equal(health.status, 200);
    assert.equal(health.body.phase, "healthy");
    assert.equal(health.body.livePeers, 1);
    assert.equal(
      (health.body.peers as Array<{ memberId: string }>)[0]!.memberId,
      statusB.memberId!.toString(),
    );
    const phases = a.log
      .lines()
      .filter((l) => l.msg.startsWith("phase "))
      .map((l) => l.to);
    assert.deepEqual(phases.slice(0, 3), ["registering", "waiting-peers", "wg-configuring"]);
    assert.equal(phases.at(-1), "healthy");
    for (const phase of phases.slice(3, -1))
      assert.ok(["pulling-csk", "heartbeating"].includes(phase as string));
    assert.equal(health.body.cskEpoch, "0");
    assert.equal(health.body.cskAcquired, true);
    assert.equal(health.body.converged, true);
    const [epoch0, commitment0] = await client.readContract({
      address: cluster,
      abi: clusterAbi,
      functionName: "currentCsk",
    });
    assert.equal(epoch0, 0n);
    assert.equal(a.sidecar.csk.current()?.commitment, commitment0);
    assert.equal(b.sidecar.csk.current()?.commitment, commitment0, "B pulled the same CSK");
    assert.deepEqual(a.sidecar.peers.live(), [statusB.memberId]);

    const metrics = await (await fetch(`${a.sidecar.healthUrl}/metrics`)).text();
    assert.match(metrics, /attestmesh_rpc_calls_total\{method="eth_blockNumber"\} \d+/);
    assert.match(metrics, /attestmesh_registration_attempts_total\{outcome="registered"\} 1/);

    await asOwner((c) => c.write.evict([statusB.memberId!, 1]));
    await waitFor("A to drop B", async () => (await a.backend.peers()).length === 0);
    // A stays healthy on epoch 0 until its CSK manager reads the eviction's epoch, so wait for the
    // epoch itself (regression: this waited for "healthy" alone and raced the manager's next tick).
    await waitFor(
      "A, now alone, to commit epoch 1 and be healthy",
      () => a.sidecar.csk.current()?.epoch === 1n && a.sidecar.status().phase === "healthy",
    );
    const [epoch1, commitment1] = await client.readContract({
      address: cluster,
      abi: clusterAbi,
      functionName: "currentCsk",
    });
    assert.equal(epoch1, 1n, "the eviction opened epoch 1");
    assert.equal(a.sidecar.csk.current()?.commitment, commitment1);
    assert.notEqual(commitment1, commitment0);
    await waitFor("B to leave the mesh and wait to register again", () => {
      const s = b.sidecar.status();
      return s.phase === "registering" && b.backend.interface === undefined && s.memberId === undefined;
    });
    assert.ok(b.log.lines().some((l) => /evicted by the cluster owner/.test(l.msg) && l.level === 50));
    assert.equal(
      b.sidecar.csk.current(),
      undefined,
      "the evicted node zeroed its CSK and holds no epoch 1 key",
    );
    await waitFor("B to be refused: its app id was disallowed by the eviction", () =>
      b.log.lines().some((l) => l.refusal === "AppIdNotAllowed"),
    );
    assert.equal((await healthz(b)).status, 503);
    await a.stop();
    await b.stop();
    assert.equal(a.backend.interface, undefined, "shutdown takes the interface down");
  });

  test("a restart keeps the identity and does not register again", async () => {
    const appC = (await memberApp()).appId;
    const first = await startNode("c1", appC, KEYS[3]!);
    const memberId = await waitFor(
      "C to register",
      () => first.sidecar.status().interfaceUp && first.sidecar.status().memberId,
    );
    const { wireguardPublicKey, meshIp } = first.sidecar.status();
    await first.stop();

    const second = await startNode("c2", appC, KEYS[3]!);
    await waitFor("C to come back", () => second.sidecar.status().interfaceUp);
    assert.equal(second.sidecar.status().memberId, memberId);
    assert.equal(second.sidecar.status().wireguardPublicKey, wireguardPublicKey);
    assert.equal(second.sidecar.status().meshIp, meshIp);
    assert.ok(second.log.lines().some((l) => /already an active member/.test(l.msg)));
    assert.ok(
      !second.log
        .lines()
        .some((l) =>
          ["transaction submitted", "sponsored operation submitted", "registration included"].includes(l.msg),
        ),
    );
    const metrics = await (await fetch(`${second.sidecar.healthUrl}/metrics`)).text();
    assert.match(metrics, /attestmesh_registration_attempts_total\{outcome="already-member"\} 1/);
    assert.equal((await registeredEvents(appC)).length, 1, "exactly one MemberRegistered for the app id");
    await second.stop();
  });

  test("an app id not allowed yet: waits, logs AppIdNotAllowed with the fix, joins once the owner allows it", async () => {
    const pendingD = await memberApp(false);
    const appD = pendingD.appId;
    const d = await startNode("d", appD, KEYS[4]!);
    const refusal = await waitFor("the refusal to be logged", () =>
      d.log.lines().find((l) => l.refusal === "AppIdNotAllowed"),
    );
    assert.equal(refusal.level, 40);
    assert.match(
      refusal.msg,
      new RegExp(`AppIdNotAllowed; the cluster owner must allow app id ${appD} on cluster ${cluster}`),
    );
    assert.equal(d.sidecar.status().phase, "registering");
    const health = await healthz(d);
    assert.equal(health.status, 503);
    assert.equal(health.body.phase, "registering");
    assert.equal(health.body.appId, appD);

    await pendingD.create(); // creating the member app allows it
    await waitFor("D to join", () => d.sidecar.status().interfaceUp);
    assert.notEqual(d.sidecar.status().memberId, undefined);
    assert.equal((await registeredEvents(appD)).length, 1);
    await d.stop();
  });

  test("the attestmesh-sidecar binary joins, then exits 0 on SIGTERM; the gas key never reaches its output", async () => {
    const appE = (await memberApp()).appId;
    const sim = await simulator("e", appE);
    const healthPort = await freePort();
    const child = spawn(process.execPath, [BIN], {
      cwd: ROOT,
      env: { ...process.env, ...env("e", KEYS[5]!, { ATTESTMESH_HEALTH_PORT: String(healthPort) }) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      await waitFor(
        "the binary to join",
        async () => {
          if (child.exitCode !== null) throw new Error(`sidecar exited early:\n${output}`);
          const res = await fetch(`http://127.0.0.1:${healthPort}/healthz`).catch(() => undefined);
          if (!res) return false;
          const body = (await res.json()) as { interfaceUp: boolean; memberId: string | null };
          return body.interfaceUp && body.memberId !== null;
        },
        60_000,
        100,
      );
      const started = Date.now();
      child.kill("SIGTERM");
      assert.equal(await exited, 0);
      assert.ok(Date.now() - started < 5000, "exits within a few seconds");
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await sim.close();
    }
    assert.ok(output.includes('"msg":"shutdown complete"'));
    assert.ok(!output.includes(KEYS[5]!.slice(2)), "the gas key is never logged");
    const lines = output.split("\n").filter((l) => l.trim() !== "");
    assert.ok(
      lines.every((l) => l.startsWith("{")),
      "every line is a JSON log record",
    );
  });
});

describe("the attestmesh-sidecar binary with a bad configuration", () => {
  test("exits 2 and names every bad variable with its fix", async () => {
    const child = spawn(process.execPath, [BIN], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", ATTESTMESH_CLUSTER: "0x1234", ATTESTMESH_WG_MODE: "fast" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    assert.equal(code, 2);
    for (const variable of ["ATTESTMESH_RPC_URL", "ATTESTMESH_CLUSTER", "ATTESTMESH_WG_MODE"]) {
      assert.ok(output.includes(variable), `${variable} is named`);
    }
    assert.match(output, /use one of those/);
  });
});
