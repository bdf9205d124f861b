// A discrete-event simulation of N members running the sidecar's real liveness code (heartbeat/swim.ts:
// its codec, its libsodium signatures, the member directory) over an in-process network with seeded
// loss and delay. Time is simulated (each member's clock and timers are the simulation's), so 1,000
// members for minutes of mesh time run in seconds to minutes of real time; CPU is the CPU time spent
// inside each member's code (probing, signing, verifying, handling datagrams: the process's CPU time
// around each call), summed per member.
//
// The chain is represented by what the sidecar takes from it: the active member records (ids, mesh IPs,
// Ed25519 identity keys) its membership view hands the directory. A join is a new records map (the next
// confirmed view), a member killed stops answering at once (a crash).

import { PULL_CANDIDATES_PER_TICK } from "@attestmesh/sidecar/csk/manager.ts";
import type { HeartbeatEvent } from "@attestmesh/sidecar/heartbeat/service.ts";
import { createSwimService, type LivenessService, type Timers } from "@attestmesh/sidecar/heartbeat/swim.ts";
import { type Statement, verifyStatement } from "@attestmesh/sidecar/heartbeat/swimCodec.ts";
import { loadSodium, type SigningKey, signingKeyFromSeed } from "@attestmesh/sidecar/meshnet/crypto.ts";
import { directoryFrom } from "@attestmesh/sidecar/meshnet/directory.ts";
import type { Member } from "@attestmesh/sidecar/model/member.ts";
import { type Address, bytesToHex, getAddress } from "viem";
import { seededRng } from "../rng.ts";

const CLUSTER = getAddress("0x5fbdb2315678afecb367f032d93f642f64180aa3");
const CHAIN_ID = 31337;
const PORT = 51821;
const WALL_BASE = 1_800_000_000_000;

interface Event {
  at: number;
  order: number;
  fn: () => void;
  cancelled: boolean;
}

/** A binary min-heap of events by time, then by insertion. */
class EventQueue {
  readonly #heap: Event[] = [];
  #order = 0;
  get size(): number {
    return this.#heap.length;
  }
  push(at: number, fn: () => void): Event {
    const e: Event = { at, order: this.#order++, fn, cancelled: false };
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
    return e;
  }
  peek(): Event | undefined {
    return this.#heap[0];
  }
  pop(): Event | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.#less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.#less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
  #less(a: Event, b: Event): boolean {
    return a.at < b.at || (a.at === b.at && a.order < b.order);
  }
}

export interface SimOptions {
  readonly members: number;
  readonly seed?: number;
  /** Probability that one datagram is lost. */
  readonly loss?: number;
  /** One-way delay, uniform in [min, max] ms. */
  readonly delayMs?: readonly [number, number];
  readonly intervalMs?: number;
  readonly suspicionMs?: number;
}

interface SimNode {
  readonly id: bigint;
  readonly meshIp: string;
  readonly key: SigningKey;
  service: LivenessService | undefined;
  controller: AbortController | undefined;
  crashed: boolean;
  cpuMs: number;
  bytesSent: number;
  bytesReceived: number;
  datagramsSent: number;
  /** The CSK epoch this member sees on chain, and the one it holds. */
  chainEpoch: bigint;
  heldEpoch: bigint;
}

export interface Verdict {
  readonly at: number;
  readonly by: bigint;
  readonly kind: "suspect" | "dead";
  readonly subject: bigint;
}

export interface LivenessSim {
  readonly nodes: readonly SimNode[];
  /** Simulated ms since the start. */
  now(): number;
  /** Runs the simulation until `ms` of simulated time passed (or `until` holds, checked every 100 ms). */
  run(ms: number, until?: () => boolean, everyMs?: number): number;
  /** Starts member `index` (0-based), adding it to the chain view first if it is not there yet. */
  start(index: number): void;
  /** Crashes a member: it sends and answers nothing from now on. */
  kill(index: number): void;
  setLoss(loss: number): void;
  /**
   * Whether statement signatures are checked once per process instead of once per member (a warm start
   * only: every member still checks every datagram's signature, and the measured windows run without it).
   */
  memoize(on: boolean): void;
  /** Hands every running member the others' alive statements, as a completed start-up sync would. */
  warmStart(): void;
  /**
   * A CSK rotation committed by member `committer` now: each member sees the new epoch at its next chain
   * poll (within `pollMs`) and pulls it as the sidecar's CSK manager does (csk/manager.ts: peers whose
   * liveness datagrams said they hold it first, then random live peers, PULL_CANDIDATES_PER_TICK a tick,
   * three at a time). A model of the pull exchange over the simulated network, not the CSK codec.
   */
  rotate(committer: number, pollMs?: number): bigint;
  /** Resets the byte and CPU counters (the start of a measurement window). */
  resetCounters(): void;
  readonly verdicts: Verdict[];
  readonly events: { at: number; node: bigint; event: HeartbeatEvent }[];
  /** Whether every running member sees every other running member live. */
  allLive(): boolean;
}

