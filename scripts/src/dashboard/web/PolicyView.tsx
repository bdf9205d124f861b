// The policy now, the drift the owner must act on, and the audit trail rebuilt from events, with filters.

import { useMemo, useState } from "preact/hooks";
import type { DashboardView, PolicyEventView } from "../model.ts";
import { when } from "./format.ts";
import { PlainTable } from "./PlainTable.tsx";
import { type Column, VirtualTable } from "./VirtualTable.tsx";

const COLUMNS: readonly Column<PolicyEventView>[] = [
  { title: "block", width: "5rem", cell: (e) => e.block },
  { title: "time", width: "13.5rem", cell: (e) => when(e.at) },
  { title: "event", width: "12.5rem", cell: (e) => e.name },
  {
    title: "arguments",
    width: "auto",
    cell: (e) => (
      <span class="mono" title={JSON.stringify(e.args)}>
        {Object.entries(e.args)
          .map(([k, v]) => `${k}=${String(v)}`)
          .join(" ")}
      </span>
    ),
  },
];

function List(props: { readonly title: string; readonly items: readonly string[] }) {
  return (
    <div>
      <h3>
        {props.title} ({props.items.length})
      </h3>
      {props.items.length === 0 ? (
        <p>none</p>
      ) : (
        <ul class="mono">
          {props.items.map((i) => (
            <li key={i}>{i}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function PolicyView(props: { readonly view: DashboardView }) {
  const { policy } = props.view;
  const [name, setName] = useState("");
  const [text, setText] = useState("");
  const names = useMemo(() => [...new Set(policy.events.map((e) => e.name))].sort(), [policy.events]);
  const rows = useMemo(() => {
    const needle = text.trim().toLowerCase();
    return policy.events.filter(
      (e) =>
        (name === "" || e.name === name) &&
        (needle === "" || JSON.stringify(e.args).toLowerCase().includes(needle) || e.block === needle),
    );
  }, [policy.events, name, text]);
  const now = policy.now;
  return (
    <section aria-label="policy" class="policy">
      <h2>Drift to act on</h2>
      {policy.drift.length === 0 ? (
        <p data-testid="drift">
          No active member is outside today's policy (app id, compose hash, device, admitting KMS root).
        </p>
      ) : (
        <PlainTable titles={["member", "what", "command"]} testId="drift">
          {policy.drift.map((d) => (
            <tr key={`${d.kind}-${d.memberId}`}>
              <td>#{d.memberId}</td>
              <td>{d.detail}</td>
              <td>
                <code>{d.command}</code>
              </td>
            </tr>
          ))}
        </PlainTable>
      )}
      {policy.drift.length === 0 ? null : (
        <p class="hint">
          <code>attestmesh evict --stale</code> evicts every member the chain judges no longer standing at
          once.
        </p>
      )}{" "}
      <h2>Policy now</h2>
      <div class="lists">
        <List title="compose hashes" items={now.composeHashes} />
        <List title="KMS roots" items={now.kmsRoots} />
        <List title="app ids" items={now.appIds} />
        <List title={`devices${now.allowAnyDevice ? " (any device allowed)" : ""}`} items={now.deviceIds} />
        <List
          title="revoked app ids"
          items={now.appIdRevocations.map(
            (r) => `${r.appId} at ${when(new Date(Number(r.revokedAt) * 1000).toISOString())}`,
          )}
        />
        <List
          title="revoked devices"
          items={now.deviceRevocations.map(
            (r) => `${r.deviceId} at ${when(new Date(Number(r.revokedAt) * 1000).toISOString())}`,
          )}
        />
      </div>
      <h2>History</h2>
      <div class="filters">
        <label>
          event{" "}
          <select
            value={name}
            onChange={(e) => setName((e.target as HTMLSelectElement).value)}
            data-testid="history-event"
          >
            <option value="">all</option>
            {names.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <label>
          contains{" "}
          <input
            type="search"
            value={text}
            onInput={(e) => setText((e.target as HTMLInputElement).value)}
            placeholder="address, hash or block"
            data-testid="history-search"
          />
        </label>
        <span aria-live="polite">
          {rows.length} of {policy.events.length} events
        </span>
      </div>
      <VirtualTable
        label="policy history"
        testId="policy-history"
        rows={rows}
        columns={COLUMNS}
        rowKey={(e) => `${e.block}-${e.logIndex}`}
        height={320}
      />
    </section>
  );
}
