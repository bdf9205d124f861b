// A temporary directory for one node:test suite, for the tests of every package.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";

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
