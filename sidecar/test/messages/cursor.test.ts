// The message cursor file and the dedup set: round trips, every malformed field refused, atomic
// writes with nothing secret or left behind, bounded memory.
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Address } from "viem";
import { AttestmeshError } from "../../src/errors.ts";
import {
  type CursorScope,
  createFileCursorStore,
  createMemoryCursorStore,
  cursorFileName,
  parseCursor,
} from "../../src/messages/cursor.ts";
import { createRecentEnvelopes, envelopeKey } from "../../src/messages/dedup.ts";

const SCOPE: CursorScope = {
  chainId: 31337,
  cluster: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
  appId: "0x00000000000000000000000000000000000000aA" as Address,
};
const ID = `0x${"ab".repeat(32)}`;

describe("message cursor store", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "am-cursor-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test("no file yet loads as undefined; a saved cursor loads back; the file is 0600 and alone", async () => {
    const stateDir = join(dir, "a", "state");
    const store = createFileCursorStore(stateDir, SCOPE);
    assert.equal(await store.load(), undefined);
    await store.save({ block: 41n, recent: [envelopeKey(1n, 2n, ID)] });
    await store.save({
      block: 42n,
      recent: [envelopeKey(1n, 2n, ID), envelopeKey(1n, 2n, `0x${"cd".repeat(32)}`)],
    });
    assert.deepEqual(await store.load(), {
      block: 42n,
      recent: [`1:2:${ID}`, `1:2:0x${"cd".repeat(32)}`],
    });
    assert.deepEqual(await readdir(stateDir), [cursorFileName(SCOPE)], "no temp file left behind");
    assert.equal((await stat(store.path!)).mode & 0o777, 0o600);
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
    const text = await readFile(store.path!, "utf8");
    assert.deepEqual(Object.keys(JSON.parse(text)).sort(), [
      "appId",
      "block",
      "chainId",
      "cluster",
      "recent",
      "version",
    ]);
  });

  test("each chain, cluster and app id has its own file", () => {
    const names = new Set([
      cursorFileName(SCOPE),
      cursorFileName({ ...SCOPE, chainId: 8453 }),
      cursorFileName({ ...SCOPE, cluster: "0x0000000000000000000000000000000000000001" }),
      cursorFileName({ ...SCOPE, appId: "0x0000000000000000000000000000000000000002" }),
    ]);
    assert.equal(names.size, 4);
  });

  const good = {
    version: 1,
    chainId: SCOPE.chainId,
    cluster: SCOPE.cluster.toLowerCase(),
    appId: SCOPE.appId,
    block: "7",
    recent: [`3:${ID}`],
  };

  test("a well-formed file parses (addresses in any case)", () => {
    assert.deepEqual(parseCursor(JSON.stringify(good), SCOPE, "f"), { block: 7n, recent: [`3:${ID}`] });
  });

  test("sender-keyed entries parse, beside entries of files written before delivery was keyed by sender", () => {
    const mixed = { ...good, recent: [`3:${ID}`, `5:3:${ID}`] };
    assert.deepEqual(parseCursor(JSON.stringify(mixed), SCOPE, "f"), {
      block: 7n,
      recent: [`3:${ID}`, `5:3:${ID}`],
    });
  });

  const BAD: Array<[string, string, RegExp]> = [
    ["not JSON", "{", /not JSON/],
    ["an array", "[]", /not an object/],
    ["null", "null", /not an object/],
    ["version", JSON.stringify({ ...good, version: 2 }), /version 2/],
    ["version missing", JSON.stringify({ ...good, version: undefined }), /version undefined/],
    ["chain", JSON.stringify({ ...good, chainId: 1 }), /chain 1/],
    ["chain as text", JSON.stringify({ ...good, chainId: "31337" }), /chain 31337/],
    [
      "cluster",
      JSON.stringify({ ...good, cluster: "0x0000000000000000000000000000000000000001" }),
      /another cluster/,
    ],
    ["cluster garbage", JSON.stringify({ ...good, cluster: "cluster" }), /another cluster/],
    [
      "app id",
      JSON.stringify({ ...good, appId: "0x0000000000000000000000000000000000000001" }),
      /another app id/,
    ],
    ["block number", JSON.stringify({ ...good, block: 7 }), /no decimal block/],
    ["block negative", JSON.stringify({ ...good, block: "-1" }), /no decimal block/],
    ["block hex", JSON.stringify({ ...good, block: "0x7" }), /no decimal block/],
    ["recent missing", JSON.stringify({ ...good, recent: undefined }), /recent-envelope/],
    ["recent entry", JSON.stringify({ ...good, recent: ["3:0x12"] }), /recent-envelope/],
    ["recent uppercase", JSON.stringify({ ...good, recent: [`3:${ID.toUpperCase()}`] }), /recent-envelope/],
    ["recent number", JSON.stringify({ ...good, recent: [3] }), /recent-envelope/],
    ["recent extra part", JSON.stringify({ ...good, recent: [`1:5:3:${ID}`] }), /recent-envelope/],
  ];
  for (const [what, text, expected] of BAD) {
    test(`a cursor file with a bad ${what} is CursorCorrupt`, () => {
      try {
        parseCursor(text, SCOPE, "/state/cursor.json");
        assert.fail("expected a refusal");
      } catch (error) {
        assert.ok(error instanceof AttestmeshError);
        assert.equal(error.code, "CursorCorrupt");
        assert.match(error.message, expected);
        assert.match(error.message, /\/state\/cursor\.json/);
      }
    });
  }

  test("load reports a corrupt file rather than guessing", async () => {
    const store = createFileCursorStore(join(dir, "b"), SCOPE);
    await store.save({ block: 1n, recent: [] });
    await writeFile(store.path!, "garbage");
    await assert.rejects(
      store.load(),
      (e: unknown) => e instanceof AttestmeshError && e.code === "CursorCorrupt",
    );
  });

  test("an unwritable state directory is a retryable CursorUnwritable, and leaves nothing", async () => {
    const file = join(dir, "not-a-dir");
    await writeFile(file, "x");
    const store = createFileCursorStore(join(file, "state"), SCOPE);
    await assert.rejects(
      store.save({ block: 1n, recent: [] }),
      (e: unknown) => e instanceof AttestmeshError && e.code === "CursorUnwritable" && e.retryable,
    );
  });

  test("the memory store keeps the last cursor for the process's life", async () => {
    const store = createMemoryCursorStore();
    assert.equal(store.path, undefined);
    assert.equal(await store.load(), undefined);
    const recent = [`1:${ID}`];
    await store.save({ block: 5n, recent });
    recent.push("mutated");
    assert.deepEqual(await store.load(), { block: 5n, recent: [`1:${ID}`] });
  });
});

