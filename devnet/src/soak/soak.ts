// `attestmesh devnet soak`: a fresh devnet, then a seeded schedule of faults (faults/) one after another
// while members message each other and a TCP stream runs between two anchor nodes; invariants are
// checked from outside every second (invariants.ts), resources sampled every five seconds, logs searched
// for secrets at the end. The same seed gives the same schedule: fault kinds, targets, hold times and gaps
// are drawn from one seeded stream; message senders and recipients from a second one.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { CONFIG_DOCS } from "@attestmesh/sidecar/config.ts";
import { devnetClients } from "../orchestration/chain.ts";
import { devnetDown } from "../orchestration/down.ts";
import { REPO_ROOT } from "../orchestration/processes.ts";
import { type DevnetState, readState, writeState } from "../orchestration/state.ts";
import { devnetUp } from "../orchestration/up.ts";
import { seededRng } from "../rng.ts";
import { FAULT_KINDS, type FaultKind, type SoakContext } from "./fault.ts";
import { FAULTS } from "./faults/index.ts";
import { processEnv } from "./faults/process.ts";
import { createChecker, type TickResult, type Violation } from "./invariants.ts";
import { createMessaging, type MessageStats } from "./messages.ts";
import { createResourceMonitor } from "./resources.ts";
import { createSecretWatch } from "./secrets.ts";

export interface SoakOptions {
  readonly nodes: number;
  readonly minutes: number;
  readonly seed: number;
  /** Where the report, its Markdown and the resource CSV go. */
  readonly outDir: string;
  readonly progress: (message: string) => void;
  /** Leave the devnet running afterwards (default: take it down). */
  readonly keep?: boolean;
  /** Fault kinds to draw from (default all). */
  readonly kinds?: readonly FaultKind[];
  /** How long a mismatch outside any fault's scope may last (default 1 s poll + 4 s slack). */
  readonly graceMs?: number;
  /**
   * The short seeded run's knob (default 1): the gaps between faults and their drawn hold times are
   * scaled by it (holds never below MIN_HOLD_MS). The seed's schedule stays the same: kinds, targets and
   * order; budgets and the time to recover are not scaled.
   */
  readonly pace?: number;
  /** End the schedule after this many faults, or at `minutes`, whichever comes first (default: no cap). */
  readonly maxFaults?: number;
}

export interface FaultRecord {
  readonly atS: number;
  readonly kind: FaultKind;
  readonly detail: string;
  readonly holdMs: number;
  readonly budgetMs: number;
  /** From healing to every invariant holding with every node healthy; null: not within the budget. */
  readonly recoverMs: number | null;
  readonly error?: string;
}

export interface SoakReport {
  readonly command: string;
  readonly seed: number;
  readonly nodes: number;
  readonly minutes: number;
  readonly pace: number;
  readonly startedAt: string;
  readonly durationS: number;
  readonly faults: readonly FaultRecord[];
  readonly byKind: Readonly<
    Partial<Record<FaultKind, { count: number; recoverMedianMs: number | null; recoverMaxMs: number | null }>>
  >;
  readonly violations: readonly Violation[];
  readonly messages: MessageStats;
  readonly tcp: {
    readonly connects: number;
    readonly closes: number;
    readonly outOfOrder: number;
    readonly echoed: number;
    readonly maxStallMs: number;
  };
  readonly resources: ReadonlyArray<{
    process: string;
    samples: number;
    rssFirstMb: number;
    rssLastMb: number;
    rssMaxMb: number;
    fdsFirst: number;
    fdsLast: number;
    fdsMax: number;
  }>;
  readonly secrets: { readonly checked: number; readonly files: number; readonly bytes: number };
  readonly files: { readonly json: string; readonly markdown: string; readonly csv: string };
}

const TCP_PORT = 7070;
const TICK_MS = 1_000;
const RESOURCE_MS = 5_000;
const SEND_INTERVAL_MS = 2_500;
const DRAIN_MS = 120_000;
/** The sidecar's own ATTESTMESH_HEARTBEAT_TIMEOUT_MS default, for a node whose environment sets none. */
const DEFAULT_HEARTBEAT_TIMEOUT_MS = Number(
  CONFIG_DOCS.find((doc) => doc.name === "ATTESTMESH_HEARTBEAT_TIMEOUT_MS")?.default,
);
const LEAK_BOUNDS = { rssMb: 96, fds: 64, warmupS: 30 };
/** Two of the devnet sidecars' 1-s chain polls: a faster pace never holds a fault for less. */
const MIN_HOLD_MS = 2_000;

