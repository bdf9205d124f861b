// Peers re-attest each other. For every peer of the certified view this node fetches a fresh
// attestation (a nonce of its own) when it first peers with it, then once per period, and judges it
// (verdict.ts). A peer whose evidence fails is refused: the attested follower (follower.ts) takes it out
// of the view, so it leaves the WireGuard peer set, the mesh directory (no heartbeat counts, no CSK is
// sealed to it, it ranks for no commitment) and the gateway hello.
//
// Bounded cost: one verification per peer per period (the first re-check of each peer lands at a
// phase of its own inside the period, so N peers that joined together are not re-checked together),
// at most `concurrency` at once, collateral cached by the source. A policy change (a new chain view)
// re-judges the evidence each peer last proved against the head's policy, without a new quote.
//
// What refuses a peer, and for how long:
//   evidence  its document, quote, binding or nonce is bad: refused until its on-chain record (keys)
//             changes; it is out of the mesh, so there is nothing to fetch from it anyway.
//   policy    the policy refuses what it runs now (compose withdrawn, device revoked, not standing):
//             re-judged each period from the chain; when the policy admits it again it is fetched anew.
// Not refusing: a peer that does not answer (not peered yet, restarting, rate-limited), or our own PCCS
// failing: it is retried with a backoff and reported `unreachable`, never cut for our network's sake.
//
// The CSK gate (csk/server.ts, wired by mesh/runtime.ts) asks `admits`: a peer gets a key only while
// this node holds a current passing verdict on it: one that passed (fetched and verified, or re-judged
// against the head's policy since), not refused since, and verified within `maxAgeMs` (three periods
// by default: a re-check that keeps failing to reach the peer lets the verdict expire). Before the
// first verdict, after a lifted refusal (until fresh evidence passes) and once expired: pending.
// A newcomer is peered before anyone judged it, so its first check runs as soon as the reconciler made
// it a WireGuard peer (`peered`; each reconcile pass `wake`s the loop; a connection opened earlier would
// lose its SYN) and, while it has never passed, an unreachable peer is retried
// every `firstRetryMs` (250 ms) for 10 s, then doubling, not from `retryMs`: its CSK waits on this
// verdict. Its CSK request answered "not attested yet", or its signed liveness arriving, shows it is up:
// `hurry` then checks it at once, and `onPassed` lets the CSK server send the key to that request
// (csk/server.ts `attested`).
//
// Sealed messages (messages/watcher.ts) ask `messagesRefused`: a refused member's messages are never
// delivered, and when a refusal ends (the policy admits it again, or its refused record is replaced or
// gone) the chain head at that moment becomes a fence: its messages mined at or below it were sent while
// this node refused it and stay undelivered, whenever they are read. Until that head is read the member
// counts as refused (fail closed).
import type { Logger } from "../log.ts";
import type { AttestationStatus, PeerAttestation } from "../model/attestation.ts";
import type { Member } from "../model/member.ts";
import type { Verdict, VerifiedEvidence } from "./verdict.ts";

export type { AttestationStatus, PeerAttestation };

export type CheckOutcome = "passed" | "failed" | "unreachable" | "policy-passed" | "policy-failed";

