// `devnet up` skips the contract build and the sidecar bundle when neither their inputs nor their outputs
// changed since the last devnet built them; anything else builds again.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { buildUnlessUnchanged } from "../../src/orchestration/buildCache.ts";

describe("buildUnlessUnchanged", () => {
  let root: string;
  let builds: number;
  const spec = { inputs: ["src", "config.json", "absent.json"], outputs: ["out"] };
  const stamp = () => join(root, "stamp.json");
  const build = async () => {
    builds++;
    await mkdir(join(root, "out"), { recursive: true });
    await writeFile(join(root, "out/built.txt"), await readFile(join(root, "src/a.txt")));
  };
  const buildIfChanged = () => buildUnlessUnchanged(root, stamp(), spec, build);

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "attestmesh-build-cache-"));
    builds = 0;
    await mkdir(join(root, "src/nested/node_modules"), { recursive: true });
    await writeFile(join(root, "src/a.txt"), "one");
    await writeFile(join(root, "src/nested/b.txt"), "two");
    await writeFile(join(root, "config.json"), "{}");
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it("builds the first time, then skips while nothing changed", async () => {
    assert.equal(await buildIfChanged(), true);
    assert.equal(await buildIfChanged(), false);
    assert.equal(await buildIfChanged(), false);
    assert.equal(builds, 1);
  });

  it("builds again when an input's bytes change, even at the same size", async () => {
    await buildIfChanged();
    await writeFile(join(root, "src/nested/b.txt"), "TWO");
    assert.equal(await buildIfChanged(), true);
    await writeFile(join(root, "config.json"), "[]");
    assert.equal(await buildIfChanged(), true);
    assert.equal(builds, 3);
    assert.equal(await buildIfChanged(), false);
  });

  it("builds again when an input is added, removed or renamed, or a missing input appears", async () => {
    await buildIfChanged();
    await writeFile(join(root, "src/c.txt"), "three");
    assert.equal(await buildIfChanged(), true);
    await rm(join(root, "src/c.txt"));
    assert.equal(await buildIfChanged(), true);
    await rm(join(root, "src/nested/b.txt"));
    await writeFile(join(root, "src/b.txt"), "two");
    assert.equal(await buildIfChanged(), true);
    await writeFile(join(root, "absent.json"), "{}");
    assert.equal(await buildIfChanged(), true);
    assert.equal(builds, 5);
  });

  it("ignores node_modules inside an input folder", async () => {
    await buildIfChanged();
    await writeFile(join(root, "src/nested/node_modules/dep.js"), "x");
    assert.equal(await buildIfChanged(), false);
  });

  it("builds again when something else rewrote, touched or removed an output", async () => {
    await buildIfChanged();
    await writeFile(join(root, "out/built.txt"), "tampered");
    assert.equal(await buildIfChanged(), true);
    assert.equal(await readFile(join(root, "out/built.txt"), "utf8"), "one");
    await utimes(join(root, "out/built.txt"), new Date(0), new Date(0));
    assert.equal(await buildIfChanged(), true);
    await rm(join(root, "out"), { recursive: true });
    assert.equal(await buildIfChanged(), true);
    await writeFile(join(root, "out/extra.txt"), "stray");
    assert.equal(await buildIfChanged(), true);
    assert.equal(builds, 5);
  });

  it("a build that fails leaves no stamp: the next call builds again", async () => {
    await buildIfChanged();
    await writeFile(join(root, "src/a.txt"), "changed");
    await assert.rejects(
      buildUnlessUnchanged(root, stamp(), spec, async () => {
        throw new Error("compiler failed");
      }),
      /compiler failed/,
    );
    await assert.rejects(readFile(stamp()), { code: "ENOENT" });
    assert.equal(await buildIfChanged(), true);
    assert.equal(await readFile(join(root, "out/built.txt"), "utf8"), "changed");
  });
});
