// The dashboard page in a real browser (Debian's headless Chromium through playwright-core), on synthetic
// clusters served by the real server and bundle: every member and link drawn, the card by mouse and by
// keyboard, live joins and evictions without reload, filters, each view, no console errors, and the time
// to first render with 8 and with 1,000 members (printed, and bounded so a freeze fails the test).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { buildView } from "@attestmesh/scripts/dashboard/buildView.ts";
import { ensureBundle } from "@attestmesh/scripts/dashboard/bundle.ts";
import { staticSource } from "@attestmesh/scripts/dashboard/live.ts";
import { type DashboardServer, startDashboardServer } from "@attestmesh/scripts/dashboard/server.ts";
import { type Browser, chromiumSkip, launchBrowser, seen, until } from "../helpers/browser.ts";
import {
  appIdOf,
  COMPOSE,
  OLD_COMPOSE,
  type SyntheticOptions,
  synthetic,
} from "../helpers/dashboardSynthetic.ts";

const INDEXER_KEY = `0x${"11".repeat(32)}`;

const viewOf = (options: SyntheticOptions) => {
  const s = synthetic(options);
  const facts = {
    ...s.facts,
    indexers: [
      { endpoint: "ws://10.0.0.9:8790/", signingKey: INDEXER_KEY, appId: appIdOf(90), codeId: COMPOSE },
    ],
  };
  const row = {
    cluster: facts.cluster.toLowerCase(),
    head: String(facts.head),
    lastSeq: "12",
    following: true,
  };
  const at = new Date(s.nowMs).toISOString();
  return buildView(facts, s.health, s.nowMs, {
    attestation: new Map([
      ["1", { state: "verified", evidence: "SIMULATED", detail: null, checkedAt: at, lastVerifiedAt: at }],
      [
        "5",
        {
          state: "refused",
          evidence: "SIMULATED",
          detail: "report-data: ReportDataMismatch the quote does not bind this member's keys and nonce",
          checkedAt: at,
          lastVerifiedAt: null,
        },
      ],
    ]),
    indexerHealth: new Map([
      [
        INDEXER_KEY,
        { body: { signingKey: INDEXER_KEY, clusters: [row], subscribers: 8 }, checkedAtMs: s.nowMs },
      ],
    ]),
    updates: "woken by indexer ws://10.0.0.9:8790/ (envelope 12)",
  });
};

