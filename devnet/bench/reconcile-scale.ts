// Reconcile cost at scale: one sidecar, in-process, against a cluster of --members registered members
// (default 1,000) on an in-process Hardhat chain, with the in-memory WireGuard backend. Prints a Markdown
// table of the JSON-RPC calls (eth_call by contract function), the WireGuard operations and the wall and
// CPU time of (a) the start until the first complete reconcile, (b) a reconcile after one more member
// registered, (c) a reconcile when nothing changed. Fails if the sidecar's peers ever differ from the
// registered members.
//
//   node devnet/bench/reconcile-scale.ts [--members 1000] [--repeats 5] [--providers 3]   (from the root)
//
// --providers n gives the sidecar n RPC providers (each its own counted transport over the same chain),
// so the quorum's cost shows: every deciding read agrees on a block across them (quorum: a majority).
//
// CPU is process-wide (`process.cpuUsage()`, user + system), so it includes the in-process chain
// answering the sidecar's calls; "main thread" (`process.threadCpuUsage()`) is the JavaScript thread
// alone. The sidecar polls once an hour: only the benchmark's `wake()` calls (and boot) run reconciles.
import { randomBytes } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { parseConfig } from "@attestmesh/sidecar/config.ts";
import { createLogger } from "@attestmesh/sidecar/log.ts";
import { type Sidecar, startSidecar } from "@attestmesh/sidecar/main.ts";
import type { SidecarMetrics } from "@attestmesh/sidecar/metrics.ts";
import { simulatorKeySource } from "@attestmesh/sidecar/testing/helpers.ts";
import { hexToWgBase64 } from "@attestmesh/sidecar/wireguard/keys.ts";
import { createMemoryBackend, type MemoryBackend } from "@attestmesh/sidecar/wireguard/memory.ts";
import {
  type AbiFunction,
  type Address,
  custom,
  type EIP1193RequestFn,
  encodeFunctionData,
  getAddress,
  type Hex,
  hexToBytes,
  type Transport,
  toFunctionSelector,
  toHex,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import {
  type ClusterFixture,
  type SimulatedNode,
  setupCluster,
  signRegistration,
  simulatedNode,
} from "../../test/helpers/cluster.ts";
import { createSimulatedCvm } from "../src/dstack-sim/simulator.ts";
import { benchOptions, integerOption, log } from "./harness.ts";

const values = benchOptions({ members: "1000", repeats: "5", providers: "1" });
const providerCount = integerOption("--providers", values.providers);
const memberCount = integerOption("--members", values.members);
const repeats = integerOption("--repeats", values.repeats);

/** Hardhat development account #3 pays the benchmarked node's registration (#0 owns, #1 relays). */
const GAS_KEY: Hex = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
/** Explicit gas limits, so the chain does not estimate each bulk transaction first. */
const CREATE_MEMBER_APP_GAS = 500_000n;
const REGISTER_GAS = 3_000_000n;
/** Bulk transactions in flight at once; the chain mines each in its own block as it arrives. */
const SEND_CONCURRENCY = 50;
const CONVERGE_TIMEOUT_MS = 300_000;

// ------------------------------------------------------------------------------- measuring

interface Sample {
  readonly at: number;
  readonly cpu: NodeJS.CpuUsage;
  readonly thread: NodeJS.CpuUsage;
}

interface Cost {
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly threadMs: number;
}

const sample = (): Sample => ({
  at: performance.now(),
  cpu: process.cpuUsage(),
  thread: process.threadCpuUsage(),
});

function costBetween(from: Sample, to: Sample): Cost {
  const ms = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) => (b.user - a.user + b.system - a.system) / 1000;
  return { wallMs: to.at - from.at, cpuMs: ms(from.cpu, to.cpu), threadMs: ms(from.thread, to.thread) };
}

type TraceEvent =
  | { readonly kind: "rpc"; readonly call: string; readonly sample: Sample }
  | {
      readonly kind: "pass";
      readonly outcome: string;
      readonly sample: Sample;
      readonly wgOperations: number;
    };

const FUNCTION_NAMES = new Map(
  (clusterAbi as readonly { type: string }[])
    .filter((item): item is AbiFunction => item.type === "function")
    .map((item) => [toFunctionSelector(item), item.name]),
);

