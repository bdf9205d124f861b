// Sponsorship spend per day and per member (chart.js), with every member in a table below.

import { BarController, BarElement, CategoryScale, Chart, LinearScale, Tooltip } from "chart.js";
import { useEffect, useRef } from "preact/hooks";
import type { DashboardView, SpendView as Spend } from "../model.ts";
import { ethNumber, formatEth, short } from "./format.ts";
import { type Column, VirtualTable } from "./VirtualTable.tsx";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Tooltip);

type Row = Spend["perMember"][number];

const COLUMNS: readonly Column<Row>[] = [
  { title: "member", width: "6.5rem", cell: (r) => (r.memberId === null ? "?" : `#${r.memberId}`) },
  { title: "account", width: "auto", cell: (r) => <span class="mono">{r.account}</span> },
  { title: "spent", width: "10rem", cell: (r) => formatEth(r.wei) },
];

function BarChart(props: {
  readonly label: string;
  readonly labels: readonly string[];
  readonly values: readonly number[];
  readonly horizontal?: boolean;
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart<"bar"> | null>(null);
  useEffect(() => {
    chart.current = new Chart(canvas.current!, {
      type: "bar",
      data: { labels: [], datasets: [{ label: "ETH", data: [], backgroundColor: "#0969da" }] },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: props.horizontal ? "y" : "x",
        plugins: { tooltip: { enabled: true } },
      },
    });
    return () => chart.current?.destroy();
  }, []);
  useEffect(() => {
    const c = chart.current;
    if (c === null) return;
    c.data.labels = [...props.labels];
    c.data.datasets[0]!.data = [...props.values];
    c.update();
  }, [props.labels, props.values]);
  return (
    <figure>
      <figcaption>{props.label}</figcaption>
      <div class="chart">
        <canvas ref={canvas} role="img" aria-label={`${props.label}: ${props.labels.length} bars`} />
      </div>
    </figure>
  );
}

export function SpendView(props: { readonly view: DashboardView }) {
  const spend = props.view.spend;
  if (spend.available === false) {
    return (
      <section aria-label="sponsorship" class="spend">
        <p class="na">Sponsorship spend: not available ({spend.reason}).</p>
      </section>
    );
  }
  const top = spend.perMember.slice(0, 25);
  return (
    <section aria-label="sponsorship" class="spend" data-testid="spend">
      <p>
        Paymaster <span class="mono">{spend.paymaster}</span> has paid {formatEth(spend.totalWei)} for{" "}
        {spend.perMember.length} accounts.
      </p>
      <div class="charts">
        <BarChart
          label="spend per day (ETH, UTC days)"
          labels={spend.perDay.map((d) => d.day)}
          values={spend.perDay.map((d) => ethNumber(d.wei))}
        />
        <BarChart
          label={`spend per member (ETH, top ${top.length})`}
          labels={top.map((r) => (r.memberId === null ? short(r.account, 4) : `#${r.memberId}`))}
          values={top.map((r) => ethNumber(r.wei))}
          horizontal
        />
      </div>
      <VirtualTable
        label="spend per member"
        rows={spend.perMember}
        columns={COLUMNS}
        rowKey={(r) => r.account}
        height={240}
      />
    </section>
  );
}