const median = (xs: readonly number[]) =>
  xs.length === 0 ? null : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function spawnInNetns(netns: string, args: readonly string[]): ChildProcess {
  return spawn(
    "ip",
    ["netns", "exec", netns, process.execPath, join(REPO_ROOT, "devnet/src/soak/tcp-echo.ts"), ...args],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const { progress } = options;
  const pace = options.pace ?? 1;
  if (!(pace > 0 && pace <= 1)) throw new Error(`pace must be in (0, 1], got ${pace}`);
  const maxFaults = options.maxFaults ?? Number.POSITIVE_INFINITY;
  const command =
    `attestmesh devnet soak --nodes ${options.nodes} --minutes ${options.minutes} --seed ${options.seed}` +
    (pace === 1 ? "" : ` (pace ${pace})`) +
    (options.maxFaults === undefined ? "" : ` (at most ${options.maxFaults} faults)`);
  progress(`${command}: starting a fresh devnet`);
  await devnetUp({ nodes: options.nodes, timeoutMs: 300_000, progress, transport: "auto" });
  let state = (await readState()) as DevnetState;
  const clients = devnetClients(state.rpcUrl, state.chainId);
  const startedAt = Date.now();
  const endAt = startedAt + options.minutes * 60_000;
  const faultRng = seededRng(options.seed);
  const trafficRng = seededRng(options.seed ^ 0x5eed5eed);
  const checker = createChecker({
    state: () => state,
    clients,
    startedAt,
    graceMs: options.graceMs ?? 5_000,
  });
  const env = await processEnv(state.nodes[0]!.sidecarPid);
  const heartbeatTimeoutMs = Number(env.ATTESTMESH_HEARTBEAT_TIMEOUT_MS ?? DEFAULT_HEARTBEAT_TIMEOUT_MS);
  let nextIndex = Math.max(...state.nodes.map((n) => n.index)) + 1;
  const ctx: SoakContext = {
    state: () => state,
    async setState(next) {
      state = next;
      await writeState(next);
    },
    clients,
    anchors: new Set(state.nodes.slice(0, 2).map((n) => n.name)),
    targetNodes: options.nodes,
    heartbeatTimeoutMs,
    hold: (drawnMs) => (pace === 1 ? drawnMs : Math.max(MIN_HOLD_MS, Math.round(drawnMs * pace))),
    nextNodeIndex: () => nextIndex++,
    excuse: (scope) => checker.excuse(scope, Number.POSITIVE_INFINITY),
    departing: (node, epoch) => checker.departing(node, epoch),
    progress,
  };

  let latest: TickResult | undefined;
  const member = (name: string) =>
    latest?.views.find((v) => v.node.name === name && v.active && !checker.leaving(name)) !== undefined;
  const messaging = createMessaging({
    nodes: () => state.nodes,
    ready: () =>
      (latest?.views ?? [])
        .filter(
          (v) =>
            v.active && v.memberId !== null && !checker.leaving(v.node.name) && v.health?.phase === "healthy",
        )
        .map((v) => ({ node: v.node, memberId: v.memberId! })),
    isMember: member,
    rng: trafficRng,
    onDuplicate: (envelopeId, node) =>
      checker.record({
        invariant: "message-duplicated",
        node,
        detail: `envelope ${envelopeId} delivered again after its ack`,
      }),
  });
  const resources = createResourceMonitor(startedAt);
  const secrets = createSecretWatch();

  // The TCP stream between the two anchors, over their mesh IPs.
  const tcp = { connects: 0, closes: 0, outOfOrder: 0, echoed: 0, maxStallMs: 0 };
  const first = await checker.tick();
  const [a, b] = state.nodes.slice(0, 2).map((n) => first.views.find((v) => v.node === n)!);
  const server = spawnInNetns(b!.node.netns, ["--serve", `${b!.health!.meshIp}:${TCP_PORT}`]);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error("the TCP echo server did not start within 30 s")),
      30_000,
    );
    createInterface({ input: server.stdout! }).once("line", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  const client = spawnInNetns(a!.node.netns, ["--connect", `${b!.health!.meshIp}:${TCP_PORT}`]);
  let stopping = false;
  createInterface({ input: client.stdout! }).on("line", (text) => {
    const line = JSON.parse(text) as Record<string, number | string>;
    if (line.event === "connected") tcp.connects = Number(line.connects);
    else if (line.event === "status") {
      tcp.echoed = Number(line.echoed);
      tcp.maxStallMs = Math.max(tcp.maxStallMs, Number(line.maxStallMs));
    } else if (line.event === "out-of-order") {
      tcp.outOfOrder += 1;
      checker.record({ invariant: "tcp-stream", node: a!.node.name, detail: `echo out of order: ${text}` });
    } else if (line.event === "closed" && !stopping && tcp.connects > 0) {
      tcp.closes += 1;
      checker.record({
        invariant: "tcp-stream",
        node: a!.node.name,
        detail: "the stream across the mesh closed",
      });
    }
  });

  // Background loops: invariants every second, resources every five, messages every 2.5 s.
  const loops = new AbortController();
  const tickLoop = (async () => {
    let n = 0;
    while (!loops.signal.aborted) {
      const started = Date.now();
      try {
        latest = await checker.tick();
        messaging.attach();
        for (const v of latest.views)
          if (v.health !== undefined) await secrets.addNode(v.node).catch(() => {});
        if (n++ % 10 === 0) {
          const holder = latest.views.find(
            (v) => v.health?.cskAcquired === true && v.health.phase === "healthy",
          );
          if (holder) await collectCsk(holder.node.logDir, secrets).catch(() => {});
        }
      } catch (error) {
        progress(`invariant check failed to read: ${(error as Error).message}`);
      }
      await sleep(Math.max(0, TICK_MS - (Date.now() - started)));
    }
  })();
  const resourceLoop = (async () => {
    while (!loops.signal.aborted) {
      await resources.sample(state);
      await sleep(RESOURCE_MS);
    }
  })();
  const sending = new AbortController();
  const sendLoop = messaging.sendLoop(SEND_INTERVAL_MS, 2, sending.signal);

  // The schedule: faults one after another, each kind once per round in a seeded order; a join follows any
  // departure that left the mesh below --nodes.
  const faults: FaultRecord[] = [];
  const kinds = options.kinds ?? FAULT_KINDS;
  let round: FaultKind[] = [];
  while (Date.now() < endAt && faults.length < maxFaults) {
    await sleep(Math.round(faultRng.int(3_000, 10_000) * pace));
    if (Date.now() >= endAt) break;
    if (round.length === 0) round = faultRng.shuffle(kinds);
    let kind: FaultKind;
    if (
      kinds.includes("node-add") &&
      state.nodes.length < options.nodes &&
      FAULTS["node-add"].eligible(ctx)
    ) {
      // Churn: a departure that left the mesh below --nodes is followed by a join.
      kind = "node-add";
      round = round.filter((k) => k !== "node-add");
    } else {
      const index = round.findIndex((k) => FAULTS[k].eligible(ctx));
      if (index < 0) {
        round = [];
        continue;
      }
      kind = round.splice(index, 1)[0]!;
    }
    const atS = Math.round((Date.now() - startedAt) / 1000);
    try {
      const injected = await FAULTS[kind].inject(ctx, faultRng);
      progress(`t+${atS}s ${kind}: ${injected.detail}`);
      checker.excuse(injected.scope, Number.POSITIVE_INFINITY);
      await sleep(injected.holdMs);
      const healedAt = Date.now();
      await injected.heal();
      checker.excuse(injected.scope, Date.now() + injected.budgetMs);
      const recoverMs = await waitRecovered(() => latest, checker.leaving, healedAt, injected.budgetMs);
      if (recoverMs === null) {
        checker.record({
          invariant: "no-recovery",
          node: null,
          detail: `${kind} (${injected.detail}): not every invariant held within ${injected.budgetMs} ms of healing`,
        });
      }
      // Recovered (or out of budget): from now on this fault excuses nothing.
      checker.excuse(injected.scope, Date.now());
      progress(`  recovered ${recoverMs === null ? "NOT within budget" : `in ${recoverMs} ms`}`);
      await injected.cleanup?.();
      faults.push({
        atS,
        kind,
        detail: injected.detail,
        holdMs: injected.holdMs,
        budgetMs: injected.budgetMs,
        recoverMs,
      });
    } catch (error) {
      progress(`t+${atS}s ${kind} failed: ${(error as Error).message}`);
      faults.push({
        atS,
        kind,
        detail: "",
        holdMs: 0,
        budgetMs: 0,
        recoverMs: null,
        error: (error as Error).message,
      });
    }
  }

  // Drain: no more sends; every accepted message reaches a recipient that is still a member.
  progress("schedule done; draining messages");
  sending.abort();
  await sendLoop;
  const drainUntil = Date.now() + DRAIN_MS;
  while (Date.now() < drainUntil && messaging.outstanding().length > 0) await sleep(1_000);
  stopping = true;
  loops.abort();
  await Promise.all([tickLoop, resourceLoop]);
  messaging.stop();
  client.kill("SIGKILL");
  server.kill("SIGKILL");

  const stats = messaging.stats();
  for (const lost of stats.lost)
    checker.record({ invariant: "message-lost", node: null, detail: `${lost} accepted, never delivered` });
  for (const leak of resources.leaks(LEAK_BOUNDS))
    checker.record({ invariant: "resource-leak", node: null, detail: leak });
  const scan = await secrets.scan();
  for (const found of scan.found) checker.record({ invariant: "secret-in-log", node: null, detail: found });

  const report = buildReport({
    command,
    options,
    startedAt,
    faults,
    violations: checker.violations,
    messages: stats,
    tcp,
    resources,
    secrets: { checked: secrets.count, files: scan.files, bytes: scan.bytes },
  });
  await mkdir(options.outDir, { recursive: true });
  await writeFile(report.files.json, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(report.files.markdown, `${renderReport(report)}\n`);
  await writeFile(report.files.csv, `${resources.csv()}\n`);
  if (!options.keep) await devnetDown(progress);
  return report;
}

async function collectCsk(logDir: string, secrets: ReturnType<typeof createSecretWatch>) {
  const body = await new Promise<string>((resolve, reject) => {
    const req = request({ socketPath: join(logDir, "api.sock"), path: "/v1/cluster-shared-key" }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    });
    req.on("error", reject);
    req.setTimeout(2_000, () => req.destroy(new Error("timeout")));
    req.end();
  });
  const csk = JSON.parse(body) as { epoch?: string; key?: string };
  if (typeof csk.epoch === "string" && typeof csk.key === "string") secrets.addCsk(csk.epoch, csk.key);
}

