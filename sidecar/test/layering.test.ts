// The sidecar's layers point one way. Every file and folder directly under sidecar/src is a room; the
// rooms stand on the floors below, written down once, ground first. A module may import from its own
// room or from a room on a lower floor, never from one on its floor or above, unless EXCEPTIONS names
// the import with its reason. A new room fails this test until it is given a floor. Tests mirror the
// code: test/<path>.test.ts is the test of src/<path>.ts.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "../src");

/** Ground first. A room imports only from its own room and the floors below it. */
const FLOORS: readonly (readonly string[])[] = [
  // Plain data and helpers that import nothing of the sidecar.
  ["errors.ts", "secret.ts", "sleep.ts", "log.ts", "logRepeats.ts", "phase.ts", "model"],
  // Configuration, the daemon's plumbing, the WireGuard driver, metrics, mesh protocol primitives.
  ["config.ts", "shutdown.ts", "backoff.ts", "metrics.ts", "wireguard", "meshnet"],
  // Node keys, peer transport, the indexer intake, heartbeats.
  ["keys.ts", "transport", "intake", "heartbeat", "attestation.ts"],
  // The chain, and the status built from every stage's facts.
  ["chain", "status.ts"],
  // What runs on the chain and the status: reconciling, registering, messages, the CSK, /healthz,
  // member certificates.
  ["reconcile", "register.ts", "messages", "csk", "health.ts", "certs", "reattest"],
  // Assembly: the mesh layer, the application API, the one-membership-at-a-time lifecycle.
  ["mesh", "api", "membership.ts"],
  // The composition root, and the process entry behind it.
  ["main.ts"],
  ["bin.mjs"],
];

/** Imports allowed against the floors, each with its reason ("from -> to", paths under src). */
const EXCEPTIONS: ReadonlyMap<string, string> = new Map<string, string>([]);

/** File pairs that must never be joined by an import, whatever their floors. */
const FORBIDDEN: readonly { readonly from: string; readonly to: RegExp; readonly why: string }[] = [
  {
    from: "wireguard/memory.ts",
    to: /^wireguard\/(wg|process|wireguardGo|stdin|dump)\.ts$/,
    why: "the in-memory backend must not import the real one (processes, wireguard-go, wg(8) output)",
  },
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|mjs)$/.test(name) ? [path] : [];
  });
}

/** Relative imports (static, re-exports and dynamic) of one file, as paths under src. */
function importsOf(file: string): string[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
  return importedFiles
    .map((ref) => ref.fileName)
    .filter((spec) => spec.startsWith("."))
    .map((spec) => posix(relative(SRC, resolve(dirname(file), spec))));
}

const posix = (path: string) => path.split(sep).join("/");
const roomOf = (path: string) => path.split("/")[0] ?? path;

const floorOf = new Map<string, number>();
FLOORS.forEach((rooms, floor) => {
  for (const room of rooms) floorOf.set(room, floor + 1);
});

/** The imports that break the floors, and the exceptions that allowed one. */
function checkFloors(edges: readonly (readonly [string, string])[]): { upward: string[]; used: Set<string> } {
  const upward: string[] = [];
  const used = new Set<string>();
  for (const [path, target] of edges) {
    if (target.startsWith("..")) continue; // another package (shared/), not a room of the sidecar
    const from = roomOf(path);
    const to = roomOf(target);
    if (to === from) continue;
    if ((floorOf.get(to) ?? -1) < (floorOf.get(from) ?? -1)) continue;
    const edge = `${path} -> ${target}`;
    if (EXCEPTIONS.has(edge)) used.add(edge);
    else upward.push(`${edge} (floor ${floorOf.get(from)} -> ${floorOf.get(to)})`);
  }
  return { upward, used };
}

const TESTS = resolve(SRC, "../test");

/** Test files that check the tree as a whole, not one module. */
const WHOLE_TREE_TESTS = new Set(["layering.test.ts", "readme-docs.test.ts"]);

const files = sourceFiles(SRC).map((file) => ({ file, path: posix(relative(SRC, file)) }));

describe("sidecar layering", () => {
  test("every room of sidecar/src stands on exactly one floor", () => {
    const listed = FLOORS.flat();
    assert.equal(new Set(listed).size, listed.length, "a room is listed twice");
    const rooms = [...new Set(files.map((f) => roomOf(f.path)))].sort();
    assert.deepEqual(
      rooms.filter((room) => !floorOf.has(room)),
      [],
      "give these rooms a floor in FLOORS",
    );
    assert.deepEqual(
      listed.filter((room) => !rooms.includes(room)),
      [],
      "these rooms are gone; take them out of FLOORS",
    );
  });

  test("no module imports from its floor or above, except the named exceptions", () => {
    const edges = files.flatMap(({ file, path }) => importsOf(file).map((target) => [path, target] as const));
    const { upward, used } = checkFloors(edges);
    assert.deepEqual(upward, [], "imports that run sideways or up the floors");
    assert.deepEqual(
      [...EXCEPTIONS.keys()].filter((edge) => !used.has(edge)),
      [],
      "exceptions no import needs any more",
    );
  });

  test("forbidden pairs stay apart", () => {
    const found: string[] = [];
    for (const rule of FORBIDDEN) {
      const file = files.find((f) => f.path === rule.from);
      assert.ok(file, `${rule.from} exists`);
      for (const target of importsOf(file.file))
        if (rule.to.test(target)) found.push(`${rule.from} -> ${target}: ${rule.why}`);
    }
    assert.deepEqual(found, []);
  });

  test("the checker itself: an upward or sideways import is caught, a downward one passes", () => {
    // Guards the test: were the reader or the check blind, every test above would pass vacuously.
    assert.deepEqual(checkFloors([["status.ts", "main.ts"]]).upward, ["status.ts -> main.ts (floor 4 -> 7)"]);
    assert.deepEqual(checkFloors([["chain/client.ts", "status.ts"]]).upward, [
      "chain/client.ts -> status.ts (floor 4 -> 4)",
    ]);
    assert.deepEqual(
      checkFloors([
        ["main.ts", "status.ts"],
        ["csk/server.ts", "csk/holder.ts"],
      ]).upward,
      [],
    );
    const main = files.find((f) => f.path === "main.ts");
    assert.ok(main);
    assert.ok(importsOf(main.file).includes("status.ts"));
    assert.ok((floorOf.get("status.ts") ?? 99) < (floorOf.get("main.ts") ?? -1));
    const bin = files.find((f) => f.path === "bin.mjs");
    assert.ok(bin && importsOf(bin.file).includes("main.ts"), "dynamic and .mjs imports are read");
  });

  test("tests mirror the code: test/<path>.test.ts tests src/<path>.ts", () => {
    const sources = new Set(files.map((f) => f.path));
    const strays = sourceFiles(TESTS)
      .map((file) => posix(relative(TESTS, file)))
      .filter((path) => path.endsWith(".test.ts") && !WHOLE_TREE_TESTS.has(path))
      .filter((path) => !sources.has(path.replace(/\.test\.ts$/, ".ts")));
    assert.deepEqual(strays, [], "name each test file after the module it tests, in the same folder");
  });
});