/** `Fetched`: what `fetch` hands `judge` (the peer's document, and whatever the caller read beside it). */
export interface ReattestationOptions<Fetched = unknown> {
  /** The peers to attest: active members of the certified view, this node excluded. */
  readonly peers: () => readonly Member[];
  /**
   * Fetches the peer's attestation for `nonce` over the mesh; throws when it cannot. `firstContact`: the
   * peer was never judged (a newcomer whose interface is coming up) and this many tries failed before,
   * so a connection that does not open at once may be given up early and retried, rather than waiting
   * out TCP's 1 s SYN retransmission; undefined once it was judged.
   */
  readonly fetch: (
    member: Member,
    nonce: Uint8Array,
    firstContact: { readonly failures: number } | undefined,
  ) => Promise<Fetched>;
  /** Judges a fetched document; throws (retryable) when it cannot judge (no collateral). */
  readonly judge: (
    member: Member,
    nonce: Uint8Array,
    document: Fetched,
  ) => Promise<{ readonly verdict: Verdict; readonly verified?: VerifiedEvidence }>;
  /** Re-judges evidence the peer proved before against the head's policy. */
  readonly rejudge: (member: Member, verified: VerifiedEvidence) => Promise<Verdict>;
  /** The chain head's number (a quorum-agreed block): where a lifted refusal's message fence stands. */
  readonly head: () => Promise<bigint>;
  readonly periodMs: number;
  /** First retry after an unreachable peer; doubles up to the period. Default 5 s. */
  readonly retryMs?: number;
  /**
   * Retry interval after an unreachable peer never judged yet, for FIRST_CONTACT_RETRIES tries; then it
   * doubles up to the period. Default 250 ms.
   */
  readonly firstRetryMs?: number;
  /** How long a passing verdict counts for the CSK gate after its verification. Default 3 periods. */
  readonly maxAgeMs?: number;
  /** Checks at once; default 2. */
  readonly concurrency?: number;
  readonly logger: Logger;
  readonly now?: () => number;
  readonly nonce?: () => Uint8Array;
  /** Each check's outcome and its duration (metrics). */
  readonly observe?: (outcome: CheckOutcome, ms: number) => void;
  /** A peer was refused or admitted again: the view must be recomputed. */
  readonly onRefusalChange?: () => void;
  /** A verification of `member` (these keys) passed: its CSK gate now admits it (csk/server.ts `attested`). */
  readonly onPassed?: (member: Member) => void;
  /**
   * Whether `member` is a WireGuard peer of this node yet. A peer never judged is first checked only once
   * it is: a new view reaches this scheduler before the reconciler has added the newcomer, and a
   * connection opened then loses its SYN (no peer to send it to; TCP resends it only after 1 s). Each
   * reconcile pass wakes the scheduler when it is done. Absent: every peer counts as peered.
   */
  readonly peered?: (member: Member) => boolean;
}

export interface Reattestation {
  /** True when `member` (these keys) is refused. */
  refused(member: Member): boolean;
  /**
   * The CSK gate: passed only while this node holds a current passing verdict on `member` (these keys);
   * pending before the first, after a lifted refusal and once expired; refused while refused.
   */
  admits(member: Member): "passed" | "pending" | "refused";
  /** Starts the checks that are due now (a peer was just peered) without waiting for the next tick. */
  wake(): void;
  /**
   * `member` (these keys) just showed it is up and reachable over the mesh (it asked for the CSK and was
   * told "not attested yet", or its signed liveness arrived): if it was never judged and no check of it
   * is running, check it now rather than at its retry time. At most once per `firstRetryMs` per peer;
   * nothing for a judged or refused one.
   */
  hurry(member: Member): void;
  /**
   * True when a sealed message of member `memberId` mined in block `blockNumber` must not be delivered:
   * a record of it is refused now, or a refusal of it ended and the block is at or below the head read
   * then (or that head is not read yet).
   */
  messagesRefused(memberId: bigint, blockNumber: bigint): boolean;
  /** Every tracked peer's state, by member id. */
  report(): readonly PeerAttestation[];
  get(memberId: bigint): PeerAttestation | undefined;
  /** Runs the checks that are due; resolves when they finished. */
  tick(): Promise<void>;
  /** The chain view changed: re-judge every peer's last evidence against the head's policy. */
  policyChanged(): void;
  /** Ticks every `tickMs` until `signal` aborts. */
  run(signal: AbortSignal, tickMs?: number): Promise<void>;
}

interface Entry {
  member: Member;
  state: PeerAttestation;
  verified?: VerifiedEvidence;
  cause?: "evidence" | "policy" | undefined;
  failures: number;
  rejudge: boolean;
  passedOnce: boolean;
  /** Wall ms of the verification behind the current passing verdict; undefined while none counts. */
  passedAt: number | undefined;
  /** Wall ms of the last `hurry` that moved its check forward. */
  hurriedAt?: number;
}

/** The run loop's shortest sleep: a check falling due sooner runs on the next turn. */
const MIN_PAUSE_MS = 10;

/** Retries of a never-judged peer at the first retry interval before its backoff doubles. */
export const FIRST_CONTACT_RETRIES = 40;

/** Cache key: a record whose keys changed is another peer to attest. */
const keyOf = (m: Member) => `${m.memberId}:${m.memberKey}:${m.wireguardKey}:${m.identityKey}`.toLowerCase();

/** A fixed phase in [0, 1) per member id, so peers' periodic re-checks spread over the period. */
export function phaseOf(memberId: bigint): number {
  return Number((memberId * 2654435761n + 97n) % 1009n) / 1009;
}

