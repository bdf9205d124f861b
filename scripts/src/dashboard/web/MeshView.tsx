// The mesh tab: the picture, the legend, the member table (the keyboard route to every member) and the
// selected member's card.

import { useMemo } from "preact/hooks";
import type { DashboardView, MemberCard } from "../model.ts";
import { short } from "./format.ts";
import { MemberCardPanel } from "./MemberCardPanel.tsx";
import { MeshGraph, STATE_COLOURS } from "./MeshGraph.tsx";
import { type Column, VirtualTable } from "./VirtualTable.tsx";

const COLUMNS: readonly Column<MemberCard>[] = [
  { title: "id", width: "4rem", cell: (m) => m.memberId },
  { title: "status", width: "5rem", cell: (m) => m.status },
  { title: "mesh IP", width: "7.5rem", cell: (m) => m.meshIp },
  { title: "app id", width: "auto", cell: (m) => <span class="mono">{short(m.appId)}</span> },
  {
    title: "health",
    width: "7rem",
    cell: (m) => (m.health === null ? "no URL" : m.health.reachable ? m.health.phase : "unreachable"),
  },
  { title: "CSK", width: "3.5rem", cell: (m) => m.health?.cskEpoch ?? "—" },
];

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
