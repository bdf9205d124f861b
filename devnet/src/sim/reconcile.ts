// WireGuard reconcile at scale: the sidecar's real reconciler (reconcile/reconciler.ts: desired peers
// from the membership view, the diff against the interface, applied with stale peers removed last) on
// every member of the liveness simulator, each with its own in-memory WireGuard backend
// (wireguard/memory.ts, wg(8)'s semantics for peers and allowed IPs), driven by the simulator's chain view.
//
// Modelled, not real: the chain follower (a sync answers the simulator's current view after `readMs`) and
// what wakes a pass — the indexer's push after a membership change (its poll, then the fan-out to every
// subscriber: uniform in `pushMs`) and the sidecar's poll timer (`pollMs`, a random phase per member),
// coalescing as reconcile/loop.ts does (one pass at a time; a wake during a pass runs one more after it).
// The first-handshake hold of initiator.ts is off (it only delays an endpoint, on the real clock).

import { parseMeshCidr } from "@attestmesh/shared/mesh/cidr.ts";
import type { MembershipSnapshot } from "@attestmesh/sidecar/chain/follower.ts";
import { createLogger } from "@attestmesh/sidecar/log.ts";
import { createMetrics } from "@attestmesh/sidecar/metrics.ts";
import { createReconciler, type Reconciler } from "@attestmesh/sidecar/reconcile/reconciler.ts";
import { secret } from "@attestmesh/sidecar/secret.ts";
import { createStatusStore } from "@attestmesh/sidecar/status.ts";
import { hexToWgBase64 } from "@attestmesh/sidecar/wireguard/keys.ts";
import { createMemoryBackend, type MemoryBackend } from "@attestmesh/sidecar/wireguard/memory.ts";
import { bytesToHex, zeroHash } from "viem";
import { createLivenessSim, type LivenessSim, type RosterEntry } from "./liveness.ts";

export interface ReconcileOptions {
  /** Simulated ms until a membership sync answers. */
  readonly readMs?: number;
  /** The indexer's push reaches a member this long after the change, uniform in [min, max] ms. */
  readonly pushMs?: readonly [number, number];
  /** The sidecar's own poll (ATTESTMESH_POLL_INTERVAL_MS, default 2 s); pushes only speed it up. */
  readonly pollMs?: number;
  /** No pushes: members learn of changes from their poll alone. */
  readonly pollOnly?: boolean;
}

export interface ReconcileChange {
  readonly kind: "join" | "evict";
  readonly memberId: bigint;
  /** Simulated ms from the chain change until every other member's interface reflected it. */
  readonly allMs: number;
  /** … until half of them did. */
  readonly halfMs: number;
  /** WireGuard operations (setPeer, removePeer, up) per member for this change, mean and max. */
  readonly operationsMean: number;
  readonly operationsMax: number;
  /** Passes that failed (none expected). */
  readonly failures: number;
  /** Reconcile passes that ran, and their mean CPU time (ms, from the sync's answer to the pass's end). */
  readonly passes: number;
  readonly cpuMsPerPass: number;
}

export interface ReconcileSim {
  readonly backends: readonly MemoryBackend[];
  /** Brings every member's interface up with the current view; resolves when all hold every peer. */
  configure(timeoutMs?: number): Promise<{ ms: number; operationsPerMember: number }>;
  /** Registers member `index` (it also starts its liveness and reconciler) and measures the spread. */
  join(index: number, timeoutMs?: number): Promise<ReconcileChange>;
  /** Evicts member `index` on chain and measures until every other member removed its peer. */
  evict(index: number, timeoutMs?: number): Promise<ReconcileChange>;
  /** Whether member `index`'s interface holds exactly the peers the view makes it want. */
  matches(index: number): boolean;
  stop(): void;
}

const silent = createLogger({ level: "silent" });
const MESH = parseMeshCidr("10.77.0.0/16");