/** "eth_call <function>" for a cluster read, else the JSON-RPC method. */
function callName(method: string, params: unknown): string {
  if (method !== "eth_call") return method;
  const tx = Array.isArray(params) ? (params[0] as { data?: string; input?: string } | undefined) : undefined;
  const selector = (tx?.data ?? tx?.input)?.slice(0, 10);
  return `eth_call ${(selector && FUNCTION_NAMES.get(selector as Hex)) ?? selector ?? "?"}`;
}

/** Like the sidecar's own counting transport, but it sees the parameters, to name each eth_call. */
function tracingTransport(inner: Transport, onRequest: (call: string) => void): Transport {
  return ((params) => {
    const transport = inner(params);
    const request = ((args, options) => {
      onRequest(callName(args.method, args.params));
      return transport.request(args, options);
    }) as EIP1193RequestFn;
    return { ...transport, request };
  }) as Transport;
}

/**
 * Timestamps every finished reconcile pass: the loop counts each pass in `reconciles` the moment it
 * ends, and no dependency of `startSidecar` sees that moment.
 */
function onPassEnd(metrics: SidecarMetrics, listener: (outcome: string) => void): void {
  const counter = metrics.reconciles;
  const inc = counter.inc.bind(counter) as (...args: unknown[]) => void;
  counter.inc = ((...args: unknown[]) => {
    const labels = args[0];
    listener(
      typeof labels === "object" && labels !== null ? String((labels as { outcome?: unknown }).outcome) : "?",
    );
    inc(...args);
  }) as typeof counter.inc;
}

type Tally = ReadonlyMap<string, number>;

function tally(items: Iterable<string>): Tally {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1);
  return new Map([...counts].sort(([a], [b]) => a.localeCompare(b)));
}

const total = (counts: Tally) => [...counts.values()].reduce((a, b) => a + b, 0);

/** One measured stretch: the RPC calls and WireGuard operations in it, and what it cost. */
interface Measurement {
  readonly rpc: Tally;
  readonly wg: Tally;
  readonly cost: Cost;
}

// ------------------------------------------------------------------------------- the chain

interface Chain {
  readonly fx: ClusterFixture;
  readonly relayerAddress: Address;
  /** The WireGuard keys (base64) of every member the benchmark registered, in order. */
  readonly wireguardKeys: string[];
}

async function request(fx: ClusterFixture, method: string, params: unknown[]): Promise<unknown> {
  return fx.connection.provider.request({ method, params });
}

/** Sends `count` transactions built by `build(i)`, `SEND_CONCURRENCY` at a time, without reading receipts. */
async function sendAll(
  fx: ClusterFixture,
  count: number,
  build: (i: number) => { from: Address; data: Hex; gas: bigint },
  progress: (sent: number) => void,
): Promise<void> {
  let next = 0;
  let sent = 0;
  const worker = async () => {
    while (next < count) {
      const tx = build(next++);
      await request(fx, "eth_sendTransaction", [
        { from: tx.from, to: fx.deployed.diamond, data: tx.data, gas: toHex(tx.gas) },
      ]);
      sent += 1;
      if (sent % 250 === 0 || sent === count) progress(sent);
    }
  };
  await Promise.all(Array.from({ length: Math.min(SEND_CONCURRENCY, count) }, worker));
}

/** A simulated node whose app id is the member app `createMemberApp(salt)` will create: certifiable. */
interface MemberNode {
  readonly node: SimulatedNode;
  readonly salt: Hex;
}

async function memberNode(fx: ClusterFixture): Promise<MemberNode> {
  const salt = toHex(randomBytes(32));
  const appId = getAddress(await fx.owner.read.predictMemberApp([salt]));
  return { node: simulatedNode(fx.kmsRoot, appId), salt };
}

/**
 * Creates each node's member app (the owner's `createMemberApp`, so its certificate verifies), then
 * registers every node (registration nonce 0).
 */
