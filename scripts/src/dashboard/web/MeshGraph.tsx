// The mesh as a picture (cytoscape): active members as nodes, the links their own /healthz reports
// describe as edges, coloured by state and dashed when the traffic goes through the gateway. Updates are
// applied as a diff, and the layout (circle, or grid past 150 members) is linear, so 1,000 members do
// not freeze the page.

import cytoscape, { type Core, type ElementDefinition } from "cytoscape";
import { useEffect, useRef } from "preact/hooks";
import type { LinkView, MemberCard } from "../model.ts";

export const STATE_COLOURS = {
  handshaken: "#1a7f37",
  silent: "#9a6700",
  missing: "#cf222e",
  unknown: "#6e7781",
};

const NODE_COLOURS: Record<string, string> = { healthy: "#0969da", none: "#6e7781" };

function nodeColour(m: MemberCard): string {
  if (m.health === null) return NODE_COLOURS.none!;
  if (!m.health.reachable) return "#cf222e";
  return m.health.phase === "healthy" ? NODE_COLOURS.healthy! : "#9a6700";
}

const edgeId = (l: LinkView) => `${l.a}-${l.b}`;

export interface GraphHandle {
  nodes(): string[];
  edges(): Array<{ a: string; b: string; state: string; path: string }>;
}

declare global {
  interface Window {
    __dashboardGraph?: GraphHandle;
  }
}

export function MeshGraph(props: {
  readonly members: readonly MemberCard[];
  readonly links: readonly LinkView[];
  readonly selected: string | null;
  readonly onSelect: (memberId: string) => void;
  readonly onFirstLayout: () => void;
}) {
  const box = useRef<HTMLDivElement>(null);
  const cy = useRef<Core | null>(null);
  const onSelect = useRef(props.onSelect);
  onSelect.current = props.onSelect;
  const laidOut = useRef(false);

  useEffect(() => {
    const instance = cytoscape({
      container: box.current,
      elements: [],
      minZoom: 0.05,
      maxZoom: 4,
      hideEdgesOnViewport: true,
      textureOnViewport: true,
      boxSelectionEnabled: false,
      style: [
        {
          selector: "node",
          style: {
            "background-color": "data(colour)",
            label: "data(label)",
            color: "#1f2328",
            "font-size": 11,
            "min-zoomed-font-size": 8,
            "text-valign": "bottom",
            "text-margin-y": 3,
            width: 18,
            height: 18,
          },
        },
        { selector: "node:selected", style: { "border-width": 3, "border-color": "#1f2328" } },
        {
          selector: "edge",
          style: { width: 2, "line-color": "data(colour)", "curve-style": "haystack", opacity: 0.85 },
        },
        { selector: 'edge[path = "gateway"]', style: { "line-style": "dashed", "curve-style": "straight" } },
        {
          selector: 'edge[state = "missing"]',
          style: { "line-style": "dotted", width: 3, "curve-style": "straight" },
        },
      ],
    });
    instance.on("tap", "node", (event) => onSelect.current(event.target.id()));
    cy.current = instance;
    window.__dashboardGraph = {
      nodes: () => instance.nodes().map((n) => n.id()),
      edges: () =>
        instance
          .edges()
          .map((e) => ({ a: e.data("a"), b: e.data("b"), state: e.data("state"), path: e.data("path") })),
    };
    return () => instance.destroy();
  }, []);

  useEffect(() => {
    const instance = cy.current;
    if (instance === null) return;
    const active = props.members.filter((m) => m.status === "active");
    const wantNodes = new Map(active.map((m) => [m.memberId, m]));
    const wantEdges = new Map(props.links.map((l) => [edgeId(l), l]));
    let structural = false;
    instance.batch(() => {
      instance.nodes().forEach((n) => {
        if (!wantNodes.has(n.id())) {
          n.remove();
          structural = true;
        }
      });
      instance.edges().forEach((e) => {
        if (!wantEdges.has(e.id())) e.remove();
      });
      const add: ElementDefinition[] = [];
      for (const [id, m] of wantNodes) {
        // Past 150 members labels would overlap: the table and the card name them instead.
        const label = wantNodes.size <= 150 ? `#${id} ${m.meshIp}` : "";
        const data = { id, label, colour: nodeColour(m) };
        const existing = instance.getElementById(id);
        if (existing.empty()) {
          add.push({ group: "nodes", data });
          structural = true;
        } else existing.data(data);
      }
      for (const [id, l] of wantEdges) {
        const data = {
          id,
          source: l.a,
          target: l.b,
          a: l.a,
          b: l.b,
          state: l.state,
          path: l.path,
          colour: STATE_COLOURS[l.state],
        };
        const existing = instance.getElementById(id);
        if (existing.empty()) add.push({ group: "edges", data });
        else existing.data(data);
      }
      instance.add(add);
    });
    if (structural || !laidOut.current) {
      const n = wantNodes.size;
      const layout = instance.layout(
        n <= 150
          ? { name: "circle", animate: false, padding: 30 }
          : { name: "grid", animate: false, padding: 20, avoidOverlap: false },
      );
      layout.one("layoutstop", () => {
        if (!laidOut.current) {
          laidOut.current = true;
          props.onFirstLayout();
        }
      });
      layout.run();
    }
  }, [props.members, props.links]);

  useEffect(() => {
    const instance = cy.current;
    if (instance === null) return;
    instance.nodes(":selected").unselect();
    if (props.selected !== null) instance.getElementById(props.selected).select();
  }, [props.selected]);

  const active = props.members.filter((m) => m.status === "active").length;
  return (
    <div
      class="graph"
      ref={box}
      role="img"
      aria-label={`Mesh of ${active} active members and ${props.links.length} reported links. Use the member table to pick a member with the keyboard.`}
      data-testid="mesh-graph"
    />
  );
}
