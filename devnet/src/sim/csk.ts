// CSK custody at scale: the sidecar's real CSK code on every member of the liveness simulator
// (liveness.ts), over its simulated network and clock. Per member, wired as sidecar/src/mesh/runtime.ts
// wires it: the custody (csk/holder.ts), the server (csk/server.ts: request checks, the standing check of
// csk/standing.ts, the key sealed to the requester's identity key), the client (csk/client.ts: signed
// requests, fan-out 3, 1 s per request, the hash checked against the commitment), the state machine
// (csk/manager.ts: rank rule, holders first, 9 candidates a tick, confirmation) and its tick loop (a tick
// each second and on every liveness event). The committer derives the key from a dstack-simulated CVM
// (devnet/src/dstack-sim), as the sidecar does through the guest agent.
//
// The chain, one of two (`SimChain`): modelled here (the CSK facet as a small in-memory state with its
// commit / confirm rules; a read answers after `readMs`, a write lands after `writeMs`; the contract's
// checks of the member signature and the EIP-712 payloads are not run), or a real Hardhat node holding
// the N registered members (hardhatChain.ts): the sidecar's own chain code (csk/chain.ts over the quorum
// reads and the gas-key writer) against the deployed contract, blocks mined on the simulated clock.

import { randomBytes } from "node:crypto";
import type { KeySource } from "@attestmesh/shared/service/dstack.ts";
import type { CskChain, CskEpochState } from "@attestmesh/sidecar/csk/chain.ts";
import { createCskClient } from "@attestmesh/sidecar/csk/client.ts";
import { deriveCsk } from "@attestmesh/sidecar/csk/derive.ts";
import { type CskCustody, createCskCustody } from "@attestmesh/sidecar/csk/holder.ts";
import { type CskManager, createCskManager } from "@attestmesh/sidecar/csk/manager.ts";
import { createCskServer, type ServeOutcome } from "@attestmesh/sidecar/csk/server.ts";
import { createStandingCheck, type HeadReads, type StandingCheck } from "@attestmesh/sidecar/csk/standing.ts";
import { createLogger } from "@attestmesh/sidecar/log.ts";
import {
  CSK_FANOUT,
  CSK_REQUEST_MAX_SKEW_MS,
  CSK_REQUEST_RATE,
  CSK_REQUEST_TIMEOUT_MS,
  heardPeersOf,
} from "@attestmesh/sidecar/mesh/runtime.ts";
import { directoryFrom } from "@attestmesh/sidecar/meshnet/directory.ts";
import { createRateLimiter } from "@attestmesh/sidecar/meshnet/rateLimit.ts";
import { MessageType, peekType } from "@attestmesh/sidecar/meshnet/wire.ts";
import { simulatorKeySource } from "@attestmesh/sidecar/testing/helpers.ts";
import { type Address, getAddress, type Hex, keccak256, toBytes } from "viem";
import { createKmsRoot, createSimulatedCvm, type SimulatedCvm } from "../dstack-sim/simulator.ts";
import type { LivenessSim } from "./liveness.ts";

/** What one member's CSK code takes from the chain (as mesh/runtime.ts builds it). */
export interface MemberChain {
  readonly csk: CskChain;
  readonly standing: StandingCheck;
  /** Whether a member ranked ahead is still active and not stale at the head. */
  stillActive(id: bigint): Promise<boolean>;
}

/** The chain the members' CSK code talks to: modelled (below) or a real Hardhat node (hardhatChain.ts). */
export interface SimChain {
  /** Member `index`'s chain side; called once per running member. */
  member(index: number): MemberChain;
  /** Commits `commitment` for the current epoch as member 1 (a running cluster's state), then starts. */
  seed(commitment: Hex): Promise<void>;
  /** Opens the next epoch on the owner's authority (as a departure does); resolves with its number. */
  open(): Promise<bigint>;
  /** The chain's CSK state as of the last block. */
  state(): CskEpochState;
  /** Simulated time of the block that opened / committed `epoch`. */
  openedAt(epoch: bigint): number | undefined;
  committed(epoch: bigint): { readonly at: number; readonly by: bigint } | undefined;
  stop(): Promise<void>;
}

export interface CskOptions {
  readonly chainId: number;
  readonly cluster: Address;
  /** The chain side; default the modelled one (readMs, writeMs). */
  readonly chain?: (sim: LivenessSim) => SimChain;
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
  /** Stops every member's CSK loop (and the chain's block production). */
  stop(): Promise<void>;
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