/** Builds N members (none started; the chain view holds the first `registered`). */
export async function createLivenessSim(
  options: SimOptions,
  registered = options.members,
): Promise<LivenessSim> {
  await loadSodium();
  const rng = seededRng(options.seed ?? 1);
  const random = () => rng.float();
  const delay = options.delayMs ?? [1, 20];
  let loss = options.loss ?? 0;
  const intervalMs = options.intervalMs ?? 1000;
  const suspicionMs = options.suspicionMs ?? 4000;
  const queue = new EventQueue();
  let now = 0;
  const clock = { monoMs: () => now, wallMs: () => WALL_BASE + now };

  const nodes: SimNode[] = [];
  const records: Member[] = [];
  for (let i = 0; i < options.members; i++) {
    const id = BigInt(i + 1);
    const seed = new Uint8Array(32);
    for (let b = 0; b < 32; b++) seed[b] = Math.floor(random() * 256);
    const key = signingKeyFromSeed(seed);
    const meshIp = (10 << 24) + (77 << 16) + (((i + 2) >> 8) << 8) + ((i + 2) & 0xff);
    records.push({
      memberId: id,
      appId: getAddress(`0x${id.toString(16).padStart(40, "0")}`) as Address,
      memberKey: getAddress(`0x${id.toString(16).padStart(40, "0")}`) as Address,
      wireguardKey: `0x${"22".repeat(32)}`,
      identityKey: bytesToHex(key.publicKey),
      meshIp,
      status: "active",
      registeredAt: 0,
    });
    const ip = `10.77.${(i + 2) >> 8}.${(i + 2) & 0xff}`;
    nodes.push({
      id,
      meshIp: ip,
      key,
      service: undefined,
      controller: undefined,
      crashed: false,
      cpuMs: 0,
      bytesSent: 0,
      bytesReceived: 0,
      datagramsSent: 0,
      chainEpoch: 1n,
      heldEpoch: 1n,
    });
  }
  const byIp = new Map(nodes.map((n, i) => [n.meshIp, i] as const));
  let view = new Map(records.slice(0, registered).map((r) => [r.memberId, r] as const));
  const verdicts: Verdict[] = [];
  let memo: Map<string, boolean> | undefined;
  const memoVerify = (c: { chainId: number; cluster: Address }, st: Statement, key: Uint8Array) => {
    if (memo === undefined) return verifyStatement(c, st, key);
    const k = Buffer.from(st.bytes).toString("hex");
    let ok = memo.get(k);
    if (ok === undefined) {
      ok = verifyStatement(c, st, key);
      memo.set(k, ok);
    }
    return ok;
  };
  const events: { at: number; node: bigint; event: HeartbeatEvent }[] = [];

  /** Runs `fn` as member `i`'s work: skipped once it crashed, its real time counted. */
  const asNode = (i: number, fn: () => void) => {
    const node = nodes[i]!;
    if (node.crashed) return;
    // CPU time (user + system), not wall time: other work on the machine does not count.
    const t0 = process.cpuUsage();
    try {
      fn();
    } finally {
      const d = process.cpuUsage(t0);
      node.cpuMs += (d.user + d.system) / 1000;
    }
  };

  const timersOf = (i: number): Timers => ({
    setTimeout: (fn, ms) => queue.push(now + ms, () => asNode(i, fn)),
    clearTimeout: (h) => {
      if (h !== undefined && h !== null) (h as Event).cancelled = true;
    },
  });

  const sendFrom = (i: number) => (datagram: Uint8Array, ip: string) => {
    const node = nodes[i]!;
    node.bytesSent += datagram.length;
    node.datagramsSent += 1;
    const j = byIp.get(ip);
    if (j === undefined || random() < loss) return;
    const at = now + delay[0] + random() * (delay[1] - delay[0]);
    const copy = datagram.slice();
    queue.push(at, () => {
      const dest = nodes[j]!;
      if (dest.crashed || dest.service === undefined) return;
      dest.bytesReceived += copy.length;
      asNode(j, () => dest.service!.handle(copy, { address: node.meshIp, port: PORT }));
    });
  };

  const CSK_REQUEST_BYTES = 120;
  const CSK_RESPONSE_BYTES = 200;
  const shuffle = <T>(xs: T[]): T[] => {
    for (let k = xs.length - 1; k > 0; k--) {
      const j = Math.floor(random() * (k + 1));
      [xs[k], xs[j]] = [xs[j]!, xs[k]!];
    }
    return xs;
  };
  /** One CSK manager tick of member `i`: asks up to 9 peers, 3 at a time, until one holds `epoch`. */
  function pull(i: number, epoch: bigint): void {
    const node = nodes[i]!;
    if (node.crashed || node.heldEpoch === epoch || node.service === undefined) return;
    const service = node.service;
    const live = service.live();
    const holders = shuffle(
      live.filter((id) => {
        const r = service.report(id);
        return r?.epoch === epoch && r.holdsCsk;
      }),
    );
    const held = new Set(holders);
    const order = [...holders, ...shuffle(live.filter((id) => !held.has(id)))].slice(
      0,
      PULL_CANDIDATES_PER_TICK,
    );
    const round = (k: number) => {
      if (node.crashed || node.heldEpoch === epoch) return;
      if (k >= order.length) {
        queue.push(now + 1000, () => pull(i, epoch));
        return;
      }
      let answered = 0;
      const batch = order.slice(k, k + 3);
      for (const id of batch) {
        const peer = nodes[Number(id) - 1]!;
        node.bytesSent += CSK_REQUEST_BYTES;
        const there = now + delay[0] + random() * (delay[1] - delay[0]);
        const lost = random() < loss || random() < loss;
        queue.push(there, () => {
          if (peer.crashed || lost) return;
          const has = peer.heldEpoch === epoch;
          queue.push(now + delay[0] + random() * (delay[1] - delay[0]), () => {
            node.bytesReceived += CSK_RESPONSE_BYTES;
            answered += 1;
            if (has) node.heldEpoch = epoch;
          });
        });
      }
      // The next three once these answered (or after the client's 1 s timeout).
      const next = () => (node.heldEpoch === epoch ? undefined : round(k + 3));
      const started = now;
      const wait = () => {
        if (answered >= batch.length || now - started >= 1000) next();
        else queue.push(now + 10, wait);
      };
      queue.push(now + 10, wait);
    };
    round(0);
  }

  function start(i: number): void {
    const node = nodes[i]!;
    if (!view.has(node.id)) {
      const next = new Map(view);
      next.set(node.id, records[i]!);
      view = next;
    }
    const directory = directoryFrom(() => view);
    const service = createSwimService({
      self: node.id,
      cluster: { chainId: CHAIN_ID, cluster: CLUSTER },
      key: node.key,
      directory,
      send: sendFrom(i),
      port: PORT,
      intervalMs,
      suspicionMs,
      maxSkewMs: suspicionMs,
      csk: () => ({ epoch: node.chainEpoch, holds: node.heldEpoch === node.chainEpoch }),
      clock,
      timers: timersOf(i),
      random,
      incarnation: BigInt(WALL_BASE + Math.floor(now)),
      verifyStatement: memoVerify,
      onVerdict: (kind, subject) => verdicts.push({ at: now, by: node.id, kind, subject }),
    });
    service.onEvent((event) => events.push({ at: now, node: node.id, event }));
    node.service = service;
    node.controller = new AbortController();
    asNode(i, () => service.start(node.controller!.signal));
  }

  function run(ms: number, until?: () => boolean, everyMs = 100): number {
    const end = now + ms;
    let nextCheck = now + everyMs;
    for (;;) {
      const e = queue.peek();
      if (e === undefined || e.at > end) {
        now = end;
        return now;
      }
      queue.pop();
      if (e.cancelled) continue;
      now = e.at;
      e.fn();
      if (until !== undefined && now >= nextCheck) {
        nextCheck = now + everyMs;
        if (until()) return now;
      }
    }
  }

  return {
    nodes,
    now: () => now,
    run,
    start,
    kill(i) {
      nodes[i]!.crashed = true;
    },
    setLoss(l) {
      loss = l;
    },
    rotate(committer, pollMs = 1000) {
      const epoch = nodes[committer]!.chainEpoch + 1n;
      const c = nodes[committer]!;
      c.chainEpoch = epoch;
      c.heldEpoch = epoch;
      nodes.forEach((x, i) => {
        if (x === c || x.crashed || x.service === undefined) return;
        queue.push(now + random() * pollMs, () => {
          x.chainEpoch = epoch;
          pull(i, epoch);
        });
      });
      return epoch;
    },
    memoize(on) {
      memo = on ? new Map() : undefined;
    },
    warmStart() {
      const running = nodes.filter((x) => x.service !== undefined && !x.crashed);
      const statements = running.map((x) => x.service!.aliveStatement());
      running.forEach((x) => {
        const i = nodes.indexOf(x);
        asNode(i, () => x.service!.absorb(statements));
      });
    },
    resetCounters() {
      for (const n of nodes) {
        n.cpuMs = 0;
        n.bytesSent = 0;
        n.bytesReceived = 0;
        n.datagramsSent = 0;
      }
    },
    verdicts,
    events,
    allLive() {
      const running = nodes.filter((n) => n.service !== undefined && !n.crashed);
      for (const n of running) {
        for (const m of running) {
          if (m === n) continue;
          const s = n.service!.stateOf(m.id);
          if (s !== "alive" && s !== "suspect") return false;
        }
      }
      return true;
    },
  };
}

