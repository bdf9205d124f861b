// The dashboard page: one live view from the server (server-sent events, with GET /api/view first so the
// first render does not wait for the stream), four tabs, nothing that writes.

import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { DashboardView } from "../model.ts";
import { CskView } from "./CskView.tsx";
import { when } from "./format.ts";
import { MeshView } from "./MeshView.tsx";
import { PolicyView } from "./PolicyView.tsx";
import { SpendView } from "./SpendView.tsx";
import "./style.css";

interface LiveState {
  readonly view: DashboardView | null;
  readonly error: string | null;
}

const TABS = [
  ["mesh", "Mesh"],
  ["csk", "CSK epochs"],
  ["policy", "Policy"],
  ["spend", "Sponsorship"],
] as const;
type Tab = (typeof TABS)[number][0];

function tabFromHash(): Tab {
  const hash = location.hash.slice(1);
  return (TABS.find(([id]) => id === hash)?.[0] ?? "mesh") as Tab;
}

function App() {
  const [state, setState] = useState<LiveState>({ view: null, error: null });
  const [connected, setConnected] = useState(false);
  const [tab, setTab] = useState<Tab>(tabFromHash());
  const [selected, setSelected] = useState<string | null>(null);
  const tabs = useRef<Array<HTMLButtonElement | null>>([]);

  useEffect(() => {
    let stream: EventSource | null = null;
    fetch("/api/view")
      .then((r) => r.json() as Promise<LiveState>)
      .then((s) => setState((old) => (old.view === null ? s : old)))
      .catch(() => {});
    stream = new EventSource("/api/events");
    stream.addEventListener("view", (e) =>
      setState(JSON.parse((e as MessageEvent<string>).data) as LiveState),
    );
    stream.onopen = () => setConnected(true);
    stream.onerror = () => setConnected(false);
    const onHash = () => setTab(tabFromHash());
    addEventListener("hashchange", onHash);
    return () => {
      stream?.close();
      removeEventListener("hashchange", onHash);
    };
  }, []);

  const firstRender = () => {
    if (document.body.dataset.ready === "1") return;
    performance.mark("dashboard-first-render");
    document.body.dataset.ready = "1";
  };
  useEffect(() => {
    // Views without the picture are ready when their data is on screen.
    if (state.view !== null && tab !== "mesh") firstRender();
  }, [state.view, tab]);

  const choose = (next: Tab) => {
    history.replaceState(null, "", `#${next}`);
    setTab(next);
  };
  const view = state.view;
  return (
    <>
      <header class="top">
        <h1>attestmesh</h1>
        {view ? (
          <p class="meta" data-testid="chain-meta">
            cluster <span class="mono">{view.chain.cluster}</span> on chain {view.chain.chainId} (
            {view.chain.network}) · block {view.chain.block} · owner{" "}
            <span class="mono">{view.chain.owner}</span> · updated {when(view.generatedAt)} ·{" "}
            {connected ? "live" : "reconnecting…"} · read-only
          </p>
        ) : null}
      </header>
      {state.error ? (
        <p class="error" role="alert">
          Last read failed: {state.error} (showing the previous view)
        </p>
      ) : null}
      <div class="tabs" role="tablist" aria-label="views">
        {TABS.map(([id, label], i) => (
          <button
            type="button"
            role="tab"
            key={id}
            id={`tab-${id}`}
            ref={(el) => {
              tabs.current[i] = el;
            }}
            aria-selected={tab === id}
            aria-controls="panel"
            tabIndex={tab === id ? 0 : -1}
            onClick={() => choose(id)}
            onKeyDown={(e) => {
              const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
              if (step === 0) return;
              const next = (i + step + TABS.length) % TABS.length;
              choose(TABS[next]![0]);
              tabs.current[next]?.focus();
            }}
          >
            {label}
          </button>
        ))}
      </div>
      <main>
        <div id="panel" role="tabpanel" aria-labelledby={`tab-${tab}`}>
          {view === null ? (
            <p class="loading">
              {state.error ? `Cannot read the cluster: ${state.error}` : "Reading the cluster…"}
            </p>
          ) : tab === "mesh" ? (
            <MeshView view={view} selected={selected} onSelect={setSelected} onFirstLayout={firstRender} />
          ) : tab === "csk" ? (
            <CskView view={view} />
          ) : tab === "policy" ? (
            <PolicyView view={view} />
          ) : (
            <SpendView view={view} />
          )}
        </div>
      </main>
      {view ? (
        <footer>
          health endpoints answering {view.sources.healthReachable}/{view.sources.healthEndpoints} · chain:{" "}
          {view.sources.reads} · updates: {view.sources.updates}
        </footer>
      ) : null}
    </>
  );
}

const root = document.getElementById("app")!;
root.textContent = "";
render(<App />, root);