async function registerNodes(chain: Chain, members: readonly MemberNode[]): Promise<void> {
  const { fx } = chain;
  const nodes = members.map((m) => m.node);
  const signatures = await Promise.all(nodes.map((node) => signRegistration(fx, node, { nonce: 0n })));
  const quiet = nodes.length === 1 ? () => {} : undefined;
  await sendAll(
    fx,
    nodes.length,
    (i) => ({
      from: fx.ownerAddress,
      data: encodeFunctionData({
        abi: clusterAbi,
        functionName: "createMemberApp",
        args: [members[i]!.salt],
      }),
      gas: CREATE_MEMBER_APP_GAS,
    }),
    quiet ?? ((sent) => log(`createMemberApp ${sent}/${nodes.length}`)),
  );
  await sendAll(
    fx,
    nodes.length,
    (i) => {
      const node = nodes[i]!;
      return {
        from: chain.relayerAddress,
        data: encodeFunctionData({
          abi: clusterAbi,
          functionName: "register",
          args: [node.proof, node.wireguardKey, node.identityKey, node.claims, signatures[i]!],
        }),
        gas: REGISTER_GAS,
      };
    },
    quiet ?? ((sent) => log(`register ${sent}/${nodes.length}`)),
  );
  for (const node of nodes) chain.wireguardKeys.push(hexToWgBase64(node.wireguardKey));
}

async function activeMembers(fx: ClusterFixture): Promise<bigint> {
  const [, , , active] = await fx.owner.read.meshConfig();
  return active;
}

// ------------------------------------------------------------------------------- the sidecar

interface Probe {
  readonly sidecar: Sidecar;
  readonly backend: MemoryBackend;
  readonly trace: TraceEvent[];
  readonly startedAt: Sample;
  /** Set once `done` settles: a sidecar that stopped on its own cannot converge. */
  ended: string | undefined;
}

async function startProbe(chain: Chain, appId: Address): Promise<Probe> {
  const { fx } = chain;
  const trace: TraceEvent[] = [];
  const backend = createMemoryBackend();
  const providers = Array.from({ length: providerCount }, (_, i) => ({
    origin: `provider-${i}`,
    transport: tracingTransport(custom(fx.connection.provider, { retryCount: 0 }), (call) => {
      trace.push({ kind: "rpc", call, sample: sample() });
    }),
  }));
  const config = parseConfig({
    // Unused: the transport is injected. Required by the parser.
    ATTESTMESH_RPC_URL: "http://127.0.0.1:1",
    ATTESTMESH_CLUSTER: fx.deployed.diamond,
    ATTESTMESH_CHAIN_ID: String(fx.chainId),
    ATTESTMESH_CONFIRMATIONS: "0",
    ATTESTMESH_POLL_INTERVAL_MS: "3600000",
    ATTESTMESH_GAS_KEY: GAS_KEY,
    ATTESTMESH_WG_MODE: "memory",
    ATTESTMESH_HEALTH_HOST: "127.0.0.1",
    ATTESTMESH_HEALTH_PORT: "0",
    ATTESTMESH_LOG_LEVEL: "silent",
  });
  const keySource = simulatorKeySource(createSimulatedCvm({ kmsRoot: fx.kmsRoot, appId: hexToBytes(appId) }));
  const startedAt = sample();
  const sidecar = await startSidecar(config, {
    logger: createLogger({ level: "silent" }),
    keySource,
    backend,
    providers,
    // What the simulated CVM's attested compose would pin (there is no guest agent here to read it from).
    trust: {
      chainId: fx.chainId,
      cluster: getAddress(fx.deployed.diamond),
      memberAppImplementation: getAddress(await fx.owner.read.memberAppImplementation()),
      kmsRoots: [getAddress(fx.kmsRoot.address)],
      guestApi: "v0",
    },
  });
  onPassEnd(sidecar.metrics, (outcome) => {
    trace.push({ kind: "pass", outcome, sample: sample(), wgOperations: backend.operations.length });
  });
  const probe: Probe = { sidecar, backend, trace, startedAt, ended: undefined };
  sidecar.done.then(
    () => {
      probe.ended = "stopped";
    },
    (error: unknown) => {
      probe.ended = error instanceof Error ? error.message : String(error);
    },
  );
  return probe;
}

