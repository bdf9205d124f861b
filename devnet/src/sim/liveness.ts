// A discrete-event simulation of N members running the sidecar's real liveness code (heartbeat/swim.ts:
// its codec, its libsodium signatures, the member directory) over an in-process network with seeded
// loss and delay. Time is simulated (each member's clock and timers are the simulation's), so 1,000
// members for minutes of mesh time run in seconds to minutes of real time; CPU is the CPU time spent
// inside each member's code (probing, signing, verifying, handling datagrams: the process's CPU time
// around each call), summed per member.
//
// The chain is represented by what the sidecar takes from it: the active member records (ids, mesh IPs,
// Ed25519 identity keys) its membership view hands the directory. A join is a new records map (the next
// confirmed view), a member killed stops answering at once (a crash). CSK custody (csk.ts) attaches to
// the same members and network: its datagrams travel beside the liveness ones, counted apart.

import { numberToIp } from "@attestmesh/shared/mesh/cidr.ts";
import type { HeartbeatEvent } from "@attestmesh/sidecar/heartbeat/service.ts";
import { createSwimService, type LivenessService, type Timers } from "@attestmesh/sidecar/heartbeat/swim.ts";
import { type Statement, verifyStatement } from "@attestmesh/sidecar/heartbeat/swimCodec.ts";
import { loadSodium, type SigningKey, signingKeyFromSeed } from "@attestmesh/sidecar/meshnet/crypto.ts";
import { directoryFrom } from "@attestmesh/sidecar/meshnet/directory.ts";
import { MessageType, peekType } from "@attestmesh/sidecar/meshnet/wire.ts";
import type { Member } from "@attestmesh/sidecar/model/member.ts";
import { type WireGuardKeyPair, wireguardKeyPair } from "@attestmesh/sidecar/wireguard/keys.ts";
import { sha256 } from "@noble/hashes/sha2";
import { type Address, bytesToHex, getAddress } from "viem";
import { seededRng } from "../rng.ts";
import { createCskSim } from "./csk.ts";

export const CLUSTER = getAddress("0x5fbdb2315678afecb367f032d93f642f64180aa3");
export const CHAIN_ID = 31337;
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
  /**
   * Members read from a real chain (onchain.ts): their records and the key secrets their CVMs derived,
   * ids 1 … N in order. Without it the members are synthetic (seeded keys, mesh IPs 10.77.0.2 on).
   */
  readonly roster?: readonly RosterEntry[];
}

/** A registered member as the simulator runs it: its on-chain record and its derived key secrets. */
export interface RosterEntry {
  readonly record: Member;
  /** The Ed25519 identity key's 32-byte seed. */
  readonly identitySeed: Uint8Array;
  readonly wireguard: WireGuardKeyPair;
}

