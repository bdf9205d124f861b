// CSK custody at scale: the sidecar's real CSK code on every member of the liveness simulator
// (liveness.ts), over its simulated network and clock. Per member, wired as sidecar/src/mesh/runtime.ts
// wires it: the custody (csk/holder.ts), the server (csk/server.ts: request checks, the standing check of
// csk/standing.ts, the key sealed to the requester's identity key), the client (csk/client.ts: signed
// requests, fan-out 3, 1 s per request, the hash checked against the commitment), the state machine
// (csk/manager.ts: rank rule, holders first, 9 candidates a tick, confirmation) and its tick loop (a tick
// each second and on every liveness event). The committer derives the key from a dstack-simulated CVM
// (devnet/src/dstack-sim), as the sidecar does through the guest agent.
//
// Modelled, not real: the chain. The CSK facet is a small in-memory state (epoch, commitment, committer,
// confirmer) with its commit / confirm rules; a read answers after `readMs` and a write lands after
// `writeMs` (a block and a receipt). The contract's own checks of the member signature and the EIP-712
// payloads are not run here (contracts/test covers them).

import { randomBytes } from "node:crypto";
import type { KeySource } from "@attestmesh/shared/service/dstack.ts";
import type { CskChain, CskEpochState } from "@attestmesh/sidecar/csk/chain.ts";
import { createCskClient } from "@attestmesh/sidecar/csk/client.ts";
import { deriveCsk } from "@attestmesh/sidecar/csk/derive.ts";
import { type CskCustody, createCskCustody } from "@attestmesh/sidecar/csk/holder.ts";
import { type CskManager, createCskManager } from "@attestmesh/sidecar/csk/manager.ts";
import { createCskServer, type ServeOutcome } from "@attestmesh/sidecar/csk/server.ts";
import { createStandingCheck, type HeadReads } from "@attestmesh/sidecar/csk/standing.ts";
import { createLogger } from "@attestmesh/sidecar/log.ts";
import {
  CSK_FANOUT,
  CSK_REQUEST_MAX_SKEW_MS,
  CSK_REQUEST_RATE,
  CSK_REQUEST_TIMEOUT_MS,
} from "@attestmesh/sidecar/mesh/runtime.ts";
import { directoryFrom } from "@attestmesh/sidecar/meshnet/directory.ts";
import { createRateLimiter } from "@attestmesh/sidecar/meshnet/rateLimit.ts";
import { MessageType, peekType } from "@attestmesh/sidecar/meshnet/wire.ts";
import { simulatorKeySource } from "@attestmesh/sidecar/testing/helpers.ts";
import { type Address, getAddress, type Hex, keccak256, toBytes } from "viem";
import { createKmsRoot, createSimulatedCvm, type SimulatedCvm } from "../dstack-sim/simulator.ts";
import type { LivenessSim } from "./liveness.ts";

export interface CskOptions {
  readonly chainId: number;
  readonly cluster: Address;
  /** Simulated ms until a chain read answers (an agreed block and the calls at it). */
  readonly readMs?: number;
  /** Simulated ms from sending a CSK transaction until its receipt (the state changes at the end). */
  readonly writeMs?: number;
  /** The CSK loop's period (the runtime's: min(poll interval, 1 s)). */
  readonly tickMs?: number;
  readonly takeoverMs?: number;
  /**
   * Members (indices) that answer every request with 32 random bytes sealed to the requester instead of
   * the key (a malicious member's serve policy): their answers must be rejected, the rotation still end.
   */
  readonly liars?: readonly number[];
}

export interface CskRotation {
  readonly epoch: bigint;
  readonly committer: bigint;
  /** Simulated ms from the epoch opening on chain until the commitment landed. */
  readonly openToCommitMs: number;
  /** Simulated ms from the commitment landing until every running member held the key. */
  readonly commitToAllMs: number;
  /** Simulated ms after the commitment at which each member came to hold the key, ascending. */
  readonly heldAfterMs: readonly number[];
  /** Members that held the key (all running ones, unless it timed out). */
  readonly holders: number;
  /** CSK requests members sent during the rotation, and the most one member answered (any outcome). */
  readonly requests: number;
  readonly maxAnsweredByOne: number;
  /** Requests answered with the key, and with "not held". */
  readonly served: number;
  readonly notHeld: number;
  /** Answers the pullers rejected (a bogus key, a bad signature …). */
  readonly rejected: number;
  /** Requests refused (any other outcome), by outcome. */
  readonly refused: Readonly<Record<string, number>>;
  /** Mean CSK bytes (requests + responses, sent + received) per member over the rotation. */
  readonly bytesPerMember: number;
}

export interface CskSim {
  /** The chain's CSK state now (a copy). */
  state(): CskEpochState;
  /** Whether member `index` holds epoch `epoch`'s key. */
  holds(index: number, epoch: bigint): boolean;
  /**
   * Opens the next epoch on chain (as a departure or the owner's revocation does), lets the members'
   * managers commit and pull it, and runs until every running member holds it (or `timeoutMs`).
   */
  rotate(timeoutMs?: number): Promise<CskRotation>;
  /** Stops every member's CSK loop. */
  stop(): void;
}

