import type { MeshMember } from "../meshnet/directory.ts";
import type { MeshEndpoint } from "../meshnet/endpoint.ts";
import type { Remote } from "../meshnet/socket.ts";
import { type ClusterId, WireError } from "../meshnet/wire.ts";
import type { Clock, HeartbeatEvent, LivePeer, PeerTable } from "./service.ts";
import {
  decodeLiveness,
  digestShare,
  encodeLiveness,
  MAX_STATEMENTS,
  ProbeKind,
  type SignedLivenessMessage,
  type Statement,
  StatementKind,
  SYNC_MAX_IDS,
  signStatement,
  verifyLiveness,
  verifyStatement,
} from "./swimCodec.ts";

export const LIVENESS_REJECT_REASONS = [
  "malformed",
  "wrong-cluster",
  "self",
  "unknown-member",
  "wrong-source",
  "bad-signature",
  "stale",
  "replay",
  "unexpected",
] as const;
export type LivenessRejectReason = (typeof LIVENESS_REJECT_REASONS)[number];

export type LivenessResult =
  | { readonly ok: true; readonly kind: ProbeKind; readonly senderId: bigint }
  | {
      readonly ok: false;
      readonly reason: LivenessRejectReason;
      readonly senderId?: bigint;
      readonly detail: string;
    };

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface SwimOptions extends MeshEndpoint {
  /** The protocol period: one probe per period. */
  readonly intervalMs: number;
  /** An unrefuted suspicion becomes a `dead` verdict after this (shorter with independent confirmations). */
  readonly suspicionMs: number;
  /** A datagram's timestamp must be within this of the local clock. */
  readonly maxSkewMs: number;
  readonly ackTimeoutMs?: number;
  readonly indirectProbes?: number;
  readonly maxPiggyback?: number;
  readonly gossipMs?: number;
  readonly gossipFanout?: number;
  /** Each statement is sent retransmitMult·⌈log10(N+1)⌉ times by each node that spreads it. */
  readonly retransmitMult?: number;
  readonly convergeSample?: number;
  /** What the datagrams say about the CSK. */
  readonly csk: () => { readonly epoch: bigint; readonly holds: boolean };
  readonly clock?: Clock;
  readonly timers?: Timers;
  readonly random?: () => number;
  /** This node's first incarnation; default the boot time in ms (so a restart is above what peers saw). */
  readonly incarnation?: bigint;
  readonly onReceived?: (result: LivenessResult, from: Remote) => void;
  readonly onSent?: (bytes: number, kind: ProbeKind) => void;
  /** Checks a statement's signature; default `verifyStatement` (a simulator may memoize it). */
  readonly verifyStatement?: (cluster: ClusterId, statement: Statement, reporterKey: Uint8Array) => boolean;
  /** This node suspected a member, or declared one dead (its own verdicts, not relayed ones). */
  readonly onVerdict?: (kind: "suspect" | "dead", subject: bigint) => void;
}

export interface LivenessService extends PeerTable {
  handle(datagram: Uint8Array, from: Remote): LivenessResult;
  /** Runs one protocol period now. */
  tick(): void;
  start(signal: AbortSignal): void;
  /** Stops timers and publishes every peer leaving (what `start`'s signal does). */
  stop(): void;
  startedAt(): number | undefined;
  /** What a peer last said about the CSK in a datagram of its own (undefined: not heard directly). */
  report(memberId: bigint): { readonly epoch: bigint | undefined; readonly holdsCsk: boolean } | undefined;
  /** This node's current incarnation. */
  incarnation(): bigint;
  /** This node's own signed alive statement at its current incarnation. */
  aliveStatement(): Statement;
  /**
   * Takes in alive statements from a snapshot (what a sync answer carries), each checked like one in a
   * datagram, without spreading them, and ends this node's start-up sync. Returns how many counted.
   */
  absorb(statements: readonly Statement[]): number;
  /** The state this node holds of a member, for tests and the simulator. */
  stateOf(memberId: bigint): "alive" | "suspect" | "dead" | undefined;
}

type State = "alive" | "suspect" | "dead";

