// Heartbeats: every `intervalMs` this node sends each active member a signed heartbeat (its id, the
// CSK epoch it sees and whether it holds it, a counter, the time and the peers it hears) to the peer's
// mesh IP on the mesh port, and counts the ones it receives through `HeartbeatTable`. Changes in who
// is live, in who is a peer (the directory) and in convergence are published as `HeartbeatEvent`s, in
// that order within one evaluation: joins, liveness, departures, convergence. The application API turns
// them into its `PeerEvent`s; it reads no view of its own.
import type { Address } from "viem";
import type { SigningKey } from "../meshnet/crypto.ts";
import type { MemberDirectory } from "../meshnet/directory.ts";
import type { Remote } from "../meshnet/socket.ts";
import type { ClusterId } from "../meshnet/wire.ts";
import { encodeHeartbeat } from "./codec.ts";
import { createHeartbeatTable, type HeartbeatTable, type ReceiveResult } from "./table.ts";

export type HeartbeatEvent =
  /** A member became a peer of this node (it entered the directory, or the service started). */
  | { readonly type: "peer-joined"; readonly peer: LivePeer; readonly at: number }
  /** A member is no longer a peer (it left the directory, or the service stopped); `peer` is its last entry. */
  | { readonly type: "peer-left"; readonly peer: LivePeer; readonly at: number }
  | { readonly type: "peer-live"; readonly memberId: bigint; readonly at: number }
  | { readonly type: "peer-lost"; readonly memberId: bigint; readonly at: number }
  | { readonly type: "converged"; readonly live: readonly bigint[]; readonly at: number }
  | { readonly type: "diverged"; readonly at: number };

export interface LivePeer {
  readonly memberId: bigint;
  readonly appId: Address;
  readonly meshIp: string;
  readonly live: boolean;
  /** Wall-clock ms of the last counted heartbeat; undefined if none yet. */
  readonly lastHeartbeatMs: number | undefined;
  readonly epoch: bigint | undefined;
  readonly holdsCsk: boolean;
  /** The last counted heartbeat's counter, the sender's timestamp in it and the peers it heard. */
  readonly counter: bigint | undefined;
  readonly sentAtMs: bigint | undefined;
  readonly heard: readonly bigint[];
}

/** The read side, for the status report and the application API. */
export interface PeerTable {
  /** Every active member but this node, ascending by id. */
  peers(): LivePeer[];
  /** Live peer ids, ascending. */
  live(): bigint[];
  converged(): boolean;
  onEvent(listener: (event: HeartbeatEvent) => void): () => void;
}

export interface Clock {
  wallMs(): number;
  monoMs(): number;
}

export const systemClock: Clock = { wallMs: () => Date.now(), monoMs: () => performance.now() };

export interface HeartbeatServiceOptions {
  readonly self: bigint;
  readonly cluster: ClusterId;
  readonly key: SigningKey;
  readonly directory: MemberDirectory;
  readonly send: (datagram: Uint8Array, meshIp: string, port: number) => void;
  readonly port: number;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly maxSkewMs: number;
  /** What the heartbeats say about the CSK. */
  readonly csk: () => { readonly epoch: bigint; readonly holds: boolean };
  readonly clock?: Clock;
  readonly onReceived?: (result: ReceiveResult, from: Remote) => void;
  readonly onSent?: (bytes: number, peers: number) => void;
}

export interface HeartbeatService extends PeerTable {
  handle(datagram: Uint8Array, from: Remote): ReceiveResult;
  /** Sends one round now and re-evaluates liveness. */
  beat(): void;
  /** Starts the timer; stops when `signal` aborts. */
  start(signal: AbortSignal): void;
  /** Monotonic ms when the service started (undefined before). */
  startedAt(): number | undefined;
  readonly table: HeartbeatTable;
}

