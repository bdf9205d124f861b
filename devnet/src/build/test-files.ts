// Which node:test files `npm test` runs, and in which of its two node:test steps. Files that take the
// machine (the devnet, network namespaces, WireGuard interfaces) run one at a time, since the devnet and
// the namespace names are machine-wide; every other file is a unit file and runs two at a time, which
// halves what their process starts and imports cost on two cores. run-all.ts runs both steps.
import { globSync, readFileSync } from "node:fs";

/** Every node:test file, relative to the repository's root. */
export const NODE_TEST_GLOBS: readonly string[] = [
  "contracts/test/**/*.test.ts",
  "shared/test/**/*.test.ts",
  "test/**/*.test.ts",
  "devnet/test/**/*.test.ts",
  "sidecar/test/**/*.test.ts",
  "indexer/test/**/*.test.ts",
  "sponsor/test/**/*.test.ts",
];

/** How many unit files run at once (each in its own process, as before). */
export const UNIT_CONCURRENCY = 2;

/**
 * True when a test file takes the machine: it is an end-to-end file (test/e2e/, the devnet), or it builds
 * network namespaces (`ip netns`) for real WireGuard interfaces. Read from the file, so a new file that
 * adds a namespace is kept off the concurrent step without anyone listing it.
 */
export function takesMachine(path: string, source: string): boolean {
  return path.startsWith("test/e2e/") || /\bnetns\b/.test(source);
}

export interface TestFiles {
  /** Run `UNIT_CONCURRENCY` at a time. */
  readonly unit: readonly string[];
  /** Run one at a time, after the unit files. */
  readonly machine: readonly string[];
}

/** The files under `globs` in `root`, sorted and split; every file is in exactly one of the two lists. */
export function selectTestFiles(root: string, globs: readonly string[] = NODE_TEST_GLOBS): TestFiles {
  const files = [
    ...new Set(globSync([...globs], { cwd: root, exclude: (name) => name.includes("node_modules") })),
  ].sort();
  const unit: string[] = [];
  const machine: string[] = [];
  for (const file of files) {
    (takesMachine(file, readFileSync(`${root}/${file}`, "utf8")) ? machine : unit).push(file);
  }
  // An empty list would make `node --test` look for test files by itself, everywhere.
  if (unit.length === 0 || machine.length === 0) {
    throw new Error(
      `no unit or no end-to-end test files under ${root}: run npm test at the repository's root`,
    );
  }
  return { unit, machine };
}

/** The two node:test commands for `files`: the unit files first, then the machine's one at a time. */
export function nodeTestCommands(files: TestFiles): { unit: string[]; machine: string[] } {
  const common = ["node", "--test", "--test-reporter=spec", "--test-timeout=600000"];
  return {
    unit: [...common, `--test-concurrency=${UNIT_CONCURRENCY}`, ...files.unit],
    machine: [...common, "--test-concurrency=1", ...files.machine],
  };
}