interface Entry {
  state: State | undefined;
  incarnation: bigint;
  /** The member's own latest alive statement (relayable). */
  alive: Statement | undefined;
  /** The latest suspect or dead statement about it (sent to it when pinged, so it can refute). */
  accusation: Statement | undefined;
  suspectSince: number;
  lastHeardMono: number | undefined;
  lastHeardWall: number | undefined;
  epoch: bigint | undefined;
  holdsCsk: boolean;
  /** The live-set digest in its latest datagram. */
  digest: bigint | undefined;
}

interface Queued {
  statement: Statement;
  sent: number;
}

interface Probe {
  readonly target: bigint;
  readonly seq: number;
  acked: boolean;
  /** Whether the target counted as live when probed (only then does a failure suspect it). */
  readonly accusable: boolean;
  timer: unknown;
}

const systemClock: Clock = { wallMs: () => Date.now(), monoMs: () => performance.now() };
const MAX_RELAYS = 64;
/** Signatures of recent datagrams kept per sender, against replays inside the clock-skew window. */
const REPLAY_WINDOW = 16;
const RELAY_TTL_FACTOR = 2;

export function createSwimService(options: SwimOptions): LivenessService {
  const { self, cluster, key, directory, port, intervalMs, suspicionMs, maxSkewMs } = options;
  const clock = options.clock ?? systemClock;
  const timers = options.timers ?? realTimers;
  const random = options.random ?? Math.random;
  const ackTimeoutMs = options.ackTimeoutMs ?? Math.min(500, Math.floor(intervalMs / 2));
  const indirectProbes = options.indirectProbes ?? 3;
  const maxPiggyback = Math.min(options.maxPiggyback ?? 6, MAX_STATEMENTS);
  const gossipMs = options.gossipMs ?? Math.max(100, Math.floor(intervalMs / 5));
  const gossipFanout = options.gossipFanout ?? 3;
  const retransmitMult = options.retransmitMult ?? 4;
  const convergeSample = options.convergeSample ?? 16;
  const checkStatement = options.verifyStatement ?? verifyStatement;

  let myInc = options.incarnation ?? BigInt(Math.floor(clock.wallMs()));
  let myAlive = signStatement(
    cluster,
    { kind: StatementKind.Alive, subject: self, incarnation: myInc, reporter: self },
    key.sign,
  );

  const entries = new Map<bigint, Entry>();
  const members = new Map<bigint, MeshMember>();
  let memberIds: bigint[] = [];
  let generation: number | undefined;
  let lastAll: MeshMember[] | undefined;
  const shares = new Map<bigint, bigint>();

  // Live set: this node plus every entry alive or suspect.
  let liveCount = 0;
  let gossipScheduled = false;
  let pushScheduled = false;
  let digest = 0n;
  let liveSorted: bigint[] | undefined = [];
  let agree = new Set<bigint>();
  let disagree = new Set<bigint>();

  const queue = new Map<bigint, Queued>();
  let probeOrder: bigint[] = [];
  let probeIndex = 0;
  let probe: Probe | undefined;
  let seq = Math.floor(random() * 0xffff_ffff);
  /** Relayed probes: `${origin}:${target}:${seq}` → expiry (monotonic ms). */
  const relays = new Map<string, number>();
  /** Sync: the next index into `memberIds` to ask about; undefined once done. */
  let syncCursor: number | undefined = 0;
  const syncServed = new Map<bigint, number>();
  /** Per sender: recent datagrams' signatures (by time) and the newest timestamp forgotten. */
  const seen = new Map<bigint, { sigs: Map<string, bigint>; floor: bigint }>();

  const listeners = new Set<(event: HeartbeatEvent) => void>();
  let lastConverged: boolean | undefined;
  let announced = new Map<bigint, LivePeer>();
  let started: number | undefined;
  let halted = false;
  let periodTimer: unknown;
  let gossipTimer: unknown;

  const share = (id: bigint) => {
    let s = shares.get(id);
    if (s === undefined) {
      s = digestShare(id);
      shares.set(id, s);
    }
    return s;
  };
  digest = share(self);

  const emit = (event: HeartbeatEvent) => {
    for (const listener of listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own.
      }
    }
  };

  const isLiveState = (s: State | undefined) => s === "alive" || s === "suspect";

  function retransmits(): number {
    return retransmitMult * Math.max(1, Math.ceil(Math.log10(memberIds.length + 1)));
  }

  function enqueue(statement: Statement): void {
    queue.set(statement.subject, { statement, sent: 0 });
    scheduleGossip();
  }

  /** Up to `max` queued statements, least sent first; each counts as sent once. */
  function piggyback(max: number, first?: Statement): Statement[] {
    const out: Statement[] = first === undefined ? [] : [first];
    if (queue.size > 0 && out.length < max) {
      const limit = retransmits();
      const picks = [...queue.values()].sort((a, b) => a.sent - b.sent).slice(0, max - out.length);
      for (const q of picks) {
        if (first !== undefined && q.statement === first) continue;
        out.push(q.statement);
        q.sent += 1;
        if (q.sent >= limit) queue.delete(q.statement.subject);
      }
    }
    return out;
  }

  function liveChanged(id: bigint, nowLive: boolean): void {
    liveCount += nowLive ? 1 : -1;
    digest ^= share(id);
    liveSorted = undefined;
    agree = new Set();
    disagree = new Set();
    if (nowLive && queue.size > 0) scheduleGossip();
    if (liveCount <= convergeSample) scheduleDigestPush();
    if (!halted && announced.has(id))
      emit({ type: nowLive ? "peer-live" : "peer-lost", memberId: id, at: clock.wallMs() });
  }

  /** Declares a suspect dead exactly when its suspicion runs out (the period's sweep is the backstop). */
  function watchSuspicion(id: bigint, e: Entry): void {
    const since = e.suspectSince;
    timers.setTimeout(() => {
      if (halted || entries.get(id) !== e || e.state !== "suspect" || e.suspectSince !== since) return;
      accuse(id, e, StatementKind.Dead);
      evaluateConvergence();
    }, suspicionMs);
  }

  function setState(id: bigint, e: Entry, state: State, incarnation: bigint): void {
    const was = isLiveState(e.state);
    e.state = state;
    e.incarnation = incarnation;
    const now = isLiveState(state);
    if (was !== now) liveChanged(id, now);
  }

  function entryOf(id: bigint): Entry | undefined {
    if (!members.has(id) || id === self) return undefined;
    let e = entries.get(id);
    if (e === undefined) {
      e = {
        state: undefined,
        incarnation: 0n,
        alive: undefined,
        accusation: undefined,
        suspectSince: 0,
        lastHeardMono: undefined,
        lastHeardWall: undefined,
        epoch: undefined,
        holdsCsk: false,
        digest: undefined,
      };
      entries.set(id, e);
    }
    return e;
  }

  function peerOf(m: MeshMember): LivePeer {
    const e = entries.get(m.memberId);
    return {
      memberId: m.memberId,
      appId: m.record.appId,
      meshIp: m.meshIp,
      live: isLiveState(e?.state),
      lastHeartbeatMs: e?.lastHeardWall,
      epoch: e?.epoch,
      holdsCsk: e?.holdsCsk ?? false,
      counter: e?.state === undefined ? undefined : e.incarnation,
      sentAtMs: e?.lastHeardWall === undefined ? undefined : BigInt(Math.floor(e.lastHeardWall)),
      heard: [],
    };
  }

  /** Follows the directory: forgets departed members, announces joins and departures. */
  function syncDirectory(): void {
    const g = directory.generation?.();
    let all: MeshMember[] | undefined;
    if (g === undefined) {
      all = directory.all();
      if (
        lastAll !== undefined &&
        all.length === lastAll.length &&
        all.every((m, i) => m === lastAll![i] || m.memberId === lastAll![i]!.memberId)
      )
        return;
    } else if (g === generation) return;
    generation = g;
    all ??= directory.all();
    lastAll = all;
    members.clear();
    for (const m of all) members.set(m.memberId, m);
    memberIds = all.map((m) => m.memberId);
    const at = clock.wallMs();
    const joined: LivePeer[] = [];
    for (const m of all) {
      if (m.memberId === self || announced.has(m.memberId)) continue;
      joined.push(peerOf(m));
    }
    const left: LivePeer[] = [];
    for (const [id, peer] of announced) if (!members.has(id)) left.push(peer);
    const next = new Map(announced);
    for (const p of joined) next.set(p.memberId, p);
    for (const p of left) next.delete(p.memberId);
    announced = next;
    if (!halted) for (const p of joined) emit({ type: "peer-joined", peer: p, at });
    for (const p of left) {
      const e = entries.get(p.memberId);
      if (e !== undefined && isLiveState(e.state)) {
        setState(p.memberId, e, "dead", e.incarnation);
        if (!halted) emit({ type: "peer-lost", memberId: p.memberId, at });
      }
      entries.delete(p.memberId);
      queue.delete(p.memberId);
      shares.delete(p.memberId);
    }
    for (const p of left) if (!halted) emit({ type: "peer-left", peer: { ...p, live: false }, at });
    for (const id of [...syncServed.keys()]) if (!members.has(id)) syncServed.delete(id);
    for (const id of [...seen.keys()]) if (!members.has(id)) seen.delete(id);
    // A new round robin, in a new random order.
    probeOrder = [];
    probeIndex = 0;
    evaluateConvergence();
  }

  function evaluateConvergence(): void {
    if (halted) return;
    const converged = computeConverged();
    if (converged !== lastConverged) {
      lastConverged = converged;
      emit(
        converged
          ? { type: "converged", live: live(), at: clock.wallMs() }
          : { type: "diverged", at: clock.wallMs() },
      );
    }
  }

  function computeConverged(): boolean {
    // A small mesh: every live peer's latest digest is this node's (at most `convergeSample` checks).
    if (liveCount <= convergeSample) {
      // Right after the start, a member not heard from yet leaves the view unsettled: otherwise a node
      // would call itself converged alone before its peers' first word, and diverge when it comes. A
      // member still silent after one suspicion timeout is ignored, as one that never runs must be.
      if (
        started !== undefined &&
        clock.monoMs() - started < suspicionMs &&
        members.size <= convergeSample + 1
      ) {
        for (const id of members.keys())
          if (id !== self && entries.get(id)?.state === undefined) return false;
      }
      for (const id of liveArray()) if (entries.get(id)?.digest !== digest) return false;
      return true;
    }
    // A large one: the peers heard since the live set last changed agree, and there are enough of them.
    if (disagree.size > 0) return false;
    return agree.size >= convergeSample;
  }

  function liveArray(): readonly bigint[] {
    if (liveSorted === undefined) {
      liveSorted = [];
      for (const [id, e] of entries) if (isLiveState(e.state)) liveSorted.push(id);
      liveSorted.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    }
    return liveSorted;
  }

  function live(): bigint[] {
    return [...liveArray()];
  }

  function refute(incarnation: bigint): void {
    if (incarnation < myInc) return;
    myInc = incarnation + 1n;
    myAlive = signStatement(
      cluster,
      { kind: StatementKind.Alive, subject: self, incarnation: myInc, reporter: self },
      key.sign,
    );
    enqueue(myAlive);
  }

  function accuse(
    id: bigint,
    e: Entry,
    kind: typeof StatementKind.Suspect | typeof StatementKind.Dead,
  ): void {
    const s = signStatement(
      cluster,
      { kind, subject: id, incarnation: e.incarnation, reporter: self },
      key.sign,
    );
    e.accusation = s;
    if (kind === StatementKind.Suspect) {
      if (e.state !== "suspect") {
        e.suspectSince = clock.monoMs();
        watchSuspicion(id, e);
      }
      setState(id, e, "suspect", e.incarnation);
    } else setState(id, e, "dead", e.incarnation);
    enqueue(s);
    options.onVerdict?.(kind === StatementKind.Suspect ? "suspect" : "dead", id);
  }

  /** Whether a statement would change this node's state (checked before its signature, to save work). */
  function news(s: Statement): boolean {
    if (s.subject === self) return s.kind !== StatementKind.Alive && s.incarnation >= myInc;
    const e = members.has(s.subject) ? entries.get(s.subject) : undefined;
    if (s.kind === StatementKind.Alive)
      return e === undefined || e.state === undefined || s.incarnation > e.incarnation;
    if (e === undefined || e.state === undefined || s.incarnation < e.incarnation) return false;
    if (s.kind === StatementKind.Dead) return e.state !== "dead" || s.incarnation > e.incarnation;
    if (e.state === "dead" && s.incarnation === e.incarnation) return false;
    return !(e.state === "suspect" && s.incarnation === e.incarnation);
  }

  /** Applies a statement that is news; `spread`: queue it for others (not for a sync answer's). */
  function apply(s: Statement, spread = true): void {
    if (s.subject === self) {
      refute(s.incarnation);
      return;
    }
    const e = entryOf(s.subject);
    if (e === undefined) return;
    if (s.kind === StatementKind.Alive) {
      e.alive = s;
      e.accusation = undefined;
      setState(s.subject, e, "alive", s.incarnation);
      if (spread) enqueue(s);
    } else if (s.kind === StatementKind.Dead) {
      e.accusation = s;
      setState(s.subject, e, "dead", s.incarnation);
      enqueue(s);
    } else {
      e.suspectSince = clock.monoMs();
      e.accusation = s;
      setState(s.subject, e, "suspect", s.incarnation);
      watchSuspicion(s.subject, e);
      enqueue(s);
    }
  }

  function message(
    kind: ProbeKind,
    fields: { origin?: bigint; target?: bigint; seq?: number },
    statements: Statement[],
  ): Uint8Array {
    const csk = options.csk();
    return encodeLiveness(
      {
        chainId: cluster.chainId,
        cluster: cluster.cluster,
        senderId: self,
        kind,
        origin: fields.origin ?? 0n,
        target: fields.target ?? 0n,
        seq: fields.seq ?? 0,
        incarnation: myInc,
        epoch: csk.epoch,
        holdsCsk: csk.holds,
        digest,
        timestampMs: BigInt(Math.floor(clock.wallMs())),
        statements,
      },
      key.sign,
    );
  }

  function sendTo(id: bigint, datagram: Uint8Array, kind: ProbeKind): void {
    const m = members.get(id);
    if (m === undefined) return;
    options.send(datagram, m.meshIp, port);
    options.onSent?.(datagram.length, kind);
  }

  /** Up to `n` distinct random live members other than `exclude` (cost bounded by `n`, not by N). */
  function randomLive(n: number, exclude: ReadonlySet<bigint>): bigint[] {
    const pool = liveArray();
    const out = new Set<bigint>();
    if (pool.length <= n + exclude.size) {
      for (const id of pool) if (!exclude.has(id) && out.size < n) out.add(id);
      return [...out];
    }
    for (let tries = 0; out.size < n && tries < 4 * n + 8; tries++) {
      const id = pool[Math.floor(random() * pool.length)]!;
      if (!exclude.has(id)) out.add(id);
    }
    return [...out];
  }

  function nextTarget(): bigint | undefined {
    for (let tries = 0; tries < 2; tries++) {
      while (probeIndex < probeOrder.length) {
        const id = probeOrder[probeIndex++]!;
        if (members.has(id) && id !== self) return id;
      }
      probeOrder = memberIds.filter((id) => id !== self);
      for (let i = probeOrder.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [probeOrder[i], probeOrder[j]] = [probeOrder[j]!, probeOrder[i]!];
      }
      probeIndex = 0;
    }
    return undefined;
  }

  function tick(): void {
    if (halted) return;
    syncDirectory();
    const mono = clock.monoMs();
    // The last period's probe: no ack, direct or relayed, and its target is suspected.
    const last = probe;
    probe = undefined;
    if (last !== undefined) {
      timers.clearTimeout(last.timer);
      const e = entries.get(last.target);
      if (!last.acked && last.accusable && e !== undefined && e.state === "alive")
        accuse(last.target, e, StatementKind.Suspect);
    }
    // Suspicions that ran out.
    for (const [id, e] of entries) {
      if (e.state === "suspect" && mono - e.suspectSince >= suspicionMs) accuse(id, e, StatementKind.Dead);
    }
    for (const [k, expiry] of relays) if (expiry <= mono) relays.delete(k);
    // The start's settling window may have closed since the last change.
    evaluateConvergence();
    syncStep();
    const target = nextTarget();
    if (target !== undefined) {
      const e = entries.get(target);
      seq = (seq + 1) >>> 0;
      const p: Probe = { target, seq, acked: false, accusable: e?.state === "alive", timer: undefined };
      probe = p;
      const accusation = e !== undefined && e.state !== "alive" ? e.accusation : undefined;
      sendTo(
        target,
        message(ProbeKind.Ping, { origin: self, target, seq }, piggyback(maxPiggyback, accusation)),
        ProbeKind.Ping,
      );
      if (p.accusable) {
        p.timer = timers.setTimeout(() => {
          if (p.acked || probe !== p || halted) return;
          const via = randomLive(indirectProbes, new Set([target]));
          for (const id of via)
            sendTo(
              id,
              message(ProbeKind.PingReq, { origin: self, target, seq: p.seq }, piggyback(maxPiggyback)),
              ProbeKind.PingReq,
            );
        }, ackTimeoutMs);
      }
    }
    evaluateConvergence();
  }

  /** A starting node asks for the alive statements others hold, a range of ids per period. */
  function syncStep(): void {
    if (syncCursor === undefined) return;
    if (syncCursor >= memberIds.length) {
      syncCursor = undefined;
      return;
    }
    const from = memberIds[syncCursor]!;
    const count = Math.min(SYNC_MAX_IDS, memberIds.length - syncCursor);
    let ask = randomLive(2, new Set());
    // The range counts as asked only when live members were asked (not a member that may be down).
    if (ask.length > 0) syncCursor += count;
    if (ask.length === 0 && memberIds.length > 1) {
      // Nobody heard yet: ask any member (one that is down costs one datagram).
      const others = memberIds.filter((id) => id !== self);
      ask = [others[Math.floor(random() * others.length)]!];
    }
    for (const id of ask)
      sendTo(id, message(ProbeKind.SyncReq, { target: from, seq: count }, []), ProbeKind.SyncReq);
  }

  function serveSync(requester: bigint, from: bigint, count: number): void {
    const mono = clock.monoMs();
    const last = syncServed.get(requester);
    if (last !== undefined && mono - last < intervalMs / 2) return;
    syncServed.set(requester, mono);
    let i = memberIds.indexOf(from);
    if (i < 0) return;
    const out: Statement[] = [];
    for (const end = Math.min(memberIds.length, i + count); i < end; i++) {
      const id = memberIds[i]!;
      if (id === self) out.push(myAlive);
      else {
        const e = entries.get(id);
        if (e?.alive !== undefined && isLiveState(e.state) && e.alive.incarnation === e.incarnation)
          out.push(e.alive);
      }
    }
    for (let k = 0; k < out.length; k += MAX_STATEMENTS)
      sendTo(requester, message(ProbeKind.Sync, {}, out.slice(k, k + MAX_STATEMENTS)), ProbeKind.Sync);
  }

  function scheduleGossip(): void {
    // Nobody to gossip to: wait for a member to go live (liveChanged) instead of polling.
    if (gossipScheduled || halted || started === undefined || liveCount === 0) return;
    gossipScheduled = true;
    gossipTimer = timers.setTimeout(() => {
      gossipScheduled = false;
      if (halted || queue.size === 0) return;
      for (const id of randomLive(gossipFanout, new Set())) {
        const statements = piggyback(maxPiggyback);
        if (statements.length === 0) break;
        sendTo(id, message(ProbeKind.Gossip, {}, statements), ProbeKind.Gossip);
      }
      if (queue.size > 0) scheduleGossip();
    }, gossipMs);
  }

  /**
   * A small mesh's live set changed: tell every live peer this node's new digest (once, a fifth of a
   * period later, so changes close together go in one push), so convergence is judged at once rather
   * than after every peer happened to be probed.
   */
  function scheduleDigestPush(): void {
    if (pushScheduled || halted || started === undefined) return;
    pushScheduled = true;
    timers.setTimeout(() => {
      pushScheduled = false;
      if (halted || liveCount > convergeSample) return;
      for (const id of liveArray())
        sendTo(id, message(ProbeKind.Gossip, {}, piggyback(maxPiggyback)), ProbeKind.Gossip);
    }, gossipMs);
  }

  function reject(reason: LivenessRejectReason, detail: string, senderId?: bigint): LivenessResult {
    return senderId === undefined ? { ok: false, reason, detail } : { ok: false, reason, senderId, detail };
  }

  function handle(datagram: Uint8Array, from: Remote): LivenessResult {
    if (halted) return reject("unexpected", "the service stopped");
    syncDirectory();
    let m: SignedLivenessMessage;
    try {
      m = decodeLiveness(datagram);
    } catch (error) {
      if (!(error instanceof WireError)) throw error;
      return reject("malformed", error.message);
    }
    const sender = m.senderId;
    if (m.chainId !== cluster.chainId || m.cluster !== cluster.cluster)
      return reject("wrong-cluster", `for chain ${m.chainId} cluster ${m.cluster}`, sender);
    if (sender === self) return reject("self", "claims this node's id", sender);
    const member = members.get(sender);
    if (member === undefined) return reject("unknown-member", "not an active member on chain", sender);
    // An ack for this node's own probe may come relayed by the member it asked (ping-req).
    const relayedAck =
      m.kind === ProbeKind.Ack &&
      m.origin === self &&
      probe !== undefined &&
      probe.target === sender &&
      probe.seq === m.seq;
    if (member.meshIp !== from.address && !relayedAck)
      return reject("wrong-source", `from ${from.address}, not its mesh IP`, sender);
    if (!verifyLiveness(m, member.identityKey))
      return reject("bad-signature", "not signed by the on-chain identity key", sender);
    const skew = Number(m.timestampMs) - clock.wallMs();
    if (Math.abs(skew) > maxSkewMs)
      return reject("stale", `timestamp is ${skew} ms off the local clock`, sender);
    // A datagram counts once: its signature must be new, and not older than the ones forgotten.
    let recent = seen.get(sender);
    if (recent === undefined) {
      recent = { sigs: new Map(), floor: -1n };
      seen.set(sender, recent);
    }
    const sig = Buffer.from(m.signature.subarray(0, 16)).toString("hex");
    if (recent.sigs.has(sig) || m.timestampMs <= recent.floor)
      return reject("replay", "a datagram already counted", sender);

    recent.sigs.set(sig, m.timestampMs);
    if (recent.sigs.size > REPLAY_WINDOW) {
      let oldest: string | undefined;
      let oldestTs = 0n;
      for (const [k, ts] of recent.sigs)
        if (oldest === undefined || ts < oldestTs) {
          oldest = k;
          oldestTs = ts;
        }
      if (oldest !== undefined) {
        recent.sigs.delete(oldest);
        if (oldestTs > recent.floor) recent.floor = oldestTs;
      }
    }

    // Every statement that would change something must verify before anything is applied.
    const fresh = m.statements.filter((st) => members.has(st.subject) && news(st));
    for (const st of fresh) {
      const reporterKey = st.reporter === self ? key.publicKey : members.get(st.reporter)?.identityKey;
      if (reporterKey === undefined)
        return reject("unknown-member", `a statement by ${st.reporter}, not an active member`, sender);
      if (!checkStatement(cluster, st, reporterKey))
        return reject(
          "bad-signature",
          `a statement about ${st.subject} is not signed by member ${st.reporter}`,
          sender,
        );
    }

    for (const st of fresh) if (news(st)) apply(st, m.kind !== ProbeKind.Sync);

    // The sender's own signed word: it is alive at its incarnation.
    const e = entryOf(sender)!;
    e.lastHeardMono = clock.monoMs();
    e.lastHeardWall = clock.wallMs();
    e.epoch = m.epoch;
    e.holdsCsk = m.holdsCsk;
    e.digest = m.digest;
    if (e.state === undefined || m.incarnation > e.incarnation) {
      e.accusation = undefined;
      setState(sender, e, "alive", m.incarnation);
    } else if (
      e.state !== "alive" &&
      m.incarnation === e.incarnation &&
      e.accusation !== undefined &&
      m.kind !== ProbeKind.Ack
    ) {
      // It talks but stands accused at its incarnation: tell it, so it refutes.
      sendTo(sender, message(ProbeKind.Gossip, {}, [e.accusation]), ProbeKind.Gossip);
    }

    // Agreement on the live set, from datagrams the sender made itself.
    if (isLiveState(e.state)) {
      if (m.digest === digest) {
        agree.add(sender);
        disagree.delete(sender);
      } else {
        disagree.add(sender);
        agree.delete(sender);
      }
    }

    switch (m.kind) {
      case ProbeKind.Ping:
        if (m.target !== self) return reject("unexpected", `a ping for member ${m.target}`, sender);
        sendTo(
          sender,
          message(ProbeKind.Ack, { origin: m.origin, target: self, seq: m.seq }, piggyback(maxPiggyback)),
          ProbeKind.Ack,
        );
        break;
      case ProbeKind.Ack:
        if (m.origin === self) {
          if (probe !== undefined && probe.target === sender && probe.seq === m.seq) probe.acked = true;
        } else {
          const k = `${m.origin}:${sender}:${m.seq}`;
          if (!relays.has(k))
            return reject("unexpected", "an ack this node did not relay a probe for", sender);
          relays.delete(k);
          const origin = members.get(m.origin);
          if (origin !== undefined) {
            options.send(datagram, origin.meshIp, port);
            options.onSent?.(datagram.length, ProbeKind.Ack);
          }
        }
        break;
      case ProbeKind.PingReq: {
        if (m.target === self || !members.has(m.target))
          return reject("unexpected", `a ping-req for member ${m.target}`, sender);
        if (relays.size >= MAX_RELAYS) {
          const oldest = relays.keys().next().value;
          if (oldest !== undefined) relays.delete(oldest);
        }
        relays.set(`${m.origin}:${m.target}:${m.seq}`, clock.monoMs() + RELAY_TTL_FACTOR * intervalMs);
        sendTo(
          m.target,
          message(
            ProbeKind.Ping,
            { origin: m.origin, target: m.target, seq: m.seq },
            piggyback(maxPiggyback),
          ),
          ProbeKind.Ping,
        );
        break;
      }
      case ProbeKind.SyncReq:
        serveSync(sender, m.target, m.seq);
        break;
      default:
        break;
    }
    evaluateConvergence();
    return { ok: true, kind: m.kind, senderId: sender };
  }

  function stop(): void {
    if (halted) return;
    timers.clearTimeout(periodTimer);
    timers.clearTimeout(gossipTimer);
    if (probe !== undefined) timers.clearTimeout(probe.timer);
    const at = clock.wallMs();
    for (const id of live()) if (announced.has(id)) emit({ type: "peer-lost", memberId: id, at });
    for (const peer of announced.values()) emit({ type: "peer-left", peer: { ...peer, live: false }, at });
    halted = true;
  }

  return {
    handle(datagram, from) {
      const result = handle(datagram, from);
      options.onReceived?.(result, from);
      return result;
    },
    tick,
    start(signal) {
      if (started !== undefined || signal.aborted) return;
      started = clock.monoMs();
      syncDirectory();
      enqueue(myAlive);
      // A random phase, so members started together do not probe in step.
      const loop = () => {
        if (halted) return;
        tick();
        periodTimer = timers.setTimeout(loop, intervalMs);
      };
      periodTimer = timers.setTimeout(loop, Math.floor(random() * Math.min(intervalMs, 200)));
      signal.addEventListener("abort", stop, { once: true });
    },
    stop,
    startedAt: () => started,
    peers: () => {
      syncDirectory();
      return directory
        .all()
        .filter((m) => m.memberId !== self)
        .map(peerOf);
    },
    live: () => {
      syncDirectory();
      return live();
    },
    converged: () => {
      // Asked between ticks, after the start's settling window closed: the event goes out with the answer.
      evaluateConvergence();
      return computeConverged();
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    report(memberId) {
      const e = entries.get(memberId);
      return e === undefined || e.lastHeardMono === undefined
        ? undefined
        : { epoch: e.epoch, holdsCsk: e.holdsCsk };
    },
    incarnation: () => myInc,
    absorb(statements) {
      syncDirectory();
      let counted = 0;
      for (const st of statements) {
        if (st.kind !== StatementKind.Alive || !members.has(st.subject) || !news(st)) continue;
        const reporterKey = members.get(st.reporter)?.identityKey;
        if (reporterKey === undefined || !checkStatement(cluster, st, reporterKey)) continue;
        apply(st, false);
        counted += 1;
      }
      syncCursor = undefined;
      evaluateConvergence();
      return counted;
    },
    aliveStatement: () => myAlive,
    stateOf: (id) => entries.get(id)?.state,
  };
}
