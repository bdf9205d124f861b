// Dashboard figures on synthetic clusters (no chain, no root; needs Debian's chromium):
//   first render  ms from navigation start to the page's first full render (the picture laid out, the
//                 tables filled: the `dashboard-first-render` performance mark), in a fresh tab of a
//                 warm browser, median and max of --trials loads, for each --members size
//   build         ms to build the view from the chain facts and health reports (server side)
//   bundle        app.js and app.css bytes, raw and gzipped
//
//   node scripts/bench/dashboard.ts --members 8,1000 --trials 5
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { buildView } from "@attestmesh/scripts/dashboard/buildView.ts";
import { ensureBundle } from "@attestmesh/scripts/dashboard/bundle.ts";
import { staticSource } from "@attestmesh/scripts/dashboard/live.ts";
import { startDashboardServer } from "@attestmesh/scripts/dashboard/server.ts";
import { chromiumSkip, firstRender, launchBrowser } from "../../test/helpers/browser.ts";
import { synthetic } from "../../test/helpers/dashboardSynthetic.ts";

const { values } = parseArgs({
  options: { members: { type: "string", default: "8,1000" }, trials: { type: "string", default: "5" } },
});
if (chromiumSkip) throw new Error(chromiumSkip);
const sizes = values.members.split(",").map(Number);
const trials = Number(values.trials);

const bundle = await ensureBundle();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
process.stdout.write(
  `bundle: app.js ${kb(bundle.js.length)} (${kb(gzipSync(bundle.js).length)} gzip), app.css ${kb(bundle.css.length)} (${kb(gzipSync(bundle.css).length)} gzip)\n`,
);

const browser = await launchBrowser();
try {
  for (const members of sizes) {
    const s = synthetic({ members, silent: [[1, 2]], missing: [[2, 3]] });
    const started = performance.now();
    const view = buildView(s.facts, s.health, s.nowMs);
    const buildMs = performance.now() - started;
    const server = await startDashboardServer({ source: staticSource(view), bundle, port: 0 });
    const renders: number[] = [];
    for (let i = 0; i < trials; i++) {
      const page = await browser.context.newPage();
      renders.push(await firstRender(page, server.url));
      await page.close();
    }
    await server.close();
    process.stdout.write(
      `${members} members: first render median ${median(renders).toFixed(0)} ms, max ${Math.max(...renders).toFixed(0)} ms (${trials} loads); view built in ${buildMs.toFixed(0)} ms; view JSON ${kb(JSON.stringify({ view }).length)}\n`,
    );
  }
} finally {
  await browser.close();
}