export function createReconcileSim(sim: LivenessSim, options: ReconcileOptions = {}): ReconcileSim {
  const readMs = options.readMs ?? 100;
  const pushMs = options.pushMs ?? [50, 500];
  const pollMs = options.pollMs ?? 2000;
  // One metrics registry for all (nothing reads it; 1,000 registries would only cost memory).
  const metrics = createMetrics();
  let block = 1n;
  let stopped = false;
  let passes = 0;
  let failures = 0;
  let cpuMs = 0;

  interface Member {
    readonly index: number;
    readonly backend: MemoryBackend;
    readonly reconciler: Reconciler;
    wake(): void;
    running: boolean;
  }
  const members = new Map<number, Member>();
  const backends: MemoryBackend[] = [];

  function attach(index: number): Member {
    const node = sim.nodes[index]!;
    const backend = createMemoryBackend();
    backends[index] = backend;
    const snapshot = (): MembershipSnapshot => ({
      block,
      blockHash: zeroHash,
      members: sim.view(),
      changed: [],
      kind: "full",
    });
    /** CPU time when this member's sync answered: the rest of the pass runs from there on. */
    let answeredAt: NodeJS.CpuUsage | undefined;
    const sync = () =>
      sim.later(index, readMs, () => {
        answeredAt = process.cpuUsage();
        return snapshot();
      });
    const reconciler = createReconciler({
      follower: { sync, current: snapshot, invalidate: () => {} },
      backend,
      endpoints: { read: async () => new Map() },
      status: createStatusStore({ logger: silent, now: () => Math.floor(sim.clock.wallMs()) }),
      metrics,
      logger: silent,
      keys: {
        wireguard: {
          privateKey: secret(node.wireguard.privateKey),
          publicKey: bytesToHex(node.wireguard.publicKey),
          publicKeyBase64: node.wireguard.publicKeyBase64,
        },
      },
      mesh: MESH,
      interfaceName: "attestmesh0",
      listenPort: 51820,
      keepaliveSeconds: 25,
      handshakeHoldMs: 0,
      memberId: () => node.id,
      onMembershipEnded: () => {
        m.running = false;
      },
    });
    // reconcile/loop.ts's coalescing: one pass at a time, a wake during a pass runs one more after it.
    let busy = false;
    let again = false;
    const drain = async () => {
      busy = true;
      do {
        again = false;
        answeredAt = undefined;
        try {
          await reconciler.pass();
        } catch {
          // loop.ts logs and counts a failed pass; the next wake or poll tries again.
          failures += 1;
        }
        if (answeredAt !== undefined) {
          const d = process.cpuUsage(answeredAt);
          cpuMs += (d.user + d.system) / 1000;
        }
        passes += 1;
      } while (again && !stopped && !node.crashed);
      busy = false;
    };
    const m: Member = {
      index,
      backend,
      reconciler,
      running: true,
      wake() {
        if (stopped || node.crashed || !m.running) return;
        sim.touchedAsync();
        if (busy) again = true;
        else void drain();
      },
    };
    const poll = () => {
      if (stopped || node.crashed || !m.running) return;
      m.wake();
      sim.timers(index).setTimeout(poll, pollMs);
    };
    sim.timers(index).setTimeout(poll, sim.random() * pollMs);
    members.set(index, m);
    return m;
  }

  /** The indexer's push after a chain change: each running member is woken within pushMs. */
  function push(): void {
    if (options.pollOnly) return;
    for (const m of members.values()) {
      sim.timers(m.index).setTimeout(() => m.wake(), pushMs[0] + sim.random() * (pushMs[1] - pushMs[0]));
    }
  }

  /** The WireGuard keys (as the chain records them) of the view's active members, cached per view (a change replaces the map). */
  let wanted: { view: ReadonlyMap<bigint, unknown>; keys: Map<bigint, string> } | undefined;
  const activeKeys = () => {
    const view = sim.view();
    if (wanted?.view !== view) {
      const keys = new Map<bigint, string>();
      for (const r of view.values())
        if (r.status === "active") keys.set(r.memberId, hexToWgBase64(r.wireguardKey));
      wanted = { view, keys };
    }
    return wanted.keys;
  };
  /** Each backend's peers, replayed from its recorded operations as they come (its reads are async). */
  const replayed = new Map<number, { upTo: number; peers: Set<string> }>();
  function peersOf(index: number): Set<string> {
    const backend = backends[index]!;
    const r = replayed.get(index) ?? { upTo: 0, peers: new Set<string>() };
    replayed.set(index, r);
    for (; r.upTo < backend.operations.length; r.upTo++) {
      const op = backend.operations[r.upTo]!;
      if (op.kind === "setPeer") r.peers.add(op.peer.publicKey);
      else if (op.kind === "removePeer") r.peers.delete(op.publicKey);
      else if (op.kind === "down") r.peers.clear();
    }
    return r.peers;
  }
  function matches(index: number): boolean {
    if (backends[index] === undefined) return false;
    const want = activeKeys();
    const self = sim.nodes[index]!.id;
    const have = peersOf(index);
    if (have.size !== want.size - (want.has(self) ? 1 : 0)) return false;
    for (const [id, key] of want) if (id !== self && !have.has(key)) return false;
    return true;
  }

  /** Runs until every member in `others` (and `subject` too for a join) matches the view. */
  async function measure(
    kind: "join" | "evict",
    subject: number,
    others: readonly number[],
    timeoutMs: number,
  ): Promise<ReconcileChange> {
    const at = sim.now();
    const waitFor = kind === "join" ? [...others, subject] : others;
    const opsBefore = new Map(others.map((i) => [i, backends[i]!.operations.length]));
    const passesBefore = passes;
    const failuresBefore = failures;
    const cpuBefore = cpuMs;
    const doneAt = new Map<number, number>();
    const check = () => {
      for (const i of waitFor) if (!doneAt.has(i) && matches(i)) doneAt.set(i, sim.now());
      return doneAt.size === waitFor.length;
    };
    await sim.runAsync(timeoutMs, check, 10);
    if (!check())
      throw new Error(
        `${kind} of member ${subject + 1}: ${waitFor.length - doneAt.size} members did not reconcile within ${timeoutMs} ms`,
      );
    // Let passes already woken finish, so their operations count.
    await sim.runAsync(pushMs[1] + readMs + 100);
    const times = others.map((i) => doneAt.get(i)! - at).sort((a, b) => a - b);
    const ops = others.map((i) => backends[i]!.operations.length - opsBefore.get(i)!);
    const ran = passes - passesBefore;
    return {
      kind,
      memberId: sim.nodes[subject]!.id,
      allMs: times[times.length - 1] ?? 0,
      halfMs: times[Math.floor((times.length - 1) / 2)] ?? 0,
      operationsMean: ops.reduce((a, b) => a + b, 0) / Math.max(1, ops.length),
      operationsMax: Math.max(0, ...ops),
      failures: failures - failuresBefore,
      passes: ran,
      cpuMsPerPass: ran === 0 ? 0 : (cpuMs - cpuBefore) / ran,
    };
  }

  const runningIndices = () =>
    sim.nodes
      .map((n, i) => ({ n, i }))
      .filter(({ n, i }) => n.service !== undefined && !n.crashed && members.get(i)?.running !== false)
      .map(({ i }) => i);

  return {
    backends,
    async configure(timeoutMs = 120_000) {
      const indices = runningIndices();
      for (const i of indices) attach(i).wake();
      const at = sim.now();
      await sim.runAsync(timeoutMs, () => indices.every(matches), 10);
      if (!indices.every(matches)) throw new Error(`not every member configured within ${timeoutMs} ms`);
      const ops = indices.reduce((a, i) => a + backends[i]!.operations.length, 0) / indices.length;
      return { ms: sim.now() - at, operationsPerMember: ops };
    },
    async join(index, timeoutMs = 60_000) {
      const others = runningIndices();
      sim.register(index);
      block += 1n;
      sim.start(index);
      attach(index).wake();
      push();
      return measure("join", index, others, timeoutMs);
    },
    async evict(index, timeoutMs = 60_000) {
      sim.evict(index);
      block += 1n;
      push();
      const others = runningIndices().filter((i) => i !== index);
      return measure("evict", index, others, timeoutMs);
    },
    matches,
    stop() {
      stopped = true;
    },
  };
}

