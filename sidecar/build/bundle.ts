// Builds the sidecar into plain JavaScript with esbuild: one ES module for the daemon
// (dist/attestmesh-sidecar.mjs, what the deploy image and the devnet run) and one for the netns socket
// helper (dist/netnsHelper.mjs, spawned next to it on the devnet). Running the sources directly makes
// Node load its TypeScript stripper (a WebAssembly module) and keep ~1,000 module records and their
// source text for the life of the process: about 60 MB more resident memory at rest, and a slower start.
// Whitespace and syntax are minified, identifiers are not, so stack traces keep their function names.
// One file is not JavaScript: libsecp256k1's WebAssembly (tiny-secp256k1), which its loader reads from
// beside the running module, so it is copied beside the bundle (the image copies dist/ whole). It is not
// inlined as libsodium's is: its 1.7 MB of base64 would stay resident as the bundle's source text.
//
//   node sidecar/build/bundle.ts        (prints the output files and their sizes)
import { copyFile, stat } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const SIDECAR = fileURLToPath(new URL("..", import.meta.url));
export const DIST_DIR = join(SIDECAR, "dist");
/** The daemon's built entry point. */
export const SIDECAR_BUNDLE = join(DIST_DIR, "attestmesh-sidecar.mjs");
/**
 * Node options the sidecar runs with (the image's NODE_OPTIONS, the devnet's sidecars): a 1 MB young
 * generation semi-space instead of V8's default up to 16 MB. A resting sidecar allocates little and keeps
 * little, so the larger nursery only held garbage in resident memory (about 20 MB per sidecar at rest,
 * docs/performance.md); scavenges of a 1 MB nursery with few survivors take well under a millisecond.
 * One V8 background thread instead of Node's four (`--v8-pool-size=1`): a resting sidecar gives them
 * almost nothing to do, and each kept its own stack and malloc arena resident (about 5 MB per sidecar at
 * rest at N = 8, CPU within the run-to-run spread; docs/performance.md).
 */
export const SIDECAR_NODE_OPTIONS = "--max-semi-space-size=1 --v8-pool-size=1";

/**
 * WebAssembly that a bundled module reads at run time from `new URL(file, import.meta.url)`: by the
 * module's path (as esbuild names its inputs) and the file beside it. In the bundle that URL is the
 * bundle's own, so the file must sit beside the bundle.
 */
const WASM_BESIDE = [{ module: "/tiny-secp256k1/lib/wasm_path.js", file: "secp256k1.wasm" }] as const;

/**
 * Builds both entry points into dist/ (about a second); returns the files written. `outdir` and
 * `sourcemap` are for tools: an external source map beside a copy elsewhere (the code is byte for byte
 * the same, so a CPU profile of the running bundle maps back to the sources; devnet/bench/idle-cost.ts).
 */
export async function bundleSidecar(
  options: { readonly outdir?: string; readonly sourcemap?: boolean } = {},
): Promise<string[]> {
  const result = await build({
    entryPoints: {
      "attestmesh-sidecar": join(SIDECAR, "src/bin.mjs"),
      // netnsSockets.ts spawns ./netnsHelper.mjs beside the bundle (./netnsHelper.ts beside the sources).
      netnsHelper: join(SIDECAR, "src/meshnet/netnsHelper.ts"),
    },
    outdir: options.outdir ?? DIST_DIR,
    ...(options.sourcemap ? { sourcemap: "external" as const } : {}),
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node22",
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: "none",
    logLevel: "warning",
    metafile: true,
    // CommonJS dependencies (pino, prom-client, ws) call require() for Node's built-ins.
    banner: {
      js: 'import { createRequire as __amCreateRequire } from "node:module";\nconst require = __amCreateRequire(import.meta.url);',
    },
  });
  const outdir = options.outdir ?? DIST_DIR;
  const written = Object.keys(result.metafile.outputs).map((file) => join(process.cwd(), file));
  for (const { module, file } of WASM_BESIDE) {
    const input = Object.keys(result.metafile.inputs).find((path) => path.endsWith(module));
    if (input === undefined) {
      throw new Error(
        `the bundle no longer includes ${module}; update WASM_BESIDE in sidecar/build/bundle.ts`,
      );
    }
    await copyFile(join(dirname(join(process.cwd(), input)), file), join(outdir, file));
    written.push(join(outdir, file));
  }
  return written;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const file of await bundleSidecar()) {
    const { size } = await stat(file);
    process.stdout.write(`${relative(process.cwd(), file)}  ${(size / 1024).toFixed(0)} KiB\n`);
  }
}