export interface ScaleResult {
  readonly members: number;
  /** Mean over members of (sent + received) UDP payload bytes per second, steady state. */
  readonly bytesPerSecond: number;
  readonly maxBytesPerSecond: number;
  /** Mean share of one core per member spent in the liveness code, steady state. */
  readonly cpuShare: number;
  /** ms until the cluster came up (staggered starts) and every member saw every other live. */
  readonly warmupMs: number;
  /** ms from a new member's start until every other member saw it live. */
  readonly joinMs: number;
  /** ms from a CSK commit until every member held the new key (the pull model of `rotate`). */
  readonly rotationMs: number;
  /** ms from each kill until every other member saw the killed one dead (peer-lost). */
  readonly deadMs: readonly number[];
  /** Suspicions and dead verdicts about members that were running, per loss rate, in `lossWindowMs`. */
  readonly loss: readonly {
    readonly rate: number;
    readonly suspicions: number;
    readonly falseDead: number;
    readonly windowMs: number;
  }[];
}

export interface ScaleOptions {
  readonly members: number;
  readonly seed?: number;
  readonly kills?: number;
  readonly steadyMs?: number;
  readonly lossRates?: readonly number[];
  readonly lossWindowMs?: number;
  /** Start from a running cluster's state (default) instead of every member starting cold at once. */
  readonly warm?: boolean;
  readonly intervalMs?: number;
  readonly suspicionMs?: number;
  readonly progress?: (line: string) => void;
}

