// Skips a build whose inputs and outputs are byte for byte what they were when it last ran. `devnet up`
// rebuilt the contracts (Hardhat's own start is seconds of CPU even when it then compiles nothing) and the
// sidecar bundle every time, on the cores the Hardhat node boots on, though between two end-to-end files
// nothing had changed. Outputs are fingerprinted as well as inputs (by size and modification time: the
// artifacts are 27 MB), so an output that anything else rewrote or removed (another `hardhat build`,
// `hardhat clean`) is rebuilt, not trusted.
import { createHash } from "node:crypto";
import { readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";

/** What a build reads and writes: files or directories (read recursively, node_modules left out). */
export interface BuildSpec {
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

/**
 * SHA-256 over every file under `paths`, each named relative to `root`, with its bytes (`contents`) or
 * its size and modification time; a missing path counts as absent.
 */
export async function fingerprint(
  root: string,
  paths: readonly string[],
  of: "contents" | "stat" = "contents",
): Promise<string> {
  const files = (await Promise.all(paths.map((path) => filesUnder(join(root, path))))).flat().sort();
  const hash = createHash("sha256");
  for (const file of files) {
    hash.update(relative(root, file)).update("\0");
    if (of === "contents") hash.update(await readFile(file));
    else {
      const { size, mtimeMs } = await stat(file);
      hash.update(`${size} ${mtimeMs}`);
    }
    hash.update("\0");
  }
  return hash.digest("hex");
}

async function filesUnder(path: string): Promise<string[]> {
  const entries = await readdir(path, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOTDIR") return undefined;
    if (error.code === "ENOENT") return [];
    throw error;
  });
  if (entries === undefined) return [path];
  const nested = await Promise.all(
    entries
      .filter((entry) => entry.name !== "node_modules")
      .map((entry) => (entry.isDirectory() ? filesUnder(join(path, entry.name)) : [join(path, entry.name)])),
  );
  return nested.flat();
}

/**
 * Runs `build` unless `stampFile` records the fingerprints `spec`'s inputs and outputs have now; returns
 * whether it ran. The inputs are read before the build, so an edit made while it runs is built next time.
 */
export async function buildUnlessUnchanged(
  root: string,
  stampFile: string,
  spec: BuildSpec,
  build: () => Promise<unknown>,
): Promise<boolean> {
  const inputs = await fingerprint(root, spec.inputs);
  const stamp = await readFile(stampFile, "utf8").catch(() => "");
  if (stamp === stampOf(inputs, await fingerprint(root, spec.outputs, "stat"))) return false;
  // A build that fails half way leaves no stamp behind that could vouch for its outputs.
  await rm(stampFile, { force: true });
  await build();
  await writeFile(stampFile, stampOf(inputs, await fingerprint(root, spec.outputs, "stat")));
  return true;
}

function stampOf(inputs: string, outputs: string): string {
  return `${JSON.stringify({ inputs, outputs })}\n`;
}
