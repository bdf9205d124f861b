// A real browser for the dashboard's tests: Debian's headless Chromium driven by playwright-core (nothing
// downloads a browser). `chromiumSkip` is the reason it cannot run here, or false. Each page is a
// DashboardPage: it renders the dashboard, reads and waits on its picture, keeps its console errors and
// saves screenshots under test-artifacts/dashboard/.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Locator, type Page } from "playwright-core";

export const CHROMIUM = process.env.ATTESTMESH_CHROMIUM ?? "/usr/bin/chromium";
export const ARTIFACTS = join(new URL("../..", import.meta.url).pathname, "test-artifacts/dashboard");

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** One page of the dashboard in the browser. */
export interface DashboardPage {
  readonly page: Page;
  /** Console errors and uncaught page errors seen so far. */
  readonly errors: string[];
  /** Loads `url` and waits for the first render; returns the ms from navigation start to it. */
  render(url: string): Promise<number>;
  /** The members the picture draws, sorted. */
  nodes(): Promise<string[]>;
  /** The links the picture draws, as `a:b:state:path`, sorted. */
  edges(): Promise<string[]>;
  /** Polls the picture until `predicate(nodes)` holds. */
  waitForNodes(predicate: (nodes: string[]) => boolean, timeoutMs?: number): Promise<void>;
  /** Saves a screenshot as test-artifacts/dashboard/`name`. */
  screenshot(name: string, options?: { readonly fullPage?: boolean }): Promise<void>;
}

export interface Browser extends DashboardPage {
  readonly context: BrowserContext;
  /** Another page in the same browser, with its own error list. */
  newPage(): Promise<DashboardPage>;
  close(): Promise<void>;
}

function dashboardPage(page: Page): DashboardPage {
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(error.message));
  return {
    page,
    errors,
    render: (url) => firstRender(page, url),
    nodes: () => graphNodes(page),
    edges: () => graphEdges(page),
    waitForNodes: (predicate, timeoutMs) => waitForNodes(page, predicate, timeoutMs),
    async screenshot(name, options = {}) {
      await page.screenshot({ path: artifactPath(name), ...options });
    },
  };
}

/** Launches Chromium with a fresh profile directory (removed on close). */
export async function launchBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "attestmesh-chromium-"));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: { width: 1440, height: 900 },
      timeout: 60_000,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    return {
      ...dashboardPage(page),
      context,
      newPage: async () => dashboardPage(await context.newPage()),
      async close() {
        await context.close();
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
}

async function probe(): Promise<string | false> {
  if (!existsSync(CHROMIUM))
    return `no Chromium at ${CHROMIUM} (apt-get install chromium; .ci/run installs it)`;
  try {
    const browser = await launchBrowser();
    await browser.close();
    return false;
  } catch (error) {
    return `Chromium cannot start here: ${(error as Error).message.split("\n")[0]}`;
  }
}

export const chromiumSkip: string | false = await probe();

function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

/** Loads the page and waits for its first render; returns the ms from navigation start to it. */
export async function firstRender(page: Page, url: string): Promise<number> {
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 60_000 });
  return page.evaluate(() => performance.getEntriesByName("dashboard-first-render")[0]!.startTime);
}

// The picture's own element list (MeshGraph.tsx exposes it: a canvas has no DOM to query). These
// run in the page, as strings, so nothing from this file has to exist there.
const graphNodes = (page: Page): Promise<string[]> =>
  page.evaluate("globalThis.__dashboardGraph.nodes().sort()");
const graphEdges = (page: Page): Promise<string[]> =>
  page.evaluate(
    "globalThis.__dashboardGraph.edges().map((e) => [e.a, e.b, e.state, e.path].join(':')).sort()",
  );

/**
 * Polls the picture until `predicate(nodes)` holds, from here: the page's CSP forbids the string
 * evaluation a waitForFunction predicate needs, and the tests keep the CSP the owner gets.
 */
async function waitForNodes(
  page: Page,
  predicate: (nodes: string[]) => boolean,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let nodes: string[] = [];
  while (Date.now() < deadline) {
    nodes = await graphNodes(page);
    if (predicate(nodes)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(
    `the picture did not change as expected within ${timeoutMs} ms; it shows ${nodes.join(", ")}`,
  );
}

/** The text a person sees in an element (layout line breaks included). */
export const seen = (locator: Locator): Promise<string> =>
  // biome-ignore lint/performance/useDomNodeTextContent: the rendered text, with its line breaks, is the point
  locator.innerText();

/** Polls `check` from here until it is true, or fails after `timeoutMs` naming `what`. */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