export function createHeartbeatService(options: HeartbeatServiceOptions): HeartbeatService {
  const { self, cluster, key, directory, port, intervalMs } = options;
  const clock = options.clock ?? systemClock;
  const table = createHeartbeatTable({
    self,
    cluster,
    timeoutMs: options.timeoutMs,
    maxSkewMs: options.maxSkewMs,
    identityKey: (id) => directory.get(id)?.identityKey,
    meshIp: (id) => directory.get(id)?.meshIp,
  });
  // Starts at the boot time in µs, so a restarted node's counters stay above what peers last counted.
  let counter = BigInt(Math.floor(clock.wallMs())) * 1000n;
  let started: number | undefined;
  const listeners = new Set<(event: HeartbeatEvent) => void>();
  let lastLive = new Set<bigint>();
  let lastConverged: boolean | undefined;
  /** The peers announced with `peer-joined`, with their last entry. */
  let lastPeers = new Map<bigint, LivePeer>();

  const emit = (event: HeartbeatEvent) => {
    for (const listener of listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own.
      }
    }
  };

  function peerEntries(mono: number): LivePeer[] {
    return directory
      .all()
      .filter((m) => m.memberId !== self)
      .map((m) => {
        const entry = table.entry(m.memberId);
        return {
          memberId: m.memberId,
          appId: m.record.appId,
          meshIp: m.meshIp,
          live: table.isLive(m.memberId, mono),
          lastHeartbeatMs: entry?.lastHeardWallMs,
          epoch: entry?.epoch,
          holdsCsk: entry?.holdsCsk ?? false,
          counter: entry?.counter,
          sentAtMs: entry?.sentAtMs,
          heard: entry?.heard ?? [],
        };
      });
  }

  /** Set once the service stopped: it publishes nothing after every peer left. */
  let halted = false;

  /** Publishes what changed since the last evaluation (`stopped`: every peer leaves, for good). */
  function evaluate(stopped = false): void {
    if (halted) return;
    halted = stopped;
    const mono = clock.monoMs();
    const at = clock.wallMs();
    table.retain((id) => directory.get(id) !== undefined);
    const peers = new Map(stopped ? [] : peerEntries(mono).map((p) => [p.memberId, p] as const));
    for (const [id, peer] of peers) if (!lastPeers.has(id)) emit({ type: "peer-joined", peer, at });
    const live = new Set(stopped ? [] : table.live(mono));
    for (const id of live) if (!lastLive.has(id)) emit({ type: "peer-live", memberId: id, at });
    for (const id of lastLive) if (!live.has(id)) emit({ type: "peer-lost", memberId: id, at });
    lastLive = live;
    for (const [id, peer] of lastPeers)
      if (!peers.has(id)) emit({ type: "peer-left", peer: { ...peer, live: false }, at });
    lastPeers = peers;
    if (stopped) return;
    const converged = table.converged(mono);
    if (converged !== lastConverged) {
      lastConverged = converged;
      emit(
        converged
          ? { type: "converged", live: [...live].sort((a, b) => (a < b ? -1 : 1)), at }
          : { type: "diverged", at },
      );
    }
  }

  function beat(): void {
    const mono = clock.monoMs();
    const heard = table.live(mono);
    const csk = options.csk();
    counter += 1n;
    const datagram = encodeHeartbeat(
      {
        chainId: cluster.chainId,
        cluster: cluster.cluster,
        senderId: self,
        epoch: csk.epoch,
        holdsCsk: csk.holds,
        counter,
        timestampMs: BigInt(Math.floor(clock.wallMs())),
        heard,
      },
      key.sign,
    );
    let peers = 0;
    for (const member of directory.all()) {
      if (member.memberId === self) continue;
      options.send(datagram, member.meshIp, port);
      peers += 1;
    }
    options.onSent?.(datagram.length * peers, peers);
    evaluate();
  }

  return {
    table,
    handle(datagram, from) {
      const result = table.receive(
        datagram,
        { wallMs: clock.wallMs(), monoMs: clock.monoMs() },
        from.address,
      );
      options.onReceived?.(result, from);
      // A new live peer is published at once; other changes (heard sets, timeouts) at the next beat,
      // so a large mesh does not re-check convergence for every datagram.
      if (result.ok && result.becameLive) evaluate();
      return result;
    },
    beat,
    start(signal) {
      if (started !== undefined || signal.aborted) return;
      started = clock.monoMs();
      beat();
      const timer = setInterval(beat, intervalMs);
      signal.addEventListener(
        "abort",
        () => {
          clearInterval(timer);
          evaluate(true);
        },
        { once: true },
      );
    },
    startedAt: () => started,
    peers: () => peerEntries(clock.monoMs()),
    live: () => table.live(clock.monoMs()),
    converged: () => table.converged(clock.monoMs()),
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