export interface ReconcileScaleResult {
  readonly members: number;
  readonly configure: { readonly ms: number; readonly operationsPerMember: number };
  readonly changes: readonly ReconcileChange[];
  readonly wallMs: number;
}

/**
 * The scenario behind devnet/bench/reconcile-sim.ts: N − joins members up (from a running cluster's
 * liveness state), every interface configured, then `joins` members register one after another and
 * `evictions` members are evicted one after another.
 */
export async function runReconcileScale(input: {
  readonly members: number;
  readonly seed?: number;
  readonly joins?: number;
  readonly evictions?: number;
  readonly options?: ReconcileOptions;
  /** Members registered on a real chain (onchain.ts). */
  readonly roster?: readonly RosterEntry[];
  readonly progress?: (line: string) => void;
}): Promise<ReconcileScaleResult> {
  const started = performance.now();
  const n = input.members;
  const joins = input.joins ?? 3;
  const evictions = input.evictions ?? 3;
  const progress = input.progress ?? (() => {});
  const sim = await createLivenessSim(
    { members: n, seed: input.seed ?? 1, ...(input.roster === undefined ? {} : { roster: input.roster }) },
    n - joins,
  );
  sim.memoize(true);
  for (let i = 0; i < n - joins; i++) sim.start(i);
  sim.warmStart();
  sim.run(120_000, () => sim.allLive(), 100);
  if (!sim.allLive()) throw new Error(`N=${n}: the cluster did not come up`);
  const rs = createReconcileSim(sim, input.options);
  const configure = await rs.configure();
  progress(`N=${n}: every interface configured after ${Math.round(configure.ms)} ms`);
  const changes: ReconcileChange[] = [];
  const report = (c: ReconcileChange) => {
    changes.push(c);
    progress(
      `N=${n}: ${c.kind} of member ${c.memberId} in every interface after ${Math.round(c.allMs)} ms (half after ${Math.round(c.halfMs)} ms), ${c.operationsMax} WireGuard operations at most per member, ${c.cpuMsPerPass.toFixed(2)} ms CPU per pass`,
    );
  };
  for (let k = 0; k < joins; k++) {
    report(await rs.join(n - joins + k));
    await sim.runAsync(2_000);
  }
  for (let k = 0; k < evictions; k++) {
    report(await rs.evict(Math.floor(((k + 1) * (n - 1)) / (evictions + 1))));
    await sim.runAsync(2_000);
  }
  rs.stop();
  for (const x of sim.nodes) x.controller?.abort();
  return { members: n, configure, changes, wallMs: performance.now() - started };
}
