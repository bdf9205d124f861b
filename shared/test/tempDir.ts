// Temporary directories for node:test files of every package, each removed with all it holds once the tests
// that use it are done, so a test run leaves nothing under the system's temporary directory.
import { mkdtempSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, type TestContext } from "node:test";

/**
 * A fresh directory under the system's temporary one for the enclosing suite: made before its tests and
 * removed with all it holds after them. Returns a function naming a path inside it.
 */
export function suiteTempDir(prefix: string): (name: string) => string {
  let dir: string | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  after(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });
  return (name) => {
    if (dir === undefined) throw new Error("the suite's temporary directory exists only while its tests run");
    return join(dir, name);
  };
}

/** Directories fileTempDir made that are still there: removed, at the latest, as the process exits. */
const made = new Set<string>();
let removedOnExit = false;

/**
 * A fresh directory under the system's temporary one, made now and removed with all it holds after the
 * tests of the suite this is called in (at a file's top level: after every test of the file). A suite none
 * of whose tests run (--test-name-pattern) runs no hooks: its directory goes as the process exits.
 */
export function fileTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (!removedOnExit) {
    removedOnExit = true;
    process.once("exit", () => {
      for (const left of made) rmSync(left, { recursive: true, force: true });
    });
  }
  made.add(dir);
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    made.delete(dir);
  });
  return dir;
}

/** A fresh directory under the system's temporary one for test `t`, removed with all it holds when `t` ends, pass or fail. */
export function testTempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