export function createReattestation<Fetched>(options: ReattestationOptions<Fetched>): Reattestation {
  const { logger, periodMs } = options;
  const now = options.now ?? Date.now;
  const retryMs = options.retryMs ?? 5_000;
  const firstRetryMs = options.firstRetryMs ?? 250;
  /** A never-judged peer is retried every firstRetryMs this many times (10 s) before the backoff doubles. */
  const firstRetries = FIRST_CONTACT_RETRIES;
  const maxAgeMs = options.maxAgeMs ?? 3 * periodMs;
  const concurrency = options.concurrency ?? 2;
  const nonce = options.nonce ?? (() => crypto.getRandomValues(new Uint8Array(32)));
  const entries = new Map<string, Entry>();
  const running = new Set<string>();
  /** Per member id whose refusal ended: the head then (messages at or below it stay refused), or
   * "unread" until `head` answered. */
  const fences = new Map<bigint, bigint | "unread">();
  const refusalEnded = (memberId: bigint) => fences.set(memberId, "unread");
  let fenceReadFailing = false;

  async function readFences(): Promise<void> {
    const unread = [...fences].filter(([, fence]) => fence === "unread").map(([id]) => id);
    if (unread.length === 0) return;
    let head: bigint;
    try {
      head = await options.head();
    } catch (err) {
      // Fail closed: the members stay refused for messages until the head is read (retried each tick,
      // logged once per outage).
      if (!fenceReadFailing) {
        logger.warn({ err }, "could not read the chain head for a lifted refusal's message fence; retrying");
      }
      fenceReadFailing = true;
      return;
    }
    fenceReadFailing = false;
    for (const id of unread) if (fences.get(id) === "unread") fences.set(id, head);
    logger.info(
      { peers: unread.map(String), fence: head.toString() },
      "refusal ended: messages mined at or below the fence stay undelivered",
    );
  }

  /** Patches an entry's state; an undefined field is removed. */
  const set = (entry: Entry, patch: { [K in keyof PeerAttestation]?: PeerAttestation[K] | undefined }) => {
    const next: Record<string, unknown> = { ...entry.state, ...patch };
    for (const k of Object.keys(next)) if (next[k] === undefined) delete next[k];
    entry.state = next as unknown as PeerAttestation;
  };
  const clearVerdictFields = {
    reason: undefined,
    detail: undefined,
  } as const;

  function apply(entry: Entry, verdict: Verdict, verified: VerifiedEvidence | undefined, fetched: boolean) {
    const wasRefused = entry.state.status === "failed";
    const t = now();
    const facts = {
      ...(verdict.kind === undefined ? {} : { kind: verdict.kind }),
      ...(verdict.composeHash === undefined ? {} : { composeHash: verdict.composeHash }),
      ...(verdict.deviceId === undefined ? {} : { deviceId: verdict.deviceId }),
    };
    if (verified !== undefined) entry.verified = verified;
    if (fetched) set(entry, { verifiedAt: t, verifications: entry.state.verifications + 1 });
    if (verdict.ok) {
      const first = !entry.passedOnce;
      // A re-judgement keeps the verification's age; it never makes a verdict out of none.
      if (fetched) entry.passedAt = t;
      entry.passedOnce = true;
      entry.cause = undefined;
      entry.failures = 0;
      set(entry, {
        ...clearVerdictFields,
        ...facts,
        status: "passed",
        detail: verdict.detail,
        ...(verdict.tcbStatus === undefined ? {} : { tcbStatus: verdict.tcbStatus }),
        // A re-judgement keeps the verification schedule; a verification sets the next one.
        nextAt: fetched
          ? t + (first ? Math.round(periodMs * (1 + phaseOf(entry.member.memberId))) : periodMs)
          : entry.state.nextAt,
      });
    } else {
      entry.passedAt = undefined;
      entry.cause = verdict.cause;
      set(entry, {
        ...facts,
        status: "failed",
        reason: verdict.reason,
        detail: verdict.detail,
        // Bad evidence: refused until the record changes. A policy refusal: re-judged each period.
        nextAt: verdict.cause === "evidence" ? Number.POSITIVE_INFINITY : t + periodMs,
      });
      if (!wasRefused) {
        logger.error(
          {
            peer: entry.member.memberId.toString(),
            reason: verdict.reason,
            detail: verdict.detail,
            kind: verdict.kind ?? null,
          },
          "peer attestation refused: it leaves the WireGuard peer set and gets no CSK",
        );
      }
    }
    if (wasRefused !== (entry.state.status === "failed")) {
      if (!wasRefused) options.onRefusalChange?.();
      else {
        logger.info(
          { peer: entry.member.memberId.toString() },
          "the policy admits the peer again; re-attesting it",
        );
        options.onRefusalChange?.();
      }
    }
  }

  async function check(entry: Entry): Promise<void> {
    const began = performance.now();
    const member = entry.member;
    const rejudge = entry.rejudge;
    entry.rejudge = false;
    if (entry.state.status === "failed") {
      // Policy refusal: the chain alone decides whether it may come back (it is out of the mesh).
      if (entry.cause !== "policy" || entry.verified === undefined) return;
      const verdict = await options.rejudge(member, entry.verified);
      options.observe?.(verdict.ok ? "policy-passed" : "policy-failed", performance.now() - began);
      if (verdict.ok) {
        // Admitted by the policy again: fetch fresh evidence before calling it passed.
        entry.passedAt = undefined;
        refusalEnded(member.memberId);
        entry.cause = undefined;
        set(entry, { status: "pending", ...clearVerdictFields, nextAt: now() });
        options.onRefusalChange?.();
      } else {
        apply(entry, verdict, undefined, false);
      }
      return;
    }
    if (rejudge && entry.verified !== undefined && entry.state.nextAt > now()) {
      const verdict = await options.rejudge(member, entry.verified);
      options.observe?.(verdict.ok ? "policy-passed" : "policy-failed", performance.now() - began);
      apply(entry, verdict, undefined, false);
      return;
    }
    const n = nonce();
    let judged: Awaited<ReturnType<ReattestationOptions<Fetched>["judge"]>>;
    let fetchedMs = 0;
    try {
      const document = await options.fetch(
        member,
        n,
        entry.passedOnce ? undefined : { failures: entry.failures },
      );
      fetchedMs = performance.now() - began;
      judged = await options.judge(member, n, document);
    } catch (err) {
      entry.failures += 1;
      // Never judged (a newcomer whose interface or server is coming up): its CSK waits on this
      // verdict, so retry every firstRetryMs for a while (its interface is up within moments), then
      // double; a peer judged before starts from retryMs. Either way the backoff stops at the period.
      const delay = Math.min(
        entry.passedOnce
          ? retryMs * 2 ** (entry.failures - 1)
          : firstRetryMs * 2 ** Math.max(0, entry.failures - firstRetries),
        periodMs,
      );
      const message = err instanceof Error ? (err.message.split("\n")[0] ?? "") : String(err);
      // Not refused: a peer that does not answer is not proven bad (it may not be peered yet).
      set(entry, { status: "unreachable", detail: `no attestation: ${message}`, nextAt: now() + delay });
      options.observe?.("unreachable", performance.now() - began);
      if (entry.failures === 1 || entry.failures % 10 === 0) {
        // A newcomer not reachable yet is the normal case at a join: worth a warning only once it lasts.
        const level = entry.passedOnce || entry.failures >= 10 ? "warn" : "info";
        logger[level](
          { peer: member.memberId.toString(), failures: entry.failures, retryInMs: delay, err: message },
          "could not fetch or judge a peer's attestation; retrying",
        );
      }
      return;
    }
    entry.failures = 0;
    const first = !entry.passedOnce;
    apply(entry, judged.verdict, judged.verified, true);
    const ms = performance.now() - began;
    options.observe?.(judged.verdict.ok ? "passed" : "failed", ms);
    if (judged.verdict.ok) {
      if (first)
        logger.info(
          {
            peer: member.memberId.toString(),
            fetchMs: Math.round(fetchedMs),
            judgeMs: Math.round(ms - fetchedMs),
          },
          "peer attestation passed for the first time: its CSK gate admits it",
        );
      options.onPassed?.(member);
    }
  }

  function sync(): void {
    const seen = new Set<string>();
    for (const member of options.peers()) {
      const key = keyOf(member);
      seen.add(key);
      const entry = entries.get(key);
      if (entry !== undefined) {
        entry.member = member;
        continue;
      }
      entries.set(key, {
        member,
        state: { memberId: member.memberId, status: "pending", nextAt: now(), verifications: 0 },
        failures: 0,
        rejudge: false,
        passedOnce: false,
        passedAt: undefined,
      });
    }
    for (const [key, entry] of entries) {
      if (seen.has(key) || running.has(key)) continue;
      // A refused record replaced (new keys) or gone: its messages keep their fence.
      if (entry.state.status === "failed") refusalEnded(entry.member.memberId);
      entries.delete(key);
    }
  }

  let looping = false;
  const kick = () => {
    if (!looping) return;
    // Fire and forget: the checks already running hold their slots, so a kick starts only what is due.
    void tick().catch((err: unknown) => logger.warn({ err }, "re-attestation wake-up failed"));
  };

  /** Never judged: not checked before it is a WireGuard peer (`peered`). */
  const checkable = (e: Entry) =>
    e.passedOnce || e.state.status === "failed" || options.peered?.(e.member) !== false;

  async function tick(): Promise<void> {
    sync();
    await readFences();
    const t = now();
    const due = [...entries]
      .filter(([key, e]) => !running.has(key) && (e.state.nextAt <= t || (e.rejudge && e.verified)))
      .filter(([, e]) => checkable(e))
      .sort(([, a], [, b]) => a.state.nextAt - b.state.nextAt);
    const slots = Math.max(0, concurrency - running.size);
    await Promise.all(
      due.slice(0, slots).map(async ([key, entry]) => {
        running.add(key);
        try {
          await check(entry);
        } catch (err) {
          // The chain did not answer a re-judgement: try again next tick's turn.
          set(entry, { nextAt: now() + retryMs });
          logger.warn({ err, peer: entry.member.memberId.toString() }, "peer re-judgement failed; retrying");
        } finally {
          running.delete(key);
        }
      }),
    );
  }

  return {
    refused(member) {
      return entries.get(keyOf(member))?.state.status === "failed";
    },
    admits(member) {
      const entry = entries.get(keyOf(member));
      if (entry === undefined) return "pending";
      if (entry.state.status === "failed") return "refused";
      if (entry.passedAt === undefined || now() - entry.passedAt > maxAgeMs) return "pending";
      return "passed";
    },
    wake: kick,
    hurry(member) {
      const key = keyOf(member);
      const entry = entries.get(key);
      if (entry === undefined || entry.passedOnce || entry.state.status === "failed") return;
      if (running.has(key)) return;
      const t = now();
      if (entry.hurriedAt !== undefined && t - entry.hurriedAt < firstRetryMs) return;
      entry.hurriedAt = t;
      if (entry.state.nextAt > t) set(entry, { nextAt: t });
      kick();
    },
    messagesRefused(memberId, blockNumber) {
      for (const e of entries.values()) {
        if (e.member.memberId === memberId && e.state.status === "failed") return true;
      }
      const fence = fences.get(memberId);
      return fence !== undefined && (fence === "unread" || blockNumber <= fence);
    },
    report: () =>
      [...entries.values()]
        .map((e) => e.state)
        .sort((a, b) => (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : 0)),
    get(memberId) {
      for (const e of entries.values()) if (e.member.memberId === memberId) return e.state;
      return undefined;
    },
    tick,
    policyChanged() {
      for (const e of entries.values()) if (e.verified !== undefined) e.rejudge = true;
      // The view changed (a newcomer may be in it): judge it now, not at the next tick.
      if (looping) setImmediate(kick);
    },
    async run(signal, tickMs = 1000) {
      looping = true;
      signal.addEventListener("abort", () => (looping = false), { once: true });
      /**
       * Until the next check falls due (a newcomer is retried every 250 ms), at most tickMs. A check that
       * fell due while the tick ran (a loaded machine, a slow fetch) is due now: it must not be skipped
       * over for a whole tick.
       */
      const pause = () => {
        const t = now();
        let next = Number.POSITIVE_INFINITY;
        for (const [key, e] of entries)
          if (!running.has(key) && checkable(e) && e.state.nextAt < next) next = e.state.nextAt;
        return Math.max(MIN_PAUSE_MS, Math.min(tickMs, next - t));
      };
      while (!signal.aborted) {
        await tick();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pause());
          signal.addEventListener(
            "abort",
            () => {
              clearTimeout(timer);
              resolve();
            },
            { once: true },
          );
        });
      }
    },
  };
}
