// The deploy journal is written through a temp file beside it and a rename: a write that fails says so with
// a clear error and leaves nothing behind (regression: a failed rename left `<journal>.<pid>.tmp` in the
// owner's directory, one more per failed run).
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { openJournal } from "@attestmesh/scripts/owner/deployJournal.ts";
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import { testTempDir } from "@attestmesh/shared/testing/tempDir.ts";

const PARAMS = {
  chainId: 31337,
  owner: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
  meshCidr: "10.77.0.0/16",
  kmsRoots: ["0x1111111111111111111111111111111111111111"],
} as const;
const ADDRESS = "0x2222222222222222222222222222222222222222";

describe("the deploy journal file", () => {
  it("records each step in the file and nothing else in its directory", async (t) => {
    const dir = testTempDir(t, "attestmesh-journal-");
    const path = join(dir, "journal.json");
    await openJournal(path, PARAMS).record("Diamond", { address: ADDRESS });
    assert.deepEqual(readdirSync(dir), ["journal.json"]);
    const journal = openJournal(path, PARAMS);
    assert.equal(journal.resumed, true);
    assert.equal(journal.get("Diamond")?.address, ADDRESS);
  });

  it("a write that fails is refused with JournalUnwritable and leaves no temp file", async (t) => {
    const dir = testTempDir(t, "attestmesh-journal-");
    const path = join(dir, "journal.json");
    const journal = openJournal(path, PARAMS);
    // Something takes the journal's path before the first write: the rename over it fails.
    mkdirSync(join(path, "taken"), { recursive: true });
    await assert.rejects(
      journal.record("Diamond", { address: ADDRESS }),
      (error) => isAttestmeshError(error, "JournalUnwritable") && error.message.includes(path),
    );
    assert.deepEqual(readdirSync(dir), ["journal.json"], "no temp file beside the journal");
    assert.deepEqual(readdirSync(path), ["taken"], "what held the path is untouched");
  });

  it("a journal a failed write could not replace is read back as it was", async (t) => {
    const dir = testTempDir(t, "attestmesh-journal-");
    const path = join(dir, "journal.json");
    const journal = openJournal(path, PARAMS);
    await journal.record("Diamond", { address: ADDRESS });
    const before = readFileSync(path, "utf8");
    // The temp file's name taken by a directory: the write fails before the journal is touched.
    mkdirSync(`${path}.${process.pid}.tmp`);
    await assert.rejects(journal.record("Facet", { address: ADDRESS }), (error) =>
      isAttestmeshError(error, "JournalUnwritable"),
    );
    assert.equal(readFileSync(path, "utf8"), before);
  });
});