/** Ms from `healedAt` to the first check after it with no mismatch and every node healthy, or null. */
async function waitRecovered(
  latest: () => TickResult | undefined,
  leaving: (name: string) => boolean,
  healedAt: number,
  budgetMs: number,
): Promise<number | null> {
  const deadline = healedAt + budgetMs;
  let seen: TickResult | undefined;
  while (Date.now() < deadline) {
    const tick = latest();
    if (tick !== undefined && tick !== seen) {
      seen = tick;
      // Every node that is not leaving is a member again (a newcomer has registered) and healthy.
      const healthy = tick.views
        .filter((v) => !leaving(v.node.name))
        .every((v) => v.active && v.health?.phase === "healthy");
      if (tick.problems.length === 0 && healthy && Date.now() > healedAt + TICK_MS)
        return Date.now() - healedAt;
    }
    await sleep(200);
  }
  return null;
}

function buildReport(input: {
  command: string;
  options: SoakOptions;
  startedAt: number;
  faults: FaultRecord[];
  violations: readonly Violation[];
  messages: MessageStats;
  tcp: SoakReport["tcp"];
  resources: ReturnType<typeof createResourceMonitor>;
  secrets: SoakReport["secrets"];
}): SoakReport {
  const byKind: Partial<
    Record<FaultKind, { count: number; recoverMedianMs: number | null; recoverMaxMs: number | null }>
  > = {};
  for (const kind of FAULT_KINDS) {
    const of = input.faults.filter((f) => f.kind === kind);
    if (of.length === 0) continue;
    const times = of.map((f) => f.recoverMs).filter((t): t is number => t !== null);
    byKind[kind] = {
      count: of.length,
      recoverMedianMs: median(times),
      recoverMaxMs: times.length === 0 ? null : Math.max(...times),
    };
  }
  const perProcess = new Map<string, Array<{ rssMb: number; fds: number }>>();
  for (const s of input.resources.samples)
    perProcess.set(s.process, [...(perProcess.get(s.process) ?? []), s]);
  const resources = [...perProcess.entries()].map(([process, list]) => ({
    process,
    samples: list.length,
    rssFirstMb: list[0]!.rssMb,
    rssLastMb: list.at(-1)!.rssMb,
    rssMaxMb: Math.max(...list.map((s) => s.rssMb)),
    fdsFirst: list[0]!.fds,
    fdsLast: list.at(-1)!.fds,
    fdsMax: Math.max(...list.map((s) => s.fds)),
  }));
  const stamp = new Date(input.startedAt).toISOString().replace(/[:.]/g, "-");
  const base = join(input.options.outDir, `soak-seed${input.options.seed}-${stamp}`);
  return {
    command: input.command,
    seed: input.options.seed,
    nodes: input.options.nodes,
    minutes: input.options.minutes,
    pace: input.options.pace ?? 1,
    startedAt: new Date(input.startedAt).toISOString(),
    durationS: Math.round((Date.now() - input.startedAt) / 1000),
    faults: input.faults,
    byKind,
    violations: input.violations,
    messages: input.messages,
    tcp: input.tcp,
    resources,
    secrets: input.secrets,
    files: { json: `${base}.json`, markdown: `${base}.md`, csv: `${base}-resources.csv` },
  };
}

