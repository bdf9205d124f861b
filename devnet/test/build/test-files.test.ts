// `npm test` splits the node:test files into a concurrent unit step and a one-at-a-time step for the
// files that take the machine (devnet/src/build/test-files.ts). No file may be dropped or run twice, and no
// file that builds namespaces or brings up the devnet may land in the concurrent step.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import {
  NODE_TEST_GLOBS,
  nodeTestCommands,
  selectTestFiles,
  takesMachine,
  UNIT_CONCURRENCY,
} from "../../src/build/test-files.ts";

const ROOT = new URL("../../..", import.meta.url).pathname;
// The word the rule looks for, spelled with an escape so that this file itself stays a unit file.
const NETNS = "\x6eetns";

/** Every *.test.ts below the globs' folders, found by walking them rather than by the module's glob. */
function walkTestFiles(root: string): string[] {
  const files: string[] = [];
  for (const glob of NODE_TEST_GLOBS) {
    const base = glob.slice(0, glob.indexOf("/**"));
    for (const entry of readdirSync(join(root, base), { recursive: true, encoding: "utf8" })) {
      if (entry.endsWith(".test.ts") && !entry.split("/").includes("node_modules"))
        files.push(`${base}/${entry}`);
    }
  }
  return [...new Set(files)].sort();
}

/** The file arguments of a node:test command (every argument after the options). */
const fileArgs = (command: readonly string[]) => command.slice(1).filter((arg) => !arg.startsWith("-"));

describe("npm test's node:test files", () => {
  const files = selectTestFiles(ROOT);
  const commands = nodeTestCommands(files);

  it("runs every *.test.ts under the globs exactly once, across its two steps", () => {
    const run = [...fileArgs(commands.unit), ...fileArgs(commands.machine)];
    const counts = new Map<string, number>();
    for (const file of run) counts.set(file, (counts.get(file) ?? 0) + 1);
    assert.deepEqual(
      [...counts].filter(([, n]) => n !== 1),
      [],
      "a file runs more than once",
    );
    assert.deepEqual([...counts.keys()].sort(), walkTestFiles(ROOT));
  });

  it("runs the end-to-end and namespace files one at a time, the others concurrently", () => {
    assert.ok(commands.machine.includes("--test-concurrency=1"));
    assert.ok(commands.unit.includes(`--test-concurrency=${UNIT_CONCURRENCY}`));
    for (const file of walkTestFiles(ROOT)) {
      const source = readFileSync(join(ROOT, file), "utf8");
      const machine = file.startsWith("test/e2e/") || /\bnetns\b/.test(source);
      assert.equal(fileArgs(machine ? commands.machine : commands.unit).includes(file), true, file);
    }
    // The files known to take the machine today, by name, so a change of the rule cannot pass unnoticed.
    for (const file of [
      "test/e2e/devnet.test.ts",
      "test/e2e/soak.test.ts",
      "sidecar/test/wireguard/wg.test.ts",
      "sidecar/test/transport/link.test.ts",
      "sidecar/test/reconcile/initiator.test.ts",
    ]) {
      assert.ok(files.machine.includes(file), file);
    }
    assert.ok(files.unit.includes("devnet/test/build/test-files.test.ts"));
  });
});

describe("selectTestFiles on a tree of its own", () => {
  const root = mkdtempSync(join(tmpdir(), "attestmesh-test-files-"));
  after(() => rmSync(root, { recursive: true, force: true }));
  const write = (path: string, text = "") => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };

  it("puts a file that builds a network namespace, or is end-to-end, in the one-at-a-time step", () => {
    write("sidecar/test/pure.test.ts", 'import { it } from "node:test";');
    write("sidecar/test/real/wg.test.ts", `spawnSync("ip", ["${NETNS}", "add", ns]);`);
    write("test/e2e/new.test.ts", 'import { devnetSkip } from "./helpers/devnet.ts";');
    write("test/e2e/helpers/devnet.ts", "not a test file");
    write("sidecar/test/node_modules/dep/x.test.ts", "a dependency's file");
    assert.deepEqual(selectTestFiles(root), {
      unit: ["sidecar/test/pure.test.ts"],
      machine: ["sidecar/test/real/wg.test.ts", "test/e2e/new.test.ts"],
    });
  });

  it("refuses a tree without test files rather than let node --test search for its own", () => {
    const empty = mkdtempSync(join(root, "empty-"));
    assert.throws(() => selectTestFiles(empty), /no unit or no end-to-end test files/);
  });

  it("reads the word only, not a longer name", () => {
    assert.equal(takesMachine("shared/test/a.test.ts", `const ${NETNS}Name = 1;`), false);
    assert.equal(takesMachine("shared/test/a.test.ts", `ip ${NETNS} exec`), true);
  });
});