/** Waits for the first reconcile to configure `expected` peers, then for the loop to go idle. */
async function converge(probe: Probe, expected: number): Promise<void> {
  const deadline = Date.now() + CONVERGE_TIMEOUT_MS;
  for (;;) {
    const status = probe.sidecar.status();
    if (status.peers.length === expected && status.lastReconcileBlock !== undefined) break;
    if (probe.ended !== undefined) throw new Error(`the sidecar stopped before converging: ${probe.ended}`);
    if (Date.now() > deadline) {
      throw new Error(
        `the sidecar did not converge in ${CONVERGE_TIMEOUT_MS / 1000} s: ${status.peers.length} of ${expected} peers, phase ${status.phase}, last error ${status.lastError?.message ?? "none"}`,
      );
    }
    await delay(20);
  }
  // Boot asks for a second pass ("registered") while the first runs; a pass requested now starts after it.
  await probe.sidecar.wake("benchmark: settle");
}

/** Fails unless the sidecar's WireGuard peers are exactly the members the benchmark registered. */
async function assertPeers(probe: Probe, chain: Chain): Promise<void> {
  const expected = new Set(chain.wireguardKeys);
  const configured = (await probe.backend.peers()).map((peer) => peer.publicKey);
  const reported = probe.sidecar.status().peers.length;
  const missing = [...expected].filter((key) => !configured.includes(key));
  if (configured.length !== expected.size || reported !== expected.size || missing.length > 0) {
    throw new Error(
      `the sidecar did not converge: ${configured.length} WireGuard peers and ${reported} reported, for ${expected.size} registered members (${missing.length} missing)`,
    );
  }
  const failed = probe.trace.filter((e) => e.kind === "pass" && e.outcome !== "ok").length;
  if (failed > 0) throw new Error(`${failed} reconcile pass(es) failed`);
}

/** The RPC calls the sidecar's own metric counted must equal the trace: the table reports what it reports. */
async function assertMetricAgrees(probe: Probe): Promise<void> {
  const metric = await probe.sidecar.metrics.rpcCalls.get();
  const counted = metric.values.reduce((sum, v) => sum + v.value, 0);
  const traced = probe.trace.filter((e) => e.kind === "rpc").length;
  if (counted !== traced)
    throw new Error(`attestmesh_rpc_calls_total says ${counted} calls, the trace ${traced}`);
}

async function stopProbe(probe: Probe): Promise<void> {
  if (!(await probe.sidecar.stop("benchmark step over"))) throw new Error("the sidecar did not stop cleanly");
  await probe.sidecar.done;
}

function wgKinds(backend: MemoryBackend, from: number, to: number): Tally {
  return tally(backend.operations.slice(from, to).map((op) => op.kind));
}

const rpcCalls = (events: readonly TraceEvent[]) =>
  tally(events.flatMap((e) => (e.kind === "rpc" ? [e.call] : [])));

/** Start → end of the first pass, and the first pass alone (from its eth_blockNumber to its end). */
function initialLoad(probe: Probe): { boot: Measurement; pass: Measurement; bootPasses: number } {
  const { trace, backend } = probe;
  const end = trace.findIndex((e) => e.kind === "pass");
  const last = trace[end];
  if (last?.kind !== "pass") throw new Error("no reconcile pass was recorded");
  // A pass starts with the follower's eth_blockNumber (one per provider); nothing else in it reads the head.
  let begin = trace.findLastIndex((e, i) => i < end && e.kind === "rpc" && e.call === "eth_blockNumber");
  while (begin > 0) {
    const previous = trace[begin - 1];
    if (previous?.kind !== "rpc" || previous.call !== "eth_blockNumber") break;
    begin -= 1;
  }
  const first = trace[begin];
  if (first === undefined) throw new Error("the first pass did not start with eth_blockNumber");
  const wg = wgKinds(backend, 0, last.wgOperations);
  return {
    boot: { rpc: rpcCalls(trace.slice(0, end)), wg, cost: costBetween(probe.startedAt, last.sample) },
    pass: { rpc: rpcCalls(trace.slice(begin, end)), wg, cost: costBetween(first.sample, last.sample) },
    // Every pass but the benchmark's settling one.
    bootPasses: trace.filter((e) => e.kind === "pass").length - 1,
  };
}

