// The live view: reads the chain and the members' health, rebuilds the view, and tells subscribers when
// it changed. A failed read keeps the last view and reports the error beside it.
//
// When to read: every `intervalMs` (1 s) while no registered indexer is following the chain. While one is,
// its public /healthz is polled every `indexerPollMs` (one small request, not a dozen RPC reads) and a new
// envelope sequence number there wakes a read at once; the chain is then read on its own only every
// `followIntervalMs`. The indexer only ever wakes a read (what it says is never shown as chain state),
// and chain polling runs underneath all along, so an indexer that lies or dies costs latency, nothing else.
//
// Members' attestations are checked in the background, each at most every `attestEveryMs` (a quote costs
// the member's guest agent real work, and sidecars rate-limit it), a few at a time.

import {
  buildView,
  type ChainFacts,
  type HealthPoll,
  type IndexerFact,
  type IndexerPoll,
} from "./buildView.ts";
import { type HealthTargets, pollHealth } from "./health.ts";
import type { AttestationStatus, DashboardView } from "./model.ts";

export interface LiveState {
  readonly view: DashboardView | undefined;
  readonly error: string | undefined;
}

export interface DashboardSource {
  current(): LiveState;
  /** Calls `listener` on every change (a new view or a new error); returns the unsubscribe. */
  subscribe(listener: (state: LiveState) => void): () => void;
  /** Reads once now (the first view), then every `intervalMs` until `signal` aborts. */
  start(signal: AbortSignal): Promise<void>;
}

/** Checks one member's attestation at its health endpoint (attestation.ts). */
export type AttestMember = (memberId: string, healthUrl: string) => Promise<AttestationStatus>;

/** Polls the registered indexers' /healthz, keyed by lowercase signing key (indexers.ts). */
export type PollIndexers = (records: readonly IndexerFact[]) => Promise<Map<string, IndexerPoll>>;

export interface LiveOptions {
  readonly readChain: () => Promise<ChainFacts>;
  readonly healthTargets: HealthTargets;
  /** Chain polling while no indexer follows; default 1 s. */
  readonly intervalMs?: number;
  /** Chain polling while an indexer follows (its advances wake reads); default 5 s. */
  readonly followIntervalMs?: number;
  readonly pollIndexers?: PollIndexers;
  /** default 500 ms */
  readonly indexerPollMs?: number;
  readonly attest?: AttestMember;
  /** default 60 s */
  readonly attestEveryMs?: number;
  /** Attestation checks in flight at once; default 4. */
  readonly attestConcurrency?: number;
  readonly now?: () => number;
}

/** A view's content without its timestamp, to tell a real change from a re-read. */
function fingerprint(view: DashboardView): string {
  return JSON.stringify({
    ...view,
    generatedAt: "",
    indexers: view.indexers.map((i) => ({ ...i, checkedAt: "" })),
    members: view.members.map((m) => ({ ...m, health: m.health ? { ...m.health, checkedAt: "" } : null })),
  });
}

/** RPC URLs often carry an API key in the path or query: the page only ever sees their origin. */
export function redactUrls(message: string): string {
  return message.replace(/https?:\/\/[^\s"'<>]+/g, (url) => {
    try {
      const parsed = new URL(url);
      return parsed.pathname === "/" && parsed.search === "" ? parsed.origin : `${parsed.origin}/…`;
    } catch {
      return "(url)";
    }
  });
}

const sleep = (ms: number, wake: Promise<void>) =>
  Promise.race([new Promise<void>((resolve) => setTimeout(resolve, ms).unref?.()), wake]);