const ms = (v: number | null) => (v === null ? "—" : `${(v / 1000).toFixed(1)} s`);

/** The report as Markdown: the tables docs/soak.md quotes. */
export function renderReport(r: SoakReport): string {
  const m = r.messages;
  return [
    `### \`${r.command}\``,
    "",
    `Started ${r.startedAt}, ran ${r.durationS} s (schedule ${r.minutes} min, then the message drain).`,
    "",
    "| fault | injected | time to recover, median | max |",
    "|---|---:|---:|---:|",
    ...Object.entries(r.byKind).map(
      ([kind, k]) => `| ${kind} | ${k.count} | ${ms(k.recoverMedianMs)} | ${ms(k.recoverMaxMs)} |`,
    ),
    "",
    `**Invariant violations: ${r.violations.length}**`,
    ...(r.violations.length === 0
      ? []
      : [
          "",
          "| t (s) | invariant | node | detail |",
          "|---:|---|---|---|",
          ...r.violations.map((v) => `| ${v.atS} | ${v.invariant} | ${v.node ?? "—"} | ${v.detail} |`),
        ]),
    "",
    `Messages: ${m.sent} sent and accepted, ${m.delivered} delivered exactly once (${m.redelivered} redelivered before their ack went through, ${m.duplicated} duplicated after it, ${m.lost.length} lost, ${m.toDeparted} to a member that left first, ${m.sendFailures} sends refused or timed out); delivery latency median ${ms(m.latencyMs.median)}, max ${ms(m.latencyMs.max)}.`,
    "",
    `TCP stream across the mesh: ${r.tcp.echoed} frames echoed, ${r.tcp.connects} connection(s), ${r.tcp.closes} closed, ${r.tcp.outOfOrder} out of order, longest stall ${ms(r.tcp.maxStallMs)}.`,
    "",
    `Secrets: ${r.secrets.checked} searched for (hex and base64) in ${r.secrets.files} log files (${(r.secrets.bytes / 1e6).toFixed(1)} MB).`,
    "",
    "| process | samples | RSS first → last (max), MB | fds first → last (max) |",
    "|---|---:|---:|---:|",
    ...r.resources.map(
      (p) =>
        `| ${p.process} | ${p.samples} | ${p.rssFirstMb} → ${p.rssLastMb} (${p.rssMaxMb}) | ${p.fdsFirst} → ${p.fdsLast} (${p.fdsMax}) |`,
    ),
    "",
    `Resource curves (every ${RESOURCE_MS / 1000} s): \`${r.files.csv}\`.`,
  ].join("\n");
}