describe("dashboard page in Chromium (synthetic clusters)", { skip: chromiumSkip }, () => {
  let browser: Browser;
  let server: DashboardServer;
  const source = staticSource(
    viewOf({ members: 8, silent: [[1, 2]], missing: [[3, 4]], revokedApps: [5], oldCompose: [5] }),
  );

  before(async () => {
    const bundle = await ensureBundle();
    server = await startDashboardServer({ source, bundle, port: 0 });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it("8 members: every member and link drawn, coloured by state and path", async () => {
    const ms = await browser.render(server.url);
    process.stdout.write(`# first render, 8 members: ${ms.toFixed(0)} ms\n`);
    assert.deepEqual(await browser.nodes(), ["1", "2", "3", "4", "5", "6", "7", "8"]);
    const edges = await browser.edges();
    assert.equal(edges.length, 28);
    assert.ok(edges.includes("1:2:silent:gateway"), edges.join());
    assert.ok(edges.includes("3:4:missing:udp"), edges.join());
    assert.ok(edges.includes("1:3:handshaken:udp"));
    assert.match(await seen(browser.page.getByTestId("link-summary")), /handshaken 26.*silent 1.*missing 1/s);
    const indexers = await seen(browser.page.getByTestId("indexers"));
    assert.match(indexers, /Indexers \(1 registered\)[\s\S]*ws:\/\/10\.0\.0\.9:8790\/[\s\S]*following/);
    assert.match(indexers, /woken by indexer/);
    await browser.screenshot("synthetic-mesh.png");
  });

  it("a member's card opens from the table by keyboard: claims, standing, attestation", async () => {
    const page = browser.page;
    await page.locator('[data-testid="member-table"] tr[data-key="5"]').focus();
    await page.keyboard.press("Enter");
    const card = page.getByTestId("member-card");
    await card.waitFor();
    const text = await seen(card);
    assert.match(text, /Member #5/);
    assert.match(text, /revoked/);
    assert.match(text, new RegExp(`compose hash\\s+${OLD_COMPOSE} NOT allowed now`));
    assert.match(text, /device\s+0x[0-9a-f]{64} allowed now/);
    assert.match(text, /standing\s+NOT standing \(compose-hash-not-allowed\)/);
    assert.match(
      text,
      /attestation\s+REFUSED \(SIMULATED evidence\) at .*ReportDataMismatch.*never verified here/,
    );
    assert.match(text, /sponsorship spend\s+0\.0015 ETH/);
    await browser.screenshot("synthetic-member-card.png");
    await page.keyboard.press("Escape");
    await card.waitFor({ state: "detached" });
  });

  it("a join appears and an eviction disappears without reload", async () => {
    const page = browser.page;
    await page.evaluate(() => {
      (globalThis as unknown as { marker: number }).marker = 1;
    });
    source.set(viewOf({ members: 9 }));
    await browser.waitForNodes((nodes) => nodes.length === 9);
    source.set(viewOf({ members: 9, evicted: [2] }));
    await browser.waitForNodes((nodes) => !nodes.includes("2"));
    assert.equal((await browser.edges()).length, 28);
    assert.equal(
      await page.evaluate(() => (globalThis as unknown as { marker: number }).marker),
      1,
      "no reload",
    );
  });

  it("each view renders; tabs move with the arrow keys; the history filters", async () => {
    const page = browser.page;
    source.set(
      viewOf({
        members: 8,
        evicted: [3],
        oldKmsRoot: [6],
        revokedApps: [7],
        oldCompose: [2],
        revokedDevices: [4],
      }),
    );
    await page.getByRole("tab", { name: "Mesh" }).focus();
    await page.keyboard.press("ArrowRight");
    assert.equal(await page.getByRole("tab", { name: "CSK epochs" }).getAttribute("aria-selected"), "true");
    const timeline = page.getByTestId("csk-timeline");
    await timeline.waitFor();
    assert.match(await seen(timeline), /Epoch 1[\s\S]*departure of member #3 \(evicted\)[\s\S]*Epoch 0/);
    await browser.screenshot("synthetic-csk.png");

    await page.keyboard.press("ArrowRight");
    const drift = page.getByTestId("drift");
    await drift.waitFor();
    const driftText = await seen(drift);
    assert.match(driftText, /#6[\s\S]*KMS root[\s\S]*attestmesh evict 6/);
    assert.match(driftText, /#7[\s\S]*revoked[\s\S]*attestmesh evict 7/);
    assert.match(driftText, /#2[\s\S]*compose hash 0x[0-9a-f]{64}, which the policy no longer allows/);
    assert.match(driftText, /#4[\s\S]*device 0x[0-9a-f]{64}, revoked at/);
    const all = await page.locator('[data-testid="policy-history"] tbody tr[data-key]').count();
    await page.getByTestId("history-event").selectOption("KmsRootRemoved");
    await until(
      "the filter to leave one event",
      async () => (await page.locator('[data-testid="policy-history"] tbody tr[data-key]').count()) === 1,
    );
    assert.ok(all > 1);
    await page.getByTestId("history-event").selectOption("");
    await browser.screenshot("synthetic-policy.png", { fullPage: true });

    await page.keyboard.press("Tab");
    await page.getByRole("tab", { name: "Sponsorship" }).click();
    const spend = page.getByTestId("spend");
    await spend.waitFor();
    assert.match(await seen(spend), /has paid [\d.]+ ETH for 7 accounts/);
    await browser.screenshot("synthetic-spend.png");
    assert.deepEqual(browser.errors, [], "no console errors");
  });

  it("1,000 members: first render, every member drawn, only problem links sent", async () => {
    source.set(viewOf({ members: 1000, silent: [[10, 20]], missing: [[30, 40]] }));
    const other = await browser.newPage();
    const { page } = other;
    const ms = await other.render(`${server.url}#mesh`);
    process.stdout.write(`# first render, 1000 members: ${ms.toFixed(0)} ms\n`);
    assert.equal((await other.nodes()).length, 1000);
    assert.deepEqual(await other.edges(), ["10:20:silent:gateway", "30:40:missing:udp"]);
    assert.match(await seen(page.getByTestId("link-summary")), /only the problem links are shown/);
    // Virtualised: a screenful of rows in the DOM, not 1,000.
    const rows = await page.locator('[data-testid="member-table"] tbody tr[data-key]').count();
    assert.ok(rows < 60, `${rows} rows rendered`);
    assert.ok(ms < 15_000, `first render took ${ms.toFixed(0)} ms`);
    await other.screenshot("synthetic-mesh-1000.png");
    assert.deepEqual(other.errors, []);
    await page.close();
  });
});