  const chain = options.chain?.(sim) ?? modelledChain(sim, readMs, writeMs);

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
    const asyncTimers = sim.asyncTimers(index);
    const send = sim.send(index);
    const endpoint = { self: node.id, cluster, key: node.key, directory };
    const custody = createCskCustody();
    custody.onChange((change) => {
      if (change.type === "acquired") acquiredAt.push({ epoch: change.epoch, at: sim.now() });
    });
    const onChain = chain.member(index);
    const standing = onChain.standing;
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
      chain: onChain.csk,
      keySource: keySourceOf(index),
      custody,
      client,
      directory,
      peers: heardPeersOf(service, sim.suspicionMs),
      takeoverMs,
      logger: silent,
      monoMs: sim.clock.monoMs,
      random: sim.random,
      stillActive: (id) => onChain.stillActive(id),
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

  // The current epoch, committed by member 1 and held everywhere (a running cluster).
  const current = chain.state().epoch;
  const first = await deriveCsk(keySourceOf(0), cluster.chainId, cluster.cluster, current);
  await chain.seed(keccak256(first));
  for (const a of attached) a.custody.set(current, first.slice());
  first.fill(0);

  const holds = (i: number, epoch: bigint) =>
    attached.find((a) => a.index === i)?.custody.current()?.epoch === epoch;
  const live = () => attached.filter((a) => !sim.nodes[a.index]!.crashed);

  return {
    state: () => chain.state(),
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
      const epoch = await chain.open();
      const allHold = () =>
        chain.openedAt(epoch) !== undefined && live().every((a) => a.custody.current()?.epoch === epoch);
      await sim.runAsync(timeoutMs, allHold);
      const openedAt = chain.openedAt(epoch);
      const commit = chain.committed(epoch);
      if (openedAt === undefined || commit === undefined)
        throw new Error(`epoch ${epoch} was not opened and committed within ${timeoutMs} ms`);
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
    async stop() {
      stopped = true;
      for (const off of unsubscribe) off();
      await chain.stop();
    },
  };
}

/**
 * The modelled chain: the CSK facet's state and its commit / confirm rules in memory; a read answers after
 * `readMs`, a write lands `writeMs` after it is sent.
 */
export function modelledChain(sim: LivenessSim, readMs: number, writeMs: number): SimChain {
  const state = {
    epoch: 1n,
    commitment: undefined as Hex | undefined,
    committer: 0n,
    confirmer: 0n,
    barred: 0n,
  };
  const opened = new Map<bigint, number>([[1n, 0]]);
  const commits = new Map<bigint, { at: number; by: bigint }>();
  let block = 1;
  const snapshot = (): CskEpochState => ({ ...state });
  const chainOf = (i: number): CskChain => ({
    canCommit: true,
    current: () => sim.later(i, readMs, snapshot),
    commit: (memberId, epoch, commitment) =>
      sim.later(i, writeMs, () => {
        if (epoch !== state.epoch) return "epoch-moved";
        if (state.commitment !== undefined) return "already-committed";
        if (state.barred === memberId) return "barred";
        state.commitment = commitment;
        state.committer = memberId;
        state.confirmer = 0n;
        block += 1;
        commits.set(epoch, { at: sim.now(), by: memberId });
        return "committed";
      }),
    confirm: (memberId, epoch, commitment) =>
      sim.later(i, writeMs, () => {
        if (epoch !== state.epoch || commitment !== state.commitment) return "epoch-moved";
        if (state.confirmer === 0n) state.confirmer = memberId;
        block += 1;
        return "confirmed";
      }),
    reopen: () => sim.later(i, writeMs, () => "too-early" as const),
  });
  const headReadsOf = (i: number): HeadReads<number> => ({
    head: () => sim.later(i, readMs, () => block),
    member: async (memberId) => sim.view().get(memberId),
    epoch: async () => state.epoch,
  });
  return {
    member: (i) => ({
      csk: chainOf(i),
      standing: createStandingCheck(headReadsOf(i)),
      stillActive: (id) => sim.later(i, readMs, () => sim.view().has(id)),
    }),
    async seed(commitment) {
      state.commitment = commitment;
      state.committer = sim.nodes[0]!.id;
      state.confirmer = sim.nodes[1]?.id ?? 0n;
      commits.set(state.epoch, { at: sim.now(), by: state.committer });
    },
    async open() {
      state.epoch += 1n;
      state.commitment = undefined;
      state.committer = 0n;
      state.confirmer = 0n;
      block += 1;
      opened.set(state.epoch, sim.now());
      return state.epoch;
    },
    state: snapshot,
    openedAt: (epoch) => opened.get(epoch),
    committed: (epoch) => commits.get(epoch),
    async stop() {},
  };
}