describe("recent envelopes (dedup)", () => {
  test("the first sighting is new, every later one a duplicate", () => {
    const recent = createRecentEnvelopes(10);
    assert.equal(recent.add("a"), true);
    assert.equal(recent.add("a"), false);
    assert.equal(recent.has("a"), true);
    assert.equal(recent.has("b"), false);
    assert.equal(recent.size, 1);
  });

  test("bounded: the oldest ids are forgotten first", () => {
    const recent = createRecentEnvelopes(3);
    for (const key of ["a", "b", "c", "d"]) recent.add(key);
    assert.deepEqual(recent.toArray(), ["b", "c", "d"]);
    assert.equal(recent.has("a"), false);
    assert.equal(recent.add("b"), false, "a duplicate does not refresh or reorder");
    assert.deepEqual(recent.toArray(), ["b", "c", "d"]);
  });

  test("restores in order, keeping the newest when the list exceeds the capacity", () => {
    const recent = createRecentEnvelopes(2, ["a", "b", "c", "c"]);
    assert.deepEqual(recent.toArray(), ["b", "c"]);
  });

  test("the key ignores the case of the envelope id and separates recipients", () => {
    assert.equal(envelopeKey(1n, 2n, ID.toUpperCase().replace("0X", "0x")), envelopeKey(1n, 2n, ID));
    assert.notEqual(envelopeKey(1n, 2n, ID), envelopeKey(1n, 3n, ID));
    // Issue 13: the chain keys delivery by sender too, so another sender's same id is another message.
    assert.notEqual(envelopeKey(1n, 2n, ID), envelopeKey(4n, 2n, ID));
  });

  test("a capacity below 1 is refused", () => {
    assert.throws(() => createRecentEnvelopes(0), RangeError);
  });
});