export function createLiveSource(options: LiveOptions): DashboardSource {
  const listeners = new Set<(state: LiveState) => void>();
  const now = options.now ?? Date.now;
  const attestEveryMs = options.attestEveryMs ?? 60_000;
  const attestConcurrency = options.attestConcurrency ?? 4;
  let state: LiveState = { view: undefined, error: undefined };
  let lastPrint = "";
  let last: { facts: ChainFacts; polls: Map<string, HealthPoll> } | undefined;
  let targets: ReadonlyMap<string, string> = new Map();
  const attestation = new Map<string, AttestationStatus>();
  const attesting = new Set<string>();
  let indexerHealth = new Map<string, IndexerPoll>();
  const lastSeqs = new Map<string, string>();
  let updates = "";
  let wake: () => void = () => {};
  let woken = new Promise<void>((resolve) => {
    wake = resolve;
  });

  const publish = (next: LiveState) => {
    state = next;
    for (const listener of listeners) listener(state);
  };

  /** Rebuilds from the last read (after an attestation or indexer poll changed something). */
  function rebuild(): void {
    if (last === undefined) return;
    const view = buildView(last.facts, last.polls, now(), { attestation, indexerHealth, updates });
    const print = fingerprint(view);
    if (print !== lastPrint) {
      lastPrint = print;
      publish({ view, error: state.error });
    }
  }

  function attestDue(): void {
    const attest = options.attest;
    if (attest === undefined || last === undefined) return;
    const t = now();
    for (const m of last.facts.members) {
      if (attesting.size >= attestConcurrency) return;
      if (m.status !== "active" || attesting.has(m.memberId)) continue;
      const url = targets.get(m.appId.toLowerCase());
      if (url === undefined) continue;
      const previous = attestation.get(m.memberId);
      const at = previous?.checkedAt ? Date.parse(previous.checkedAt) : Number.NEGATIVE_INFINITY;
      if (t - at < attestEveryMs) continue;
      attesting.add(m.memberId);
      void attest(m.memberId, url)
        .then((status) => {
          attestation.set(m.memberId, {
            ...status,
            lastVerifiedAt:
              status.state === "verified" ? status.checkedAt : (previous?.lastVerifiedAt ?? null),
          });
        })
        .catch(() => {})
        .finally(() => {
          attesting.delete(m.memberId);
          rebuild();
        });
    }
  }

  async function tick(): Promise<void> {
    try {
      const [facts, polls] = await Promise.all([
        options.readChain(),
        options
          .healthTargets()
          .then((t) => {
            targets = t;
            return pollHealth(t);
          })
          .catch(() => new Map<string, HealthPoll>()),
      ]);
      last = { facts, polls };
      const view = buildView(facts, polls, now(), { attestation, indexerHealth, updates });
      const print = fingerprint(view);
      if (print !== lastPrint || state.error !== undefined) {
        lastPrint = print;
        publish({ view, error: undefined });
      }
      attestDue();
    } catch (error) {
      const message = redactUrls(error instanceof Error ? error.message.split("\n")[0]! : String(error));
      if (message !== state.error) publish({ view: state.view, error: message });
    }
  }

  /** Whether a registered indexer with the registered key says it follows this cluster. */
  const following = () =>
    (state.view?.indexers ?? []).some((i) => i.keyMatches === true && i.following === true);

  async function watchIndexers(signal: AbortSignal): Promise<void> {
    const poll = options.pollIndexers;
    if (poll === undefined) return;
    const every = options.indexerPollMs ?? 500;
    while (!signal.aborted) {
      const records = last?.facts.indexers ?? [];
      if (records.length > 0) {
        try {
          indexerHealth = await poll(records);
        } catch {
          indexerHealth = new Map();
        }
        const cluster = last?.facts.cluster.toLowerCase();
        let advanced: string | undefined;
        for (const r of records) {
          const key = r.signingKey.toLowerCase();
          const body = indexerHealth.get(key)?.body;
          if (body?.signingKey?.toLowerCase() !== key) continue;
          const seq = body.clusters?.find((c) => c.cluster?.toLowerCase() === cluster)?.lastSeq;
          if (seq === undefined) continue;
          const before = lastSeqs.get(key);
          lastSeqs.set(key, seq);
          if (before !== undefined && before !== seq) advanced = `${r.endpoint} (envelope ${seq})`;
        }
        if (advanced !== undefined) {
          updates = `woken by indexer ${advanced}; chain polled every ${(options.followIntervalMs ?? 5_000) / 1000} s underneath`;
          wake();
        } else rebuild();
      }
      await sleep(every, new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve())));
    }
  }

  return {
    current: () => state,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async start(signal) {
      updates = `polling the chain every ${(options.intervalMs ?? 1_000) / 1000} s (no indexer registered)`;
      await tick();
      void watchIndexers(signal);
      void (async () => {
        while (!signal.aborted) {
          const follow = following();
          const interval = follow ? (options.followIntervalMs ?? 5_000) : (options.intervalMs ?? 1_000);
          if (follow && !updates.startsWith("woken")) {
            updates = `following the registered indexers; chain polled every ${interval / 1000} s underneath`;
          } else if (!follow) {
            updates =
              (last?.facts.indexers?.length ?? 0) === 0
                ? `polling the chain every ${interval / 1000} s (no indexer registered)`
                : `polling the chain every ${interval / 1000} s (no registered indexer is following)`;
          }
          // How the view is kept current is part of it: a change of mode is news.
          rebuild();
          await sleep(interval, woken);
          woken = new Promise<void>((resolve) => {
            wake = resolve;
          });
          if (!signal.aborted) await tick();
        }
      })();
    },
  };
}

/** A source that always serves one view (tests, and the synthetic clusters of the measurements). */
export function staticSource(view: DashboardView): DashboardSource & { set(view: DashboardView): void } {
  const listeners = new Set<(state: LiveState) => void>();
  let state: LiveState = { view, error: undefined };
  return {
    current: () => state,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async start() {},
    set(next) {
      state = { view: next, error: undefined };
      for (const listener of listeners) listener(state);
    },
  };
}