interface SimNode {
  readonly id: bigint;
  readonly meshIp: string;
  readonly key: SigningKey;
  readonly wireguard: WireGuardKeyPair;
  service: LivenessService | undefined;
  controller: AbortController | undefined;
  crashed: boolean;
  cpuMs: number;
  bytesSent: number;
  bytesReceived: number;
  datagramsSent: number;
  /** CSK request and response bytes (csk.ts), not counted in the liveness bytes above. */
  cskBytesSent: number;
  cskBytesReceived: number;
  /** What this member's liveness datagrams say about the CSK (csk.ts sets it; before: epoch 1, held). */
  cskState: () => { readonly epoch: bigint; readonly holds: boolean };
  /** Receives the member's CSK datagrams (csk.ts sets it). */
  onCskDatagram: ((datagram: Uint8Array, from: { address: string; port: number }) => void) | undefined;
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
  /**
   * Runs the simulation until `ms` of simulated time passed (or `until` holds, checked every 100 ms).
   * Synchronous: liveness alone (refused once CSK custody is attached; use runAsync).
   */
  run(ms: number, until?: () => boolean, everyMs?: number): number;
  /**
   * The same, letting promise continuations (the CSK code is async) run after every event that touched
   * async code, before simulated time moves on.
   */
  runAsync(ms: number, until?: () => boolean, everyMs?: number): Promise<number>;
  /** Member `index`'s timers on the simulated clock, its work counted as its CPU. */
  timers(index: number): Timers;
  /** `timers(index)` for async code: each callback marks that async code ran (see touchedAsync). */
  asyncTimers(index: number): Timers;
  /** Marks that async code ran: runAsync drains promise continuations before the next event. */
  touchedAsync(): void;
  /**
   * Holds simulated time where it is until the returned release is called: for work outside the
   * simulation (a real chain answering a request) that takes no simulated time of its own.
   */
  hold(): () => void;
  /** Resolves `fn()` after `ms` of simulated time, as member `index`'s work (never, if it crashed). */
  later<T>(index: number, ms: number, fn: () => T): Promise<T>;
  /** Sends a datagram from member `index` to a mesh IP over the simulated network. */
  send(index: number): (datagram: Uint8Array, ip: string) => void;
  readonly clock: { monoMs(): number; wallMs(): number };
  readonly random: () => number;
  /** The liveness suspicion timeout (the sidecar's heartbeat timeout). */
  readonly suspicionMs: number;
  /** The active member records the chain view holds now. */
  view(): ReadonlyMap<bigint, Member>;
  /** Adds member `index` to the chain view (a registration), without starting it. */
  register(index: number): void;
  /** Marks member `index` evicted in the chain view (its record stays, as on chain); it keeps running. */
  evict(index: number): void;
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
  if (options.roster !== undefined && options.roster.length !== options.members)
    throw new Error(`a roster of ${options.roster.length} members for a simulation of ${options.members}`);
  for (let i = 0; i < options.members; i++) {
    const id = BigInt(i + 1);
    const entry = options.roster?.[i];
    if (entry !== undefined && entry.record.memberId !== id)
      throw new Error(`the roster's member ${i} has id ${entry.record.memberId}, not ${id}`);
    const seed = new Uint8Array(32);
    for (let b = 0; b < 32; b++) seed[b] = Math.floor(random() * 256);
    const key = signingKeyFromSeed(entry?.identitySeed ?? seed);
    // The WireGuard key from the id alone (not the seeded stream, so liveness runs stay as they were).
    const wireguard =
      entry?.wireguard ??
      wireguardKeyPair(sha256(new TextEncoder().encode(`attestmesh sim wireguard ${i + 1}`)));
    const meshIp = entry?.record.meshIp ?? (10 << 24) + (77 << 16) + (((i + 2) >> 8) << 8) + ((i + 2) & 0xff);
    if (entry !== undefined) {
      if (entry.record.identityKey.toLowerCase() !== bytesToHex(key.publicKey))
        throw new Error(`member ${id}'s identity seed does not give its on-chain identity key`);
      records.push(entry.record);
    } else
      records.push({
        memberId: id,
        appId: getAddress(`0x${id.toString(16).padStart(40, "0")}`) as Address,
        memberKey: getAddress(`0x${id.toString(16).padStart(40, "0")}`) as Address,
        wireguardKey: bytesToHex(wireguard.publicKey),
        identityKey: bytesToHex(key.publicKey),
        meshIp,
        status: "active",
        registeredAt: 0,
      });
    const ip = numberToIp(meshIp);
    nodes.push({
      id,
      meshIp: ip,
      key,
      wireguard,
      service: undefined,
      controller: undefined,
      crashed: false,
      cpuMs: 0,
      bytesSent: 0,
      bytesReceived: 0,
      datagramsSent: 0,
      cskBytesSent: 0,
      cskBytesReceived: 0,
      cskState: () => ({ epoch: 1n, holds: true }),
      onCskDatagram: undefined,
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

  let asyncTouched = false;
  let cskAttached = false;
  /** Work outside the simulation that simulated time waits for (hold), and the drain waiting on it. */
  let holds = 0;
  let released: (() => void) | undefined;
  const sendFrom = (i: number) => (datagram: Uint8Array, ip: string) => {
    const node = nodes[i]!;
    const liveness = peekType(datagram) === MessageType.Liveness;
    if (liveness) {
      node.bytesSent += datagram.length;
      node.datagramsSent += 1;
    } else node.cskBytesSent += datagram.length;
    const j = byIp.get(ip);
    if (j === undefined || random() < loss) return;
    const at = now + delay[0] + random() * (delay[1] - delay[0]);
    const copy = datagram.slice();
    queue.push(at, () => {
      const dest = nodes[j]!;
      if (dest.crashed || dest.service === undefined) return;
      const from = { address: node.meshIp, port: PORT };
      if (liveness) {
        dest.bytesReceived += copy.length;
        asNode(j, () => dest.service!.handle(copy, from));
      } else if (dest.onCskDatagram !== undefined) {
        dest.cskBytesReceived += copy.length;
        asyncTouched = true;
        asNode(j, () => dest.onCskDatagram!(copy, from));
      }
    });
  };

  function register(i: number): void {
    const node = nodes[i]!;
    if (view.get(node.id)?.status === "active") return;
    const next = new Map(view);
    next.set(node.id, records[i]!);
    view = next;
  }

  function start(i: number): void {
    const node = nodes[i]!;
    if (!view.has(node.id)) register(i);
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
      csk: () => node.cskState(),
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

  /**
   * Runs the next event due by `end`: false (time moved to `end`) when there is none. Checks `until`
   * every `everyMs` of simulated time through `state`.
   */
  function step(end: number): boolean {
    for (;;) {
      const e = queue.peek();
      if (e === undefined || e.at > end) {
        now = end;
        return false;
      }
      queue.pop();
      if (e.cancelled) continue;
      now = e.at;
      e.fn();
      return true;
    }
  }

  /** Whether `until` holds at one of its checks (every `everyMs` of simulated time). */
  function checker(until: (() => boolean) | undefined, everyMs: number): () => boolean {
    let nextCheck = now + everyMs;
    return () => {
      if (until === undefined || now < nextCheck) return false;
      nextCheck = now + everyMs;
      return until();
    };
  }

  function run(ms: number, until?: () => boolean, everyMs = 100): number {
    if (cskAttached) throw new Error("CSK custody is attached: run the simulation with runAsync");
    const end = now + ms;
    const done = checker(until, everyMs);
    while (step(end)) if (done()) break;
    return now;
  }

  async function runAsync(ms: number, until?: () => boolean, everyMs = 100): Promise<number> {
    const end = now + ms;
    const done = checker(until, everyMs);
    const drain = async () => {
      while (asyncTouched || holds > 0) {
        if (asyncTouched) {
          asyncTouched = false;
          // Every promise continuation queued so far runs before the next macrotask.
          await new Promise<void>((resolve) => setImmediate(resolve));
        } else {
          await new Promise<void>((resolve) => {
            released = resolve;
          });
          released = undefined;
        }
      }
    };
    await drain();
    while (step(end)) {
      await drain();
      if (done()) break;
    }
    return now;
  }

  function touchedAsync(): void {
    asyncTouched = true;
    cskAttached = true;
    released?.();
  }

  return {
    nodes,
    now: () => now,
    run,
    runAsync,
    timers: timersOf,
    asyncTimers(index) {
      const timers = timersOf(index);
      return {
        setTimeout: (fn: () => void, ms: number) =>
          timers.setTimeout(() => {
            touchedAsync();
            fn();
          }, ms),
        clearTimeout: (h: unknown) => timers.clearTimeout(h),
      };
    },
    touchedAsync,
    hold() {
      holds += 1;
      cskAttached = true;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        holds -= 1;
        asyncTouched = true;
        released?.();
      };
    },
    later(index, ms, fn) {
      return new Promise((resolve) => {
        timersOf(index).setTimeout(() => {
          asyncTouched = true;
          cskAttached = true;
          resolve(fn());
        }, ms);
      });
    },
    send: sendFrom,
    clock,
    random,
    suspicionMs,
    view: () => view,
    register,
    evict(i) {
      const id = nodes[i]!.id;
      const record = view.get(id);
      if (record === undefined) return;
      const next = new Map(view);
      next.set(id, { ...record, status: "evicted" });
      view = next;
    },
    start,
    kill(i) {
      nodes[i]!.crashed = true;
    },
    setLoss(l) {
      loss = l;
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
        n.cskBytesSent = 0;
        n.cskBytesReceived = 0;
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
  /** ms from a CSK commitment landing until every member held the new key (the real CSK code, csk.ts). */
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

  // A CSK rotation with the sidecar's CSK code (csk.ts): the next epoch opens on the (modelled) chain,
  // the rank-0 member commits it, every other member pulls it. Its loops stop afterwards (they only
  // slow the simulation down); from here on the simulation runs with runAsync.
  const csk = await createCskSim(sim, { chainId: CHAIN_ID, cluster: CLUSTER });
  await sim.runAsync(3_000);
  const rotation = await csk.rotate();
  const runningNow = sim.nodes.filter((x) => !x.crashed && x.service !== undefined).length;
  if (rotation.holders !== runningNow)
    throw new Error(`N=${n}: the rotated CSK was held by ${rotation.holders} of ${runningNow} within 60 s`);
  const rotationMs = rotation.commitToAllMs;
  progress(`N=${n}: rotated CSK held everywhere ${Math.round(rotationMs)} ms after its commitment`);
  await csk.stop();
  await sim.runAsync(5_000);

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
    const doneAt = await sim.runAsync(60_000, allDead);
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
    await sim.runAsync(10_000);
  }

  // Loss: false suspicions and false dead verdicts about members still running.
  const lossResults: { rate: number; suspicions: number; falseDead: number; windowMs: number }[] = [];
  const windowMs = options.lossWindowMs ?? 60_000;
  const crashed = new Set(sim.nodes.filter((x) => x.crashed).map((x) => x.id));
  for (const rate of options.lossRates ?? [0.01, 0.05]) {
    sim.setLoss(rate);
    const from = sim.verdicts.length;
    const lostFrom = sim.events.length;
    await sim.runAsync(windowMs);
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
    await sim.runAsync(10_000);
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
