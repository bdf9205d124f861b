// The live view: reads the chain and the members' health on an interval, rebuilds the view, and tells
// subscribers when it changed. A failed read keeps the last view and reports the error beside it.

import { buildView, type ChainFacts, type HealthPoll } from "./buildView.ts";
import { type HealthTargets, pollHealth } from "./health.ts";
import type { DashboardView } from "./model.ts";

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

export interface LiveOptions {
  readonly readChain: () => Promise<ChainFacts>;
  readonly healthTargets: HealthTargets;
  readonly intervalMs?: number;
  readonly now?: () => number;
}

/** A view's content without its timestamp, to tell a real change from a re-read. */
function fingerprint(view: DashboardView): string {
  return JSON.stringify({
    ...view,
    generatedAt: "",
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

export function createLiveSource(options: LiveOptions): DashboardSource {
  const listeners = new Set<(state: LiveState) => void>();
  const now = options.now ?? Date.now;
  let state: LiveState = { view: undefined, error: undefined };
  let lastPrint = "";

  const publish = (next: LiveState) => {
    state = next;
    for (const listener of listeners) listener(state);
  };

  async function tick(): Promise<void> {
    try {
      const [facts, polls] = await Promise.all([
        options.readChain(),
        options
          .healthTargets()
          .then((t) => pollHealth(t))
          .catch(() => new Map<string, HealthPoll>()),
      ]);
      const view = buildView(facts, polls, now());
      const print = fingerprint(view);
      if (print !== lastPrint || state.error !== undefined) {
        lastPrint = print;
        publish({ view, error: undefined });
      }
    } catch (error) {
      const message = redactUrls(error instanceof Error ? error.message.split("\n")[0]! : String(error));
      if (message !== state.error) publish({ view: state.view, error: message });
    }
  }

  return {
    current: () => state,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async start(signal) {
      await tick();
      const interval = options.intervalMs ?? 1_000;
      void (async () => {
        while (!signal.aborted) {
          await new Promise((resolve) => setTimeout(resolve, interval));
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