/** One `wake()` on an idle loop: everything from the call until it resolves. */
async function measureWake(probe: Probe, reason: string): Promise<Measurement> {
  const traceFrom = probe.trace.length;
  const wgFrom = probe.backend.operations.length;
  const before = sample();
  await probe.sidecar.wake(reason);
  const after = sample();
  const events = probe.trace.slice(traceFrom);
  const passes = events.filter((e) => e.kind === "pass").length;
  if (passes !== 1) throw new Error(`one wake ran ${passes} reconcile passes, expected 1`);
  return {
    rpc: rpcCalls(events),
    wg: wgKinds(probe.backend, wgFrom, probe.backend.operations.length),
    cost: costBetween(before, after),
  };
}

// ------------------------------------------------------------------------------- reporting

const number = (n: number) => n.toLocaleString("en-US");
const ms = (n: number) => (n < 10 ? n.toFixed(1) : n.toFixed(0));

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function formatTally(counts: Tally): string {
  return counts.size === 0 ? "—" : [...counts].map(([name, n]) => `${name} ×${number(n)}`).join(", ");
}

/** One value if every run agrees, else each distinct value with the runs that had it. */
function agreed(
  runs: readonly Measurement[],
  pick: (m: Measurement) => Tally,
): { total: string; detail: string } {
  const distinct = new Map<string, { counts: Tally; runs: number }>();
  for (const run of runs) {
    const counts = pick(run);
    const key = formatTally(counts);
    distinct.set(key, { counts, runs: (distinct.get(key)?.runs ?? 0) + 1 });
  }
  const [only, ...others] = [...distinct];
  if (only !== undefined && others.length === 0) {
    const [detail, { counts }] = only;
    return { total: number(total(counts)), detail };
  }
  return {
    total: [...distinct.values()].map((d) => number(total(d.counts))).join(" / "),
    detail: [...distinct].map(([detail, d]) => `${d.runs} run(s): ${detail}`).join("; "),
  };
}

function formatCost(runs: readonly Measurement[], pick: (c: Cost) => number): string {
  const values = runs.map((r) => pick(r.cost));
  if (values.length === 1) return ms(values[0]!);
  return `${ms(median(values))} (${ms(Math.min(...values))}–${ms(Math.max(...values))})`;
}

function row(label: string, runs: readonly Measurement[]): string {
  const rpc = agreed(runs, (m) => m.rpc);
  const wg = agreed(runs, (m) => m.wg);
  return `| ${label} | ${runs.length} | ${rpc.total} | ${rpc.detail} | ${wg.total} | ${wg.detail} | ${formatCost(runs, (c) => c.wallMs)} | ${formatCost(runs, (c) => c.cpuMs)} | ${formatCost(runs, (c) => c.threadMs)} |`;
}

// ------------------------------------------------------------------------------- the run