const isLive = (s: string | undefined) => s === "alive" || s === "suspect";

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor((s.length - 1) / 2)]!;
};

export { median };

/** The scenario behind the table: staggered start, steady state, one join, kills, then loss. */
export async function runScale(options: ScaleOptions): Promise<ScaleResult> {
  const n = options.members;
  const progress = options.progress ?? (() => {});
  // One member joins later: the chain view starts with the others.
  const sim = await createLivenessSim(
    {
      members: n,
      seed: options.seed ?? 1,
      ...(options.intervalMs === undefined ? {} : { intervalMs: options.intervalMs }),
      ...(options.suspicionMs === undefined ? {} : { suspicionMs: options.suspicionMs }),
    },
    n - 1,
  );
  const warm = options.warm ?? true;
  sim.memoize(warm);
  for (let i = 0; i < n - 1; i++) sim.start(i);
  if (warm) sim.warmStart();
  const warmupMs = sim.run(120_000, () => sim.allLive(), 1000);
  if (!sim.allLive()) throw new Error(`N=${n}: the cluster did not come up within ${warmupMs} ms`);
  progress(`N=${n}: all live after ${Math.round(warmupMs)} ms`);
  sim.run(5_000);

  const steadyMs = options.steadyMs ?? 30_000;
  sim.memoize(false);
  sim.resetCounters();
  sim.run(steadyMs);
  const running = sim.nodes.slice(0, n - 1);
  const perNode = running.map((x) => ((x.bytesSent + x.bytesReceived) * 1000) / steadyMs);
  const bytesPerSecond = perNode.reduce((a, b) => a + b, 0) / perNode.length;
  const maxBytesPerSecond = Math.max(...perNode);
  const cpuShare = running.reduce((a, x) => a + x.cpuMs, 0) / running.length / steadyMs;
  progress(`N=${n}: steady ${bytesPerSecond.toFixed(0)} B/s, cpu ${(cpuShare * 100).toFixed(3)} %`);

  // Join: the last member registers and starts.
  const joiner = sim.nodes[n - 1]!;
  const joinAt = sim.now();
  sim.start(n - 1);
  const seenLive = () =>
    sim.nodes.every((x) => x === joiner || x.crashed || isLive(x.service?.stateOf(joiner.id)));
  const joinedAt = sim.run(60_000, seenLive);
  if (!seenLive()) throw new Error(`N=${n}: the new member was not live everywhere within 60 s`);
  const joinMs = joinedAt - joinAt;
  progress(`N=${n}: join seen everywhere after ${Math.round(joinMs)} ms`);
  sim.run(10_000);

  // A CSK rotation, committed by the first member.
  const rotated = sim.now();
  const epoch = sim.rotate(0);
  const allHold = () => sim.nodes.every((x) => x.crashed || x.service === undefined || x.heldEpoch === epoch);
  const heldAt = sim.run(60_000, allHold);
  if (!allHold()) throw new Error(`N=${n}: the rotated CSK was not held everywhere within 60 s`);
  const rotationMs = heldAt - rotated;
  progress(`N=${n}: rotated CSK held everywhere after ${Math.round(rotationMs)} ms`);
  sim.run(5_000);

  // Kills, one at a time, spread over the id range.
  const deadMs: number[] = [];
  const kills = options.kills ?? 3;
  for (let k = 0; k < kills; k++) {
    const victim = Math.floor(((k + 1) * (n - 1)) / (kills + 1));
    const id = sim.nodes[victim]!.id;
    const at = sim.now();
    sim.kill(victim);
    const allDead = () =>
      sim.nodes.every((x) => x.crashed || x.service === undefined || !isLive(x.service.stateOf(id)));
    const doneAt = sim.run(60_000, allDead);
    if (!allDead()) throw new Error(`N=${n}: member ${id} was not dead everywhere within 60 s`);
    deadMs.push(doneAt - at);
    const first = sim.verdicts.find((v) => v.subject === id && v.at >= at);
    const lastNode = sim.nodes.find(
      (x) =>
        !x.crashed &&
        x.service !== undefined &&
        sim.events.some(
          (e) =>
            e.node === x.id && e.event.type === "peer-lost" && e.event.memberId === id && e.at === doneAt,
        ),
    );
    progress(
      `N=${n}: kill ${k + 1} (member ${id}) seen dead everywhere after ${Math.round(doneAt - at)} ms (first suspicion after ${first === undefined ? "-" : Math.round(first.at - at)} ms${lastNode === undefined ? "" : `, last: member ${lastNode.id}`})`,
    );
    sim.run(10_000);
  }

  // Loss: false suspicions and false dead verdicts about members still running.
  const lossResults: { rate: number; suspicions: number; falseDead: number; windowMs: number }[] = [];
  const windowMs = options.lossWindowMs ?? 60_000;
  const crashed = new Set(sim.nodes.filter((x) => x.crashed).map((x) => x.id));
  for (const rate of options.lossRates ?? [0.01, 0.05]) {
    sim.setLoss(rate);
    const from = sim.verdicts.length;
    const lostFrom = sim.events.length;
    sim.run(windowMs);
    const mine = sim.verdicts.slice(from).filter((v) => !crashed.has(v.subject));
    const falseLost = sim.events
      .slice(lostFrom)
      .filter((e) => e.event.type === "peer-lost" && !crashed.has(e.event.memberId)).length;
    lossResults.push({
      rate,
      suspicions: mine.filter((v) => v.kind === "suspect").length,
      falseDead: falseLost,
      windowMs,
    });
    progress(`N=${n}: loss ${rate * 100}%: ${mine.length} false verdicts, ${falseLost} false peer-lost`);
    sim.setLoss(0);
    sim.run(10_000);
  }
  for (const x of sim.nodes) x.controller?.abort();
  return {
    members: n,
    bytesPerSecond,
    maxBytesPerSecond,
    cpuShare,
    warmupMs,
    joinMs,
    rotationMs,
    deadMs,
    loss: lossResults,
  };
}
