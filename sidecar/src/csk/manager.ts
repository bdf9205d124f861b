// The CSK state machine, one `tick()` at a time (the runtime calls it on a timer and on wake-ups):
//
//   epoch uncommitted  The committer is chosen deterministically: the candidates are the active members
//                      this node hears (itself included; every active member until it has listened for
//                      one heartbeat timeout), ascending by id. The candidate at rank r commits once the
//                      epoch has been open for r × takeoverMs in its own view. So the lowest live member
//                      commits at once; if it died, it drops out of the live set after the heartbeat
//                      timeout and the next one is rank 0; if it lives but never commits, rank 1 takes
//                      over after takeoverMs, and so on: no epoch stays uncommitted while a member lives.
//                      The contract takes the first commitment only; a loser zeroes its key and pulls.
//   committed, mine    The committer re-derives its key in the TEE (same path, same key), e.g. after a
//                      restart, and holds it if it matches the commitment.
//   committed, other   Pull from peers (those that say they hold this epoch first), accept only a key
//                      whose keccak256 is the commitment, then confirm on chain that a second member
//                      holds it (the lowest live non-committer first, the next one a takeover later).
//   nobody serves it   A member may commit to a hash nobody can open (issue 13). Once no peer has
//                      served the committed key for reopenAfterMs and nobody confirmed it, re-open the
//                      epoch on chain (the contract allows it after its own delay); the committer of a
//                      re-opened epoch may not commit the next, so an honest member does.
//   not attested yet   A peer answers "not attested yet" until its re-attestation of this node passed
//                      (a newcomer is peered before anyone judged it): not evidence against the peer;
//                      the tick says awaiting-attestation and the runtime asks again soon.
//   departed           Each new epoch this node reads, it first reads its own standing at the head
//                      (standing.ts): a departure always opens an epoch, so that catches an eviction as
//                      soon as the head shows it, blocks before the confirmed view does. A departed node
//                      zeroes its key and never pulls, commits or confirms again in this membership.
//   not standing       The owner's revocation (device revoked, compose hash or KMS root withdrawn) opens
//                      an epoch too (ICsk); the head then says this node is stale: it zeroes its key and
//                      neither pulls, commits nor confirms (the contract refuses the latter two anyway)
//                      until the head says the policy admits it again.
import { keccak256 } from "viem";
import type { KeySource } from "../keys.ts";
import type { Logger } from "../log.ts";
import type { MemberDirectory } from "../meshnet/directory.ts";
import type { ClusterId } from "../meshnet/wire.ts";
import type { CskChain, CskEpochState } from "./chain.ts";
import type { CskClient, FetchResult } from "./client.ts";
import { deriveCsk } from "./derive.ts";
import type { CskCustody } from "./holder.ts";
import type { StandingCheck } from "./standing.ts";

export interface HeardPeers {
  live(): bigint[];
  /** What a peer's last heartbeat said about the CSK. */
  report(memberId: bigint): { readonly epoch: bigint | undefined; readonly holdsCsk: boolean } | undefined;
  /** Monotonic ms since when this node has been listening; undefined if not yet. */
  startedAt(): number | undefined;
  readonly timeoutMs: number;
}

export type TickAction =
  | "holding"
  | "waiting-turn"
  | "committed"
  | "lost-race"
  | "re-derived"
  | "pulled"
  | "pull-failed"
  | "awaiting-attestation"
  | "reopened"
  | "cannot-commit"
  | "departed"
  | "not-standing";

/** The contract's re-open delay (ICsk.cskReopenDelay): trying earlier only earns CskReopenTooEarly. */
export const DEFAULT_REOPEN_AFTER_MS = 300_000;

export interface CskManagerOptions {
  readonly self: bigint;
  readonly cluster: ClusterId;
  readonly chain: CskChain;
  readonly keySource: KeySource;
  readonly custody: CskCustody;
  readonly client: Pick<CskClient, "fetch">;
  readonly directory: MemberDirectory;
  readonly peers: HeardPeers;
  readonly takeoverMs: number;
  /** How long no peer may serve a committed key before this node re-opens the epoch on chain. */
  readonly reopenAfterMs?: number;
  readonly logger: Logger;
  readonly monoMs?: () => number;
  /** Uniform in [0, 1): orders the pull candidates (Math.random unless a simulator seeds it). */
  readonly random?: () => number;
  /** Confirms a candidate ranked ahead of this node is still active on chain (the view may lag); may throw. */
  readonly stillActive?: (memberId: bigint) => Promise<boolean>;
  /** This node's standing at the head, read once per new epoch; departed ends the state machine. */
  readonly standing?: StandingCheck;
  readonly onCommit?: (outcome: string) => void;
  readonly onFetch?: (result: FetchResult, epoch: bigint, ms: number) => void;
}

