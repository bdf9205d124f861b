// The mesh tab: the picture, the legend, the member table (the keyboard route to every member) and the
// selected member's card.

import { useMemo } from "preact/hooks";
import type { DashboardView, IndexerView, MemberCard } from "../model.ts";
import { short, when } from "./format.ts";
import { MemberCardPanel } from "./MemberCardPanel.tsx";
import { MeshGraph, STATE_COLOURS } from "./MeshGraph.tsx";
import { PlainTable } from "./PlainTable.tsx";
import { type Column, VirtualTable } from "./VirtualTable.tsx";

const COLUMNS: readonly Column<MemberCard>[] = [
  { title: "id", width: "4rem", cell: (m) => m.memberId },
  { title: "status", width: "5rem", cell: (m) => m.status },
  { title: "mesh IP", width: "7.5rem", cell: (m) => m.meshIp },
  {
    title: "standing",
    width: "6rem",
    // The card names the reason; the table only says whether the owner has something to act on.
    cell: (m) =>
      m.status !== "active" ? (
        "—"
      ) : m.standing === "good" || m.standing === "unrecorded" ? (
        m.standing
      ) : (
        <strong title={m.standing}>stale</strong>
      ),
  },
  {
    title: "attested",
    width: "6.5rem",
    cell: (m) => (m.status !== "active" ? "—" : m.attestation.state),
  },
  {
    title: "health",
    width: "7rem",
    cell: (m) => (m.health === null ? "no URL" : m.health.reachable ? m.health.phase : "unreachable"),
  },
  { title: "CSK", width: "3.5rem", cell: (m) => m.health?.cskEpoch ?? "—" },
];

function indexerState(i: IndexerView): string {
  if (!i.reachable) return "not answering";
  if (i.keyMatches === false) return "another key answers there";
  if (i.following === null) return "does not serve this cluster";
  return i.following ? "following" : "not following";
}

/** The registered indexers and what each says of itself (shown, never trusted: it only wakes reads). */
export function IndexersPanel(props: { readonly view: DashboardView }) {
  const { indexers, sources } = props.view;
  return (
    <div class="indexers" data-testid="indexers">
      <h2>Indexers ({indexers.length} registered)</h2>
      {indexers.length === 0 ? (
        <p>No indexer is registered: the dashboard, like the sidecars, polls the chain.</p>
      ) : (
        <PlainTable titles={["endpoint", "signing key", "says", "head", "envelopes", "subscribers"]}>
          {indexers.map((i) => (
            <tr key={i.signingKey} data-key={i.signingKey}>
              <td class="mono">{i.endpoint}</td>
              <td class="mono">{short(i.signingKey)}</td>
              <td>{indexerState(i)}</td>
              <td>{i.head ?? "—"}</td>
              <td>{i.lastSeq ?? "—"}</td>
              <td>{i.subscribers ?? "—"}</td>
            </tr>
          ))}
        </PlainTable>
      )}
      <p class="hint">
        Updates: {sources.updates}. Checked {when(indexers[0]?.checkedAt ?? null)}.
      </p>
    </div>
  );
}

export function MeshView(props: {
  readonly view: DashboardView;
  readonly selected: string | null;
  readonly onSelect: (id: string | null) => void;
  readonly onFirstLayout: () => void;
}) {
  const { view } = props;
  const s = view.linkSummary;
  const selected = useMemo(
    () => view.members.find((m) => m.memberId === props.selected) ?? null,
    [view, props.selected],
  );
  const active = view.members.filter((m) => m.status === "active").length;
  return (
    <section class="mesh" aria-label="mesh">
      <div class="mesh-left">
        <MeshGraph
          members={view.members}
          links={view.links}
          selected={props.selected}
          onSelect={props.onSelect}
          onFirstLayout={props.onFirstLayout}
        />
        <p class="legend" data-testid="link-summary">
          {active} active members, {s.pairs} pairs:{" "}
          <span style={{ color: STATE_COLOURS.handshaken }}>■ handshaken {s.handshaken}</span>{" "}
          <span style={{ color: STATE_COLOURS.silent }}>■ configured, silent {s.silent}</span>{" "}
          <span style={{ color: STATE_COLOURS.missing }}>■ missing {s.missing}</span>{" "}
          <span style={{ color: STATE_COLOURS.unknown }}>■ unknown {s.unknown}</span> · solid: direct UDP,
          dashed: gateway
          {s.handshakenIncluded ? "" : " · too many healthy links to draw: only the problem links are shown"}
        </p>
        <IndexersPanel view={view} />
      </div>
      <div class="mesh-right">
        {selected ? (
          <MemberCardPanel member={selected} view={view} onClose={() => props.onSelect(null)} />
        ) : (
          <p class="hint">Select a member in the picture or the table to open its card.</p>
        )}
        <VirtualTable
          label="members"
          testId="member-table"
          rows={view.members}
          columns={COLUMNS}
          rowKey={(m) => m.memberId}
          selected={props.selected}
          onActivate={(m) => props.onSelect(m.memberId)}
          height={selected ? 220 : 460}
        />
      </div>
    </section>
  );
}
