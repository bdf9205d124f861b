// End to end: the owner's dashboard on a 3-node devnet with two indexers, in Debian's headless Chromium.
// The page shows every active member and every link as the members' own /healthz report them, both
// registered indexers following, each member's recorded claims (as `attestmesh members --json` has them)
// and its live attestation verified; a join appears and an eviction disappears within 5 s of the chain
// showing them, without reload; the policy history is `attestmesh policy history --json`'s; a revoked
// device shows as drift on exactly the members on it; no console errors; a screenshot of each view is
// saved under test-artifacts/dashboard/. Needs root and /dev/net/tun like the other devnet tests, and Chromium.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { devnetPrivateKey } from "@attestmesh/devnet/orchestration/accounts.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { type Address, createPublicClient, http } from "viem";
import { type Browser, chromiumSkip, launchBrowser, seen } from "../helpers/browser.ts";
import { CLI, cli, devnetSkip, eventually, ROOT } from "./helpers/devnet.ts";

const skip = devnetSkip || chromiumSkip;

interface State {
  rpcUrl: string;
  diamond: Address;
  deployBlock: string;
  sponsorship?: { entryPoint: Address; paymaster: Address; accountFactory: Address };
  nodes: Array<{ name: string; appId: string; healthUrl: string }>;
}

const HEALTH_URLS = join(ROOT, ".devnet/dashboard-health-urls.json");

/** The owner's file of app id → /healthz URL, rewritten from the devnet's state (nodes come and go). */
async function writeHealthUrls(): Promise<State> {
  const state = await readState();
  await writeFile(
    HEALTH_URLS,
    JSON.stringify(Object.fromEntries(state.nodes.map((n) => [n.appId, n.healthUrl]))),
  );
  return state;
}

const readState = async () => JSON.parse(await readFile(join(ROOT, ".devnet/state.json"), "utf8")) as State;