export interface CskManager {
  tick(): Promise<TickAction>;
  /** The chain's current epoch as last read. */
  chainState(): CskEpochState | undefined;
  /** True when the held key is the chain's current epoch's. */
  acquired(): boolean;
}

export function createCskManager(options: CskManagerOptions): CskManager {
  const { self, cluster, chain, custody, directory, peers, logger } = options;
  const monoMs = options.monoMs ?? (() => performance.now());
  const random = options.random ?? Math.random;
  const reopenAfterMs = options.reopenAfterMs ?? DEFAULT_REOPEN_AFTER_MS;
  let state: CskEpochState | undefined;
  /** Epoch → monotonic ms since when no peer has served its committed key (cleared on success). */
  const failingSince = new Map<bigint, number>();
  /** Epoch → monotonic ms of this node's last re-open attempt. */
  const reopenTried = new Map<bigint, number>();
  /** Epoch → monotonic ms since when this node holds its key (pulled), for the confirmation order. */
  const heldSince = new Map<bigint, number>();
  /** Epochs this node confirmed (or saw confirmed), and those with a confirmation in flight. */
  const confirmed = new Set<bigint>();
  const confirming = new Set<bigint>();
  /** Epoch → failed confirmations in a row and when the last one failed (monotonic ms). */
  const confirmFailures = new Map<bigint, { count: number; at: number }>();
  /** Epoch → monotonic ms this node first saw it open and uncommitted. */
  const openSince = new Map<bigint, number>();
  /** Members that served a bogus key: asked last, per epoch. */
  const suspects = new Map<bigint, Set<bigint>>();
  /**
   * Epoch → what the chain said about candidates ranked ahead of this node. Within one epoch an active
   * member stays active (leaving or eviction opens the next epoch), so each answer is read once.
   */
  const checked = new Map<bigint, Map<bigint, boolean>>();
  /** The last epoch at which the head said this node is active; set once it departed. */
  let activeAt: bigint | undefined;
  let departed = false;

  /** Whether the head says this node is revoked (stale): it then holds, makes and confirms no key. */
  let notStanding = false;

  /** True (and the key zeroed) once the head shows this node left or was evicted. */
  async function departedAtHead(epoch: bigint): Promise<boolean> {
    if (departed) return true;
    if (options.standing === undefined || activeAt === epoch) return false;
    const standing = await options.standing.of(self, epoch);
    if (standing === "active") activeAt = epoch;
    if (standing === "stale") {
      if (!notStanding) {
        custody.clear();
        logger.error(
          { epoch: epoch.toString(), member: self.toString() },
          "the chain head shows the owner revoked this member (device, compose hash or KMS root): zeroed the CSK; no pull, commit or confirmation until the policy admits it again",
        );
      }
      notStanding = true;
      return false;
    }
    if (notStanding) {
      notStanding = false;
      logger.info({ epoch: epoch.toString() }, "the policy admits this member again");
    }
    if (standing !== "departed") return false;
    departed = true;
    custody.clear();
    logger.error(
      { epoch: epoch.toString(), member: self.toString() },
      "the chain head shows this member left or was evicted: zeroed the CSK and stopped pulling",
    );
    return true;
  }

  const holding = (s: CskEpochState) => {
    const held = custody.current();
    return held !== undefined && held.epoch === s.epoch && held.commitment === s.commitment;
  };

  /**
   * This node's rank among the candidates, or -1 if it is not one. Counting stops once the rank exceeds
   * `allowed` (the highest rank whose turn has come): it then returns Infinity. Each candidate ranked ahead
   * may cost a chain read (stillActive), so counting all of them cost member k k sequential head reads
   * before its first pull of every epoch — 8 s at N = 100 in the simulator (issue 16).
   */
  async function rank(epoch: bigint, barred: bigint, allowed: number): Promise<number> {
    const started = peers.startedAt();
    const warm = started !== undefined && monoMs() - started >= peers.timeoutMs;
    const live = new Set(peers.live());
    const known = checked.get(epoch) ?? new Map<bigint, boolean>();
    checked.set(epoch, known);
    let r = 0;
    for (const member of directory.all()) {
      if (member.memberId === self) return r;
      if (warm && !live.has(member.memberId)) continue;
      // Barred from this epoch: the contract refuses its commitment, so nobody waits for it.
      if (member.memberId === barred) continue;
      if (options.stillActive !== undefined) {
        let active = known.get(member.memberId);
        if (active === undefined) {
          try {
            active = await options.stillActive(member.memberId);
            known.set(member.memberId, active);
          } catch {
            // The chain did not answer: assume it is still active (waiting is the safe side).
            active = true;
          }
        }
        if (!active) continue;
      }
      r += 1;
      if (r > allowed) return Number.POSITIVE_INFINITY;
    }
    return -1;
  }

  async function commitFresh(s: CskEpochState): Promise<TickAction> {
    const since = openSince.get(s.epoch) ?? monoMs();
    openSince.set(s.epoch, since);
    const barred = s.barred ?? 0n;
    if (barred === self) return "waiting-turn";
    const r = await rank(s.epoch, barred, Math.floor((monoMs() - since) / options.takeoverMs));
    if (r < 0 || monoMs() - since < r * options.takeoverMs) return "waiting-turn";
    if (!chain.canCommit) return "cannot-commit";
    const key = await deriveCsk(options.keySource, cluster.chainId, cluster.cluster, s.epoch);
    const commitment = keccak256(key);
    logger.info({ epoch: s.epoch.toString(), rank: r }, "committing a new CSK for this epoch");
    let outcome: string;
    try {
      outcome = await chain.commit(self, s.epoch, commitment);
    } catch (error) {
      key.fill(0);
      options.onCommit?.("error");
      throw error;
    }
    options.onCommit?.(outcome);
    if (outcome === "committed") {
      custody.set(s.epoch, key);
      state = { epoch: s.epoch, commitment, committer: self };
      logger.info({ epoch: s.epoch.toString(), commitment }, "CSK committed; holding it");
      return "committed";
    }
    key.fill(0);
    if (outcome === "barred") return "waiting-turn";
    logger.info({ epoch: s.epoch.toString(), outcome }, "another member committed this epoch first");
    return "lost-race";
  }

  /**
   * Tell the chain a second member holds this epoch's key, so no member can re-open it. The live
   * non-committers confirm in id order, one takeover apart, so normally one transaction per epoch.
   * The transaction runs beside the state machine: a slow bundler must not hold up the next tick.
   */
  function confirmHeld(s: CskEpochState & { commitment: `0x${string}` }): void {
    if (s.committer === self || !chain.canCommit) return;
    if ((s.confirmer ?? 0n) !== 0n || confirmed.has(s.epoch)) {
      confirmed.add(s.epoch);
      return;
    }
    if (confirming.has(s.epoch)) return;
    const since = heldSince.get(s.epoch) ?? monoMs();
    heldSince.set(s.epoch, since);
    const order = [...new Set([...peers.live(), self])]
      .filter((id) => id !== s.committer)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (monoMs() - since < order.indexOf(self) * options.takeoverMs) return;
    const failures = confirmFailures.get(s.epoch);
    if (failures !== undefined && monoMs() - failures.at < confirmRetryDelayMs(failures.count)) return;
    const epoch = s.epoch;
    confirming.add(epoch);
    chain
      .confirm(self, epoch, s.commitment)
      .then(
        (outcome) => {
          confirmed.add(epoch);
          logger.info(
            { epoch: epoch.toString(), outcome },
            "confirmed on chain that this member holds the CSK",
          );
        },
        (err: unknown) => {
          const count = (confirmFailures.get(epoch)?.count ?? 0) + 1;
          confirmFailures.set(epoch, { count, at: monoMs() });
          logger.warn(
            { err, epoch: epoch.toString(), failures: count, retryInMs: confirmRetryDelayMs(count) },
            "could not confirm the CSK on chain; retrying",
          );
        },
      )
      .finally(() => confirming.delete(epoch));
  }

  /** No peer served the committed key: after reopenAfterMs of that, re-open the epoch on chain. */
  async function pullFailed(s: CskEpochState): Promise<TickAction> {
    const since = failingSince.get(s.epoch) ?? monoMs();
    failingSince.set(s.epoch, since);
    if (s.committer === self || !chain.canCommit || (s.confirmer ?? 0n) !== 0n) return "pull-failed";
    const now = monoMs();
    if (now - since < reopenAfterMs) return "pull-failed";
    const tried = reopenTried.get(s.epoch);
    if (tried !== undefined && now - tried < options.takeoverMs) return "pull-failed";
    reopenTried.set(s.epoch, now);
    const outcome = await chain.reopen(self, s.epoch);
    if (outcome === "reopened") {
      logger.warn(
        { epoch: s.epoch.toString(), committer: s.committer.toString(), failingMs: Math.round(now - since) },
        "no peer served the committed CSK and nobody confirmed it: re-opened the epoch; its committer may not commit the next",
      );
      return "reopened";
    }
    logger.info({ epoch: s.epoch.toString(), outcome }, "the CSK epoch was not re-opened");
    return "pull-failed";
  }

  async function acquire(s: CskEpochState & { commitment: `0x${string}` }): Promise<TickAction> {
    if (s.committer === self) {
      const key = await deriveCsk(options.keySource, cluster.chainId, cluster.cluster, s.epoch);
      if (keccak256(key) === s.commitment) {
        custody.set(s.epoch, key);
        logger.info({ epoch: s.epoch.toString() }, "re-derived the CSK this member committed");
        return "re-derived";
      }
      key.fill(0);
      logger.warn(
        { epoch: s.epoch.toString() },
        "the re-derived CSK does not match this member's commitment; pulling it",
      );
    }
    const live = peers.live();
    const suspect = suspects.get(s.epoch) ?? new Set<bigint>();
    // Peers whose own datagrams said they hold the epoch first, then the rest; each group in random
    // order, and a few per tick, so after a rotation the pulls spread over the members that hold it
    // (their number grows each tick) instead of all landing on the committer or the lowest ids.
    const holderSet = new Set(
      live.filter((id) => {
        const r = peers.report(id);
        return r?.epoch === s.epoch && r.holdsCsk;
      }),
    );
    const holders = shuffled([...holderSet], random);
    const others = shuffled(
      live.filter((id) => !holderSet.has(id)),
      random,
    );
    let order = [...holders, ...others];
    if (order.length === 0)
      order = directory
        .all()
        .map((m) => m.memberId)
        .filter((id) => id !== self);
    order = [...order.filter((id) => !suspect.has(id)), ...order.filter((id) => suspect.has(id))].slice(
      0,
      PULL_CANDIDATES_PER_TICK,
    );
    if (order.length === 0) return pullFailed(s);
    const began = monoMs();
    const result = await options.client.fetch({ epoch: s.epoch, commitment: s.commitment, peers: order });
    options.onFetch?.(result, s.epoch, monoMs() - began);
    for (const a of result.attempts) {
      if (
        a.outcome !== "ok" &&
        a.outcome !== "not-held" &&
        a.outcome !== "not-attested-yet" &&
        a.outcome !== "timeout"
      )
        suspect.add(a.peer);
    }
    suspects.set(s.epoch, suspect);
    if (result.key === undefined || result.from === undefined) {
      logger.debug(
        { epoch: s.epoch.toString(), attempts: result.attempts.map((a) => `${a.peer}:${a.outcome}`) },
        "no peer delivered the CSK yet",
      );
      const action = await pullFailed(s);
      // A peer holds no verdict on this node yet: its re-attestation is under way, so ask again soon.
      return action === "pull-failed" && result.attempts.some((a) => a.outcome === "not-attested-yet")
        ? "awaiting-attestation"
        : action;
    }
    custody.set(s.epoch, result.key);
    failingSince.delete(s.epoch);
    logger.info(
      { epoch: s.epoch.toString(), from: result.from.toString(), ms: Math.round(monoMs() - began) },
      "CSK acquired from a peer; hash matches the chain",
    );
    confirmHeld(s);
    return "pulled";
  }

  return {
    async tick() {
      if (departed) return "departed";
      const s = await chain.current();
      state = s;
      if (await departedAtHead(s.epoch)) return "departed";
      if (notStanding) return "not-standing";
      for (const epoch of openSince.keys()) if (epoch < s.epoch) openSince.delete(epoch);
      for (const epoch of suspects.keys()) if (epoch < s.epoch) suspects.delete(epoch);
      for (const epoch of checked.keys()) if (epoch < s.epoch) checked.delete(epoch);
      for (const m of [failingSince, reopenTried, heldSince, confirmFailures])
        for (const e of m.keys()) if (e < s.epoch) m.delete(e);
      for (const epoch of confirmed) if (epoch < s.epoch) confirmed.delete(epoch);
      if (s.commitment === undefined) return commitFresh(s);
      if (holding(s)) {
        confirmHeld({ ...s, commitment: s.commitment });
        return "holding";
      }
      return acquire({ ...s, commitment: s.commitment });
    },
    chainState: () => state,
    acquired: () => !departed && state !== undefined && holding(state),
  };
}

/** Peers asked for the CSK in one tick at most (three rounds of the client's fan-out of three). */
export const PULL_CANDIDATES_PER_TICK = 9;

function shuffled<T>(xs: T[], random: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/** Longest wait between two attempts to confirm one epoch. */
export const CONFIRM_RETRY_MAX_MS = 60_000;

/**
 * How long to wait after the `failures`-th failed confirmation in a row: the first is retried on the
 * next tick (a bundler that blinked), then 2 s, 4 s … up to a minute, so a sponsor that refuses the
 * call, or a bundler that stays down, costs one attempt a minute instead of one a tick.
 */
export function confirmRetryDelayMs(failures: number): number {
  return failures <= 1 ? 0 : Math.min(1000 * 2 ** (failures - 1), CONFIRM_RETRY_MAX_MS);
}