async function main(): Promise<void> {
  const began = performance.now();
  log(`deploying a cluster on an in-process Hardhat network`);
  const fx = await setupCluster();
  const [, relayerWallet] = await fx.viem.getWalletClients();
  const accounts = (await request(fx, "eth_accounts", [])) as string[];
  const gasAccount = privateKeyToAccount(GAS_KEY).address;
  if (!accounts.some((a) => a.toLowerCase() === gasAccount.toLowerCase())) {
    throw new Error(
      `the gas key's account ${gasAccount} is not a funded development account of this network`,
    );
  }
  const chain: Chain = { fx, relayerAddress: relayerWallet!.account.address, wireguardKeys: [] };

  log(`deriving ${number(memberCount)} simulated CVMs' keys`);
  const setupStart = performance.now();
  const nodes: MemberNode[] = [];
  for (let i = 0; i < memberCount; i++) {
    nodes.push(await memberNode(fx));
    if ((i + 1) % 250 === 0) log(`keys ${i + 1}/${memberCount}`);
  }
  log(`registering ${number(memberCount)} members (${number(2 * memberCount)} transactions)`);
  await registerNodes(chain, nodes);
  const registered = await activeMembers(fx);
  if (registered !== BigInt(memberCount)) {
    throw new Error(
      `${registered} active members after registering ${memberCount}: some transactions failed`,
    );
  }
  const setupSeconds = (performance.now() - setupStart) / 1000;
  log(`${number(memberCount)} members active after ${setupSeconds.toFixed(1)} s`);

  // The benchmarked node: a member app the owner created, registered by its sidecar on the first start.
  const self = await memberNode(fx);
  const selfAppId = self.node.appId;
  await fx.publicClient.waitForTransactionReceipt({
    hash: await fx.owner.write.createMemberApp([self.salt]),
  });

  const fullLoads: { boot: Measurement; pass: Measurement; bootPasses: number }[] = [];
  log(`starting the sidecar (run 1/${repeats}: registers itself, then loads every member)`);
  let probe = await startProbe(chain, selfAppId);
  await converge(probe, memberCount);
  await assertPeers(probe, chain);
  fullLoads.push(initialLoad(probe));

  log(`reconciling with nothing changed, ${repeats} times`);
  const unchanged: Measurement[] = [];
  for (let i = 0; i < repeats; i++) unchanged.push(await measureWake(probe, "benchmark: nothing changed"));
  await assertPeers(probe, chain);
  await assertMetricAgrees(probe);

  for (let run = 2; run <= repeats; run++) {
    log(`restarting the sidecar (run ${run}/${repeats}: already a member, loads every member)`);
    await stopProbe(probe);
    probe = await startProbe(chain, selfAppId);
    await converge(probe, memberCount);
    await assertPeers(probe, chain);
    await assertMetricAgrees(probe);
    fullLoads.push(initialLoad(probe));
  }

  log(`registering one more member and reconciling, ${repeats} times`);
  const incremental: Measurement[] = [];
  for (let i = 0; i < repeats; i++) {
    await registerNodes(chain, [await memberNode(fx)]);
    if ((await activeMembers(fx)) !== BigInt(memberCount + i + 2)) {
      throw new Error(`member ${i + 1} of the incremental runs did not register`);
    }
    incremental.push(await measureWake(probe, "benchmark: one member registered"));
    await assertPeers(probe, chain);
  }
  await assertMetricAgrees(probe);
  const finalPeers = probe.sidecar.status().peers.length;
  const blocks = await fx.publicClient.getBlockNumber();
  await stopProbe(probe);
  await fx.connection.close();
  const runtimeSeconds = (performance.now() - began) / 1000;

  const first = fullLoads[0]!;
  const restarts = fullLoads.slice(1);
  const lines = [
    `## Reconcile at scale: ${number(memberCount)} members, one sidecar, ${providerCount} RPC provider(s)`,
    "",
    `In-process Hardhat chain (EDR, chain type op), memory WireGuard backend, confirmations 0, wake-driven reconciles. Times in ms: median (min–max) of the runs; CPU = \`process.cpuUsage()\` user+system (includes the in-process chain), main thread = \`process.threadCpuUsage()\`.`,
    "",
    "| Measurement | Runs | RPC calls | RPC calls by method | WireGuard ops | WireGuard ops by kind | Wall ms | CPU ms | Main-thread CPU ms |",
    "|---|---:|---:|---|---:|---|---:|---:|---:|",
    row("(a) start → first complete reconcile, registering itself", [first.boot]),
    ...(restarts.length > 0
      ? [
          row(
            "(a) start → first complete reconcile, already a member (restart)",
            restarts.map((l) => l.boot),
          ),
        ]
      : []),
    row(
      `(a, d, e) the first reconcile pass alone: full load of ${number(memberCount)} members`,
      fullLoads.map((l) => l.pass),
    ),
    row("(b, d, e) one reconcile after one more member registered", incremental),
    row("(c) one reconcile, nothing changed", unchanged),
    "",
    `- Peers asserted equal to the registered members' WireGuard keys after every step: ${number(memberCount)} after each full load, ${number(finalPeers)} after ${repeats} more registrations.`,
    `- RPC counts are the trace of the injected transport; they equal the sidecar's \`attestmesh_rpc_calls_total\` (checked).`,
    `- Reconcile passes a start runs on its own: ${fullLoads.map((l) => l.bootPasses).join(", ")} (per run). The loop's first pass and the "registered" wake that coalesces behind it.`,
    `- Setup: ${number(memberCount)} members registered (${number(2 * memberCount)} transactions) in ${setupSeconds.toFixed(1)} s; ${number(Number(blocks))} blocks; total runtime ${runtimeSeconds.toFixed(1)} s.`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(
      `reconcile-scale failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