describe("dashboard on the devnet", { skip }, () => {
  let browser: Browser;
  let dashboard: ChildProcess | undefined;
  let url = "";
  let state: State;
  let client: ReturnType<typeof createPublicClient>;

  /** Active member ids on chain now. */
  const activeOnChain = async (): Promise<string[]> => {
    const [page] = await client.readContract({
      address: state.diamond,
      abi: clusterAbi,
      functionName: "members",
      args: [1n, 200n],
    });
    return page
      .filter((m) => m.status === 1)
      .map((m) => m.memberId.toString())
      .sort();
  };
  const target = () => ["--rpc", state.rpcUrl, "--cluster", state.diamond];

  before(async () => {
    await cli(["devnet", "up", "--detach", "--json", "--nodes", "3", "--indexers", "2"]);
    state = await readState();
    client = createPublicClient({ transport: http(state.rpcUrl) });
    await writeHealthUrls();
    const sponsorship = state.sponsorship!;
    // The owner's command with every source named, as on a real network; it prints its URL once it serves.
    const args = [
      "dashboard",
      ...["--rpc", state.rpcUrl, "--cluster", state.diamond, "--from-block", state.deployBlock],
      ...["--health-urls", HEALTH_URLS, "--port", "0"],
      ...["--entry-point", sponsorship.entryPoint, "--paymaster", sponsorship.paymaster],
      ...["--account-factory", sponsorship.accountFactory],
    ];
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    dashboard = child;
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    url = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        const found = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
        if (found) resolve(found[1]!);
      });
      child.once("exit", (code) => reject(new Error(`dashboard exited ${code}: ${stderr}`)));
      setTimeout(() => reject(new Error(`dashboard printed no URL in 120 s: ${stderr}`)), 120_000).unref();
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    dashboard?.kill("SIGTERM");
    await cli(["devnet", "down"]).catch(() => {});
  });

  it("shows every active member, and every link handshaken", async () => {
    const ms = await browser.render(url);
    process.stdout.write(`# first render, devnet (3 members): ${ms.toFixed(0)} ms\n`);
    const active = await activeOnChain();
    assert.equal(active.length, 3);
    assert.deepEqual(await browser.nodes(), active);
    const pairs = (active.length * (active.length - 1)) / 2;
    const edges = await eventually(
      "every link drawn as handshaken",
      async () => {
        const drawn = await browser.edges();
        return drawn.length === pairs && drawn.every((e) => e.includes(":handshaken:")) && drawn;
      },
      60_000,
      500,
    );
    for (const edge of edges) assert.match(edge, /:(udp|gateway)$/, edge);
    const indexers = browser.page.getByTestId("indexers");
    await eventually(
      "both registered indexers shown following",
      async () => {
        const rows = indexers.locator("tbody tr[data-key]");
        const says = await rows.evaluateAll((trs) => trs.map((tr) => tr.children[2]?.textContent ?? ""));
        return says.length === 2 && says.every((t) => t === "following");
      },
      30_000,
      500,
    );
    assert.match(await seen(indexers), /Indexers \(2 registered\)/);
    assert.match(await seen(browser.page.locator("footer")), /chain: one RPC/);
    await browser.screenshot("devnet-mesh.png");
  });

  it("opens a member's card with its chain record and its own health", async () => {
    const page = browser.page;
    const first = (await activeOnChain())[0]!;
    await page.locator(`[data-testid="member-table"] tr[data-key="${first}"]`).click();
    const card = page.getByTestId("member-card");
    await card.waitFor();
    const text = await seen(card);
    assert.match(text, new RegExp(`Member #${first}`));
    assert.match(text, /admitting KMS root\s+0x[0-9a-fA-F]{40} allowed now/);
    assert.match(text, /health\s+healthy; peers handshaken 2\/2/);
    assert.match(text, /sponsorship spend\s+[\d.]+ ETH \(account 0x/);
    const rows = (
      JSON.parse(await cli(["members", "--json", ...target()])) as {
        members: Array<Record<string, string | null>>;
      }
    ).members;
    const chain = rows.find((r) => r.memberId === first)!;
    assert.ok(chain.composeHash, "the devnet records claims");
    assert.match(text, new RegExp(`compose hash\\s+${chain.composeHash} allowed now`, "i"));
    assert.match(text, new RegExp(`standing\\s+${chain.standing === "good" ? "good" : "NOT standing"}`));
    if (chain.deviceId) assert.match(text, new RegExp(`device\\s+${chain.deviceId}`, "i"));
    // The dashboard checks each member's live attestation in the background (simulated on the devnet).
    await eventually(
      "the member's attestation verified",
      async () =>
        /verified \(SIMULATED evidence\) at/.test(await seen(page.getByTestId("member-attestation"))),
      60_000,
      500,
    );
    await browser.screenshot("devnet-member-card.png");
    await page.keyboard.press("Escape");
  });

  it("a join appears and an eviction disappears within 5 s, without reload", async () => {
    const page = browser.page;
    await page.evaluate("globalThis.notReloaded = true");
    const before = await activeOnChain();
    const adding = cli(["devnet", "add-node", "--json", "--timeout", "180"]);
    const joined = await eventually(
      "a new member on chain",
      async () => (await activeOnChain()).find((id) => !before.includes(id)),
      180_000,
      200,
    );
    const seenAt = Date.now();
    await browser.waitForNodes((nodes) => nodes.includes(joined), 5_000);
    process.stdout.write(`# join on chain -> on the page: ${Date.now() - seenAt} ms\n`);
    const updates = (
      (await (await fetch(`${url}api/view`)).json()) as { view: { sources: { updates: string } } }
    ).view.sources.updates;
    process.stdout.write(`# updates: ${updates}\n`);
    await adding;
    await writeHealthUrls();

    const node2 = (await readState()).nodes.find((n) => n.name === "node2")!;
    const [memberId] = await client.readContract({
      address: state.diamond,
      abi: clusterAbi,
      functionName: "memberOfApp",
      args: [node2.appId as Address],
    });
    const gone = memberId.toString();
    await cli(["devnet", "evict", "node2"]);
    const evictedAt = Date.now();
    const remaining = await activeOnChain();
    assert.ok(!remaining.includes(gone), "node2's member left the chain's active set");
    await browser.waitForNodes((nodes) => !nodes.includes(gone), 5_000);
    process.stdout.write(`# eviction on chain -> gone from the page: ${Date.now() - evictedAt} ms\n`);
    assert.equal(await page.evaluate("globalThis.notReloaded === true"), true, "the page was not reloaded");
    assert.deepEqual(await browser.nodes(), remaining);
  });

  it("the CSK timeline shows the epoch the eviction opened, and who committed it", async () => {
    const page = browser.page;
    await page.getByRole("tab", { name: "CSK epochs" }).click();
    const epochs = page.locator('[data-testid="csk-timeline"] > li');
    const newest = epochs.first();
    await eventually(
      "the new epoch committed",
      async () => /committed by member #\d+/.test(await seen(newest)),
      60_000,
      500,
    );
    assert.match(await seen(newest), /^Epoch 1\s+opened .* by the departure of member #\d+ \(evicted\)/);
    assert.match(
      await seen(epochs.last()),
      /^Epoch 0\s+the first epoch, opened .*\s+committed by member #\d+/,
    );
    await browser.screenshot("devnet-csk.png");
  });

  it("the policy history is `attestmesh policy history --json`'s", async () => {
    const page = browser.page;
    await page.getByRole("tab", { name: "Policy" }).click();
    const history = JSON.parse(await cli(["policy", "history", "--json", ...target()])) as {
      events: Array<{ block: string; logIndex: number; name: string }>;
    };
    const api = (await (await fetch(`${url}api/view`)).json()) as {
      view: { policy: { events: Array<Record<string, unknown>> } };
    };
    assert.deepEqual(
      api.view.policy.events.map(({ at, ...rest }) => rest),
      history.events,
    );
    await page.waitForSelector('[data-testid="policy-history"] tbody tr[data-key]');
    assert.match(
      await seen(page.locator("section.policy")),
      new RegExp(`${history.events.length} of ${history.events.length} events`),
    );
    const shown = await page
      .locator('[data-testid="policy-history"] tbody tr[data-key]')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-key")));
    assert.deepEqual(
      shown,
      history.events.slice(0, shown.length).map((e) => `${e.block}-${e.logIndex}`),
    );
    await browser.screenshot("devnet-policy.png", { fullPage: true });
  });

  it("a revoked device is drift on exactly the members that run on it, with the command", async () => {
    const page = browser.page;
    const active = (
      JSON.parse(await cli(["members", "--json", "--active", ...target()])) as {
        members: Array<Record<string, string | null>>;
      }
    ).members;
    const device = active.find((r) => r.deviceId)?.deviceId;
    assert.ok(device, "a member with a recorded device id");
    const onIt = active
      .filter((r) => r.deviceId === device)
      .map((r) => r.memberId!)
      .sort();
    await cli(["revoke", "device", device, "--yes", "--reason", "dashboard e2e", ...target()], {
      env: { ...process.env, ATTESTMESH_OWNER_KEY: devnetPrivateKey(0) },
    });
    await page.getByRole("tab", { name: "Policy" }).click();
    const drift = page.getByTestId("drift");
    const kinds = async () =>
      (
        (await (await fetch(`${url}api/view`)).json()) as {
          view: { policy: { drift: Array<{ kind: string; memberId: string }> } };
        }
      ).view.policy.drift
        .filter((d) => d.kind === "device-revoked")
        .map((d) => d.memberId)
        .sort();
    await eventually(
      "the revoked device as drift",
      async () => (await kinds()).length === onIt.length,
      10_000,
      250,
    );
    assert.deepEqual(await kinds(), onIt);
    assert.match(
      await seen(drift),
      new RegExp(`#${onIt[0]}[\\s\\S]*revoked at[\\s\\S]*attestmesh evict ${onIt[0]}`),
    );
    await browser.screenshot("devnet-drift.png", { fullPage: true });
  });

  it("the sponsorship view charts the paymaster's spend; no console errors anywhere", async () => {
    const page = browser.page;
    await page.getByRole("tab", { name: "Sponsorship" }).click();
    const spend = page.getByTestId("spend");
    await spend.waitFor();
    assert.match(await seen(spend), /has paid [\d.]+ ETH for \d+ accounts/);
    await browser.screenshot("devnet-spend.png");
    assert.deepEqual(browser.errors, [], "no console errors");
  });
});
