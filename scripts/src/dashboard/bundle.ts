// Builds the dashboard page (web/) into one script and one stylesheet with esbuild, at build time: the
// server serves these files, so the page needs no CDN and works offline. The bundle is not committed:
// it is rebuilt whenever its inputs (the page's sources, the lockfile) change, which a stamp records.
// `node scripts/src/dashboard/bundle.ts` builds it if missing or stale and prints its size.

import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { build } from "esbuild";

const HERE = new URL(".", import.meta.url).pathname;
export const WEB_DIR = join(HERE, "web");
export const DIST_DIR = join(HERE, "dist");
const STAMP = join(DIST_DIR, "stamp.txt");
const LOCKFILE = join(HERE, "../../../pnpm-lock.yaml");

export interface Bundle {
  readonly html: Buffer;
  readonly js: Buffer;
  readonly css: Buffer;
  readonly rebuilt: boolean;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** sha256 over every input of the bundle: the page's files, the shared model, the lockfile, this file. */
async function inputsHash(): Promise<string> {
  const hash = createHash("sha256");
  const files = [
    ...(await sourceFiles(WEB_DIR)),
    join(HERE, "model.ts"),
    LOCKFILE,
    new URL(import.meta.url).pathname,
  ];
  for (const file of files) {
    hash
      .update(file.slice(HERE.length))
      .update("\0")
      .update(await readFile(file))
      .update("\0");
  }
  return hash.digest("hex");
}

/** Returns the bundle, building it first when it is missing or older than its inputs. */
export async function ensureBundle(): Promise<Bundle> {
  const want = await inputsHash();
  const have = await readFile(STAMP, "utf8").catch(() => "");
  let rebuilt = false;
  if (have.trim() !== want) {
    await mkdir(DIST_DIR, { recursive: true });
    await build({
      entryPoints: { app: join(WEB_DIR, "main.tsx") },
      outdir: DIST_DIR,
      bundle: true,
      minify: true,
      format: "esm",
      target: "es2022",
      platform: "browser",
      jsx: "automatic",
      jsxImportSource: "preact",
      legalComments: "linked",
      logLevel: "warning",
    });
    await writeFile(STAMP, `${want}\n`);
    rebuilt = true;
  }
  const [html, js, css] = await Promise.all([
    readFile(join(WEB_DIR, "index.html")),
    readFile(join(DIST_DIR, "app.js")),
    readFile(join(DIST_DIR, "app.css")),
  ]);
  return { html, js, css, rebuilt };
}

if (import.meta.main) {
  const { js, css, rebuilt } = await ensureBundle();
  const { gzipSync } = await import("node:zlib");
  process.stdout.write(
    `dashboard bundle ${rebuilt ? "built" : "current"}: app.js ${js.length} B (${gzipSync(js).length} B gzip), app.css ${css.length} B\n`,
  );
}