const silent = createLogger({ level: "silent" });

/**
 * Attaches the real CSK code to every running member of `sim` (start them first). Epoch 1 is committed
 * by member 1 and held by every member, as in a running cluster.
 */
export async function createCskSim(sim: LivenessSim, options: CskOptions): Promise<CskSim> {
  const readMs = options.readMs ?? 100;
  const writeMs = options.writeMs ?? 2000;
  const tickMs = options.tickMs ?? 1000;
  const takeoverMs = options.takeoverMs ?? 10_000;
  // Checksummed, as the codecs decode it: a request is compared with it field by field.
  const cluster = { chainId: options.chainId, cluster: getAddress(options.cluster) };
  const kmsRoot = createKmsRoot();
  const directory = directoryFrom(() => sim.view());
  /** Whole wall-clock ms, as Date.now gives them (the wire carries integers). */
  const wallMs = () => Math.floor(sim.clock.wallMs());
  let stopped = false;

  // ---------------------------------------------------------------------- the chain (modelled)
  const chainState = {
    epoch: 1n,
    commitment: undefined as Hex | undefined,
    committer: 0n,
    confirmer: 0n,
    barred: 0n,
  };
  const commits: { epoch: bigint; at: number; by: bigint }[] = [];
  let block = 1;
  const snapshot = (): CskEpochState => ({ ...chainState });
  const chainOf = (i: number): CskChain => ({
    canCommit: true,
    current: () => sim.later(i, readMs, snapshot),
    commit: (memberId, epoch, commitment) =>
      sim.later(i, writeMs, () => {
        if (epoch !== chainState.epoch) return "epoch-moved";
        if (chainState.commitment !== undefined) return "already-committed";
        if (chainState.barred === memberId) return "barred";
        chainState.commitment = commitment;
        chainState.committer = memberId;
        chainState.confirmer = 0n;
        block += 1;
        commits.push({ epoch, at: sim.now(), by: memberId });
        return "committed";
      }),
    confirm: (memberId, epoch, commitment) =>
      sim.later(i, writeMs, () => {
        if (epoch !== chainState.epoch || commitment !== chainState.commitment) return "epoch-moved";
        if (chainState.confirmer === 0n) chainState.confirmer = memberId;
        block += 1;
        return "confirmed";
      }),
    reopen: () => sim.later(i, writeMs, () => "too-early" as const),
  });
  const headReadsOf = (i: number): HeadReads<number> => ({
    head: () => sim.later(i, readMs, () => block),
    member: async (memberId) => sim.view().get(memberId),
    epoch: async () => chainState.epoch,
  });

  // ---------------------------------------------------------------------- per member, as runtime.ts
  const kms = { kmsRoot };
  const keySourceOf = (i: number): KeySource => {
    let cvm: SimulatedCvm | undefined;
    const source = () => {
      cvm ??= createSimulatedCvm({ ...kms, appId: toBytes(sim.nodes[i]!.id, { size: 20 }) });
      return simulatorKeySource(cvm);
    };
    return {
      appId: () => source().appId(),
      getKey: (path, purpose, algorithm) => source().getKey(path, purpose, algorithm),
    };
  };

  interface Attached {
    readonly index: number;
    readonly custody: CskCustody;
    readonly manager: CskManager;
  }
  const attached: Attached[] = [];
  const unsubscribe: (() => void)[] = [];
  /** Per rotation: requests sent, answers by server and by outcome. */
  let requests = 0;
  let rejected = 0;
  const liars = new Set(options.liars ?? []);
  const acquiredAt: { epoch: bigint; at: number }[] = [];
  const answered = new Map<number, number>();
  const outcomes = new Map<ServeOutcome | "rate-limited", number>();

  const running = sim.nodes
    .map((node, index) => ({ node, index }))
    .filter(({ node }) => node.service !== undefined && !node.crashed);
  for (const { node, index } of running) {
    const service = node.service!;
    const timers = sim.timers(index);
    const asyncTimers = {
      setTimeout: (fn: () => void, ms: number) =>
        timers.setTimeout(() => {
          sim.touchedAsync();
          fn();
        }, ms),
      clearTimeout: (h: unknown) => timers.clearTimeout(h),
    };
    const send = sim.send(index);
    const endpoint = { self: node.id, cluster, key: node.key, directory };
    const custody = createCskCustody();
    custody.onChange((change) => {
      if (change.type === "acquired") acquiredAt.push({ epoch: change.epoch, at: sim.now() });
    });
    const headReads = headReadsOf(index);
    const standing = createStandingCheck(headReads);
    const server = createCskServer({
      ...endpoint,
      standing,
      holder: custody,
      send: (datagram, to) => send(datagram, to.address),
      maxSkewMs: CSK_REQUEST_MAX_SKEW_MS,
      now: wallMs,
      ...(liars.has(index) ? { policy: () => randomBytes(32) } : {}),
    });
    const client = createCskClient({
      ...endpoint,
      send: (datagram, ip) => {
        requests += 1;
        send(datagram, ip);
      },
      port: 0,
      requestTimeoutMs: CSK_REQUEST_TIMEOUT_MS,
      fanout: CSK_FANOUT,
      now: wallMs,
      timers: asyncTimers,
      onRejected: () => {
        rejected += 1;
      },
    });
    const manager = createCskManager({
      self: node.id,
      cluster,
      chain: chainOf(index),
      keySource: keySourceOf(index),
      custody,
      client,
      directory,
      peers: {
        live: () => service.live(),
        report: (id) => service.report(id),
        startedAt: () => service.startedAt(),
        timeoutMs: sim.suspicionMs,
      },
      takeoverMs,
      logger: silent,
      monoMs: sim.clock.monoMs,
      random: sim.random,
      stillActive: (id) => sim.later(index, readMs, () => sim.view().has(id)),
      standing,
    });
    const limiter = createRateLimiter({ ...CSK_REQUEST_RATE, now: sim.clock.monoMs });
    node.onCskDatagram = (datagram, from) => {
      const type = peekType(datagram);
      if (type === MessageType.CskRequest) {
        if (!limiter.take(from.address)) {
          outcomes.set("rate-limited", (outcomes.get("rate-limited") ?? 0) + 1);
          return;
        }
        void server.handle(datagram, from).then((r) => {
          answered.set(index, (answered.get(index) ?? 0) + 1);
          outcomes.set(r.outcome, (outcomes.get(r.outcome) ?? 0) + 1);
        });
      } else if (type === MessageType.CskResponse) client.handle(datagram, from);
    };
    node.cskState = () => ({
      epoch: manager.chainState()?.epoch ?? custody.current()?.epoch ?? 0n,
      holds: manager.acquired(),
    });
    // The runtime's loop: a tick, then wait for the next period or a liveness event, whichever first.
    let woken: (() => void) | undefined;
    unsubscribe.push(
      service.onEvent(() => {
        sim.touchedAsync();
        woken?.();
      }),
    );
    const loop = async () => {
      while (!stopped && !node.crashed) {
        try {
          await manager.tick();
        } catch {
          // The runtime logs it and ticks again.
        }
        await new Promise<void>((resolve) => {
          woken = resolve;
          asyncTimers.setTimeout(resolve, tickMs);
        });
        woken = undefined;
      }
    };
    attached.push({ index, custody, manager });
    sim.touchedAsync();
    void loop();
  }

  // Epoch 1, committed by member 1 and held everywhere (a running cluster).
  const first = await deriveCsk(keySourceOf(0), cluster.chainId, cluster.cluster, 1n);
  chainState.commitment = keccak256(first);
  chainState.committer = sim.nodes[0]!.id;
  chainState.confirmer = sim.nodes[1]?.id ?? 0n;
  for (const a of attached) a.custody.set(1n, first.slice());
  first.fill(0);

  const holds = (i: number, epoch: bigint) =>
    attached.find((a) => a.index === i)?.custody.current()?.epoch === epoch;
  const live = () => attached.filter((a) => !sim.nodes[a.index]!.crashed);

  return {
    state: snapshot,
    holds,
    async rotate(timeoutMs = 60_000) {
      requests = 0;
      rejected = 0;
      acquiredAt.length = 0;
      answered.clear();
      outcomes.clear();
      for (const n of sim.nodes) {
        n.cskBytesSent = 0;
        n.cskBytesReceived = 0;
      }
      chainState.epoch += 1n;
      chainState.commitment = undefined;
      chainState.committer = 0n;
      chainState.confirmer = 0n;
      block += 1;
      const epoch = chainState.epoch;
      const openedAt = sim.now();
      const allHold = () => live().every((a) => a.custody.current()?.epoch === epoch);
      await sim.runAsync(timeoutMs, allHold);
      const commit = commits.find((c) => c.epoch === epoch);
      if (commit === undefined) throw new Error(`epoch ${epoch} was not committed within ${timeoutMs} ms`);
      const doneAt = sim.now();
      const members = live();
      const holders = members.filter((a) => a.custody.current()?.epoch === epoch).length;
      const refused: Record<string, number> = {};
      for (const [k, v] of outcomes) if (k !== "served" && k !== "not-held") refused[k] = v;
      const bytes = members.reduce(
        (s, a) => s + sim.nodes[a.index]!.cskBytesSent + sim.nodes[a.index]!.cskBytesReceived,
        0,
      );
      return {
        epoch,
        committer: commit.by,
        openToCommitMs: commit.at - openedAt,
        commitToAllMs: doneAt - commit.at,
        heldAfterMs: acquiredAt
          .filter((a) => a.epoch === epoch)
          .map((a) => a.at - commit.at)
          .sort((a, b) => a - b),
        holders,
        requests,
        rejected,
        maxAnsweredByOne: Math.max(0, ...answered.values()),
        served: outcomes.get("served") ?? 0,
        notHeld: outcomes.get("not-held") ?? 0,
        refused,
        bytesPerMember: bytes / Math.max(1, members.length),
      };
    },
    stop() {
      stopped = true;
      for (const off of unsubscribe) off();
    },
  };
}
