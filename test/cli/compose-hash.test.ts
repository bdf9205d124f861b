// `attestmesh compose-hash` prints sha256 of the app-compose.json's exact bytes, which is what a dstack CVM
// measures: on 23 real app-compose files with the hash their CVM measured (none of them in normalised form,
// so the SDK's getComposeHash matches none), on the manifests this repository ships, and on files with a
// trailing newline, CRLF or a BOM. It flags a file that is not in dstack's normalised form, and offers the
// normalised hash (`--normalised`, `normalisedComposeHash`), which matches the SDK's golden vectors.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { composeHashArgument } from "@attestmesh/scripts/owner/composeHash.ts";
import { SIMULATOR_APP_COMPOSE_FILE } from "../fixtures/dstack/fixtures.ts";
import { runAttestmesh } from "../helpers/cli.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const FIXTURES = join(ROOT, "test", "fixtures", "compose-hash");
const dir = mkdtempSync(join(tmpdir(), "attestmesh-compose-"));
after(() => rmSync(dir, { recursive: true, force: true }));

interface RealPair {
  readonly source: string;
  readonly name: string;
  readonly measuredComposeHash: string;
  readonly appCompose: string;
}
interface SdkVector {
  readonly name: string;
  readonly normalize: boolean;
  readonly compose?: Record<string, unknown>;
  readonly raw?: string;
  readonly hash: string;
}
interface HashJson {
  readonly file: string;
  readonly composeHash: string;
  readonly normalised: boolean;
  readonly normalisedComposeHash: string;
  readonly differences: string[];
}

const realPairs = (
  JSON.parse(readFileSync(join(FIXTURES, "real-pairs.json"), "utf8")) as { pairs: RealPair[] }
).pairs;
const sdkVectors = (
  JSON.parse(readFileSync(join(FIXTURES, "sdk-normalised-vectors.json"), "utf8")) as { vectors: SdkVector[] }
).vectors;

/** sha256 of bytes, computed here with node:crypto, independently of the code under test. */
const sha256 = (bytes: Uint8Array | string) => `0x${createHash("sha256").update(bytes).digest("hex")}`;

let fileCount = 0;
function writeCompose(bytes: Uint8Array | string): string {
  const path = join(dir, `compose-${fileCount++}.json`);
  writeFileSync(path, bytes);
  return path;
}

async function cliHash(path: string, ...flags: string[]): Promise<{ hash: string; stderr: string }> {
  const run = await runAttestmesh(["compose-hash", path, ...flags], {});
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^0x[0-9a-f]{64}\n$/, "stdout holds the hash alone");
  return { hash: run.stdout.trim(), stderr: run.stderr };
}

async function cliJson(path: string): Promise<HashJson> {
  const run = await runAttestmesh(["compose-hash", path, "--json"], {});
  assert.equal(run.code, 0, run.stderr);
  return run.json<HashJson & Record<string, unknown>>();
}

describe("attestmesh compose-hash: the sha256 of the file's bytes", () => {
  it("the fixtures are whole: 23 real pairs, 13 SDK vectors", () => {
    assert.equal(realPairs.length, 23);
    assert.equal(sdkVectors.length, 13);
  });

  for (const pair of realPairs) {
    it(`real deployment ${pair.name} (${pair.source.slice(7, 60)}…): prints the hash its CVM measured`, async () => {
      const bytes = Buffer.from(pair.appCompose, "utf8");
      const measured = `0x${pair.measuredComposeHash}`;
      assert.equal(sha256(bytes), measured, "the fixture: the measured hash is sha256 of the bytes");
      const path = writeCompose(bytes);

      const { hash, stderr } = await cliHash(path);
      assert.equal(hash, measured);
      // None of these files is in normalised form: the CLI says so and names both hashes.
      const json = await cliJson(path);
      assert.equal(json.composeHash, measured);
      assert.equal(json.normalised, false);
      assert.notEqual(
        json.normalisedComposeHash,
        measured,
        "the normalised hash is not what the CVM measured",
      );
      assert.ok(json.differences.length > 0);
      assert.match(stderr, /is not in dstack's normalised form/);
      assert.ok(stderr.includes(measured) && stderr.includes(json.normalisedComposeHash), stderr);
      assert.equal((await cliHash(path, "--normalised")).hash, json.normalisedComposeHash);
      // allow/deny compose and check --compose read a file the same way.
      assert.equal(composeHashArgument(path), measured);
    });
  }

  for (const vector of sdkVectors) {
    it(`SDK vector "${vector.name}": the normalised hash`, async () => {
      // As a tool other than the SDK would write it: indented, so its bytes are not the normalised form.
      const text = vector.raw ?? JSON.stringify(vector.compose, null, 4);
      const path = writeCompose(text);
      const json = await cliJson(path);
      assert.equal(json.composeHash, sha256(text), "the compose hash stays the hash of the bytes");
      assert.equal(json.normalised, false);
      const { hash: normalised, stderr } = await cliHash(path, "--normalised");
      assert.equal(normalised, json.normalisedComposeHash);
      assert.match(stderr, /Used the hash of its normalised form/);
      if (!vector.normalize) {
        assert.equal(normalised, `0x${vector.hash}`);
      } else {
        // The vector is of the SDK's preprocessing (getComposeHash(…, true)), which drops fields
        // (docker_compose_file of a bash runner, bash_script of a docker-compose runner, an empty
        // pre_launch_script). The CLI never changes the content it hashes: the normalised form keeps
        // every field of the file, so the dropped field still counts.
        assert.notEqual(normalised, `0x${vector.hash}`);
      }
    });
  }

  for (const target of ["node", "indexer"]) {
    it(`deploy/${target}/app-compose.json is in normalised form: both hashes agree, no note`, async () => {
      const path = join(ROOT, "deploy", target, "app-compose.json");
      const { hash, stderr } = await cliHash(path);
      assert.equal(hash, sha256(readFileSync(path)));
      assert.equal(stderr, "");
      assert.deepEqual(await cliJson(path), {
        file: path,
        composeHash: hash,
        normalised: true,
        normalisedComposeHash: hash,
        differences: [],
      });
      assert.equal((await cliHash(path, "--normalised")).hash, hash);
    });
  }

  it("an indented copy of a normalised file is flagged, and its normalised hash is the original's", async () => {
    const original = readFileSync(join(ROOT, "deploy", "node", "app-compose.json"), "utf8");
    const indented = writeCompose(JSON.stringify(JSON.parse(original), null, 4));
    const json = await cliJson(indented);
    assert.equal(json.normalised, false);
    assert.equal(json.composeHash, sha256(readFileSync(indented)));
    assert.equal(json.normalisedComposeHash, sha256(original));
    assert.deepEqual(json.differences, [
      "has whitespace (e.g. indentation), escapes or number spellings that the normalised form has not",
    ]);
  });

  it("keys out of order are flagged, and array order is part of both hashes", async () => {
    const a = writeCompose('{"runner":"docker-compose","allowed_envs":["B","A"]}');
    const b = writeCompose('{"allowed_envs":["A","B"],"runner":"docker-compose"}');
    const ja = await cliJson(a);
    assert.deepEqual(ja.differences, ["has keys out of sorted order"]);
    const jb = await cliJson(b);
    assert.equal(jb.normalised, true);
    assert.notEqual(ja.normalisedComposeHash, jb.normalisedComposeHash);
  });

  describe("pathological bytes are hashed as they are", () => {
    const normalisedText = readFileSync(join(ROOT, "deploy", "indexer", "app-compose.json"), "utf8");
    const normalisedHash = sha256(normalisedText);
    const cases: readonly [string, Buffer, readonly string[]][] = [
      ["a trailing newline", Buffer.from(`${normalisedText}\n`), ["ends with a newline"]],
      [
        "CRLF line endings",
        Buffer.from(`${JSON.stringify(JSON.parse(normalisedText), null, 2).replaceAll("\n", "\r\n")}\r\n`),
        [
          "has CR (CRLF) line endings",
          "ends with a newline",
          "has whitespace (e.g. indentation), escapes or number spellings that the normalised form has not",
        ],
      ],
      [
        "a UTF-8 byte order mark",
        Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(normalisedText)]),
        ["starts with a UTF-8 byte order mark"],
      ],
    ];
    for (const [name, bytes, differences] of cases) {
      it(name, async () => {
        const path = writeCompose(bytes);
        const { hash, stderr } = await cliHash(path);
        assert.equal(hash, sha256(bytes));
        assert.notEqual(hash, normalisedHash);
        const json = await cliJson(path);
        assert.equal(json.normalised, false);
        assert.equal(json.normalisedComposeHash, normalisedHash, "the same content, normalised");
        assert.deepEqual(json.differences, differences);
        for (const difference of differences) assert.ok(stderr.includes(difference), stderr);
      });
    }
  });

  it("dstack's own simulator app-compose.json: the bytes, flagged as not normalised", async () => {
    const fixture = SIMULATOR_APP_COMPOSE_FILE;
    const json = await cliJson(fixture);
    assert.equal(json.composeHash, sha256(readFileSync(fixture)));
    assert.equal(json.normalised, false);
  });

  it("refuses what is not an app-compose.json, with a clear message", async () => {
    const notJson = writeCompose("{ runner: docker-compose");
    const array = writeCompose("[]");
    const noRunner = writeCompose(JSON.stringify({ name: "x" }));
    const notUtf8 = writeCompose(Buffer.from([0x7b, 0xff, 0x7d]));
    for (const [path, message] of [
      [join(dir, "missing.json"), /does not exist/],
      [dir, /is not a file/],
      [notJson, /is not valid JSON/],
      [array, /must hold a JSON object/],
      [noRunner, /no "runner"/],
      [notUtf8, /is not UTF-8 text/],
    ] as const) {
      for (const flags of [[], ["--json"], ["--normalised"]]) {
        const run = await runAttestmesh(["compose-hash", path, ...flags], {});
        assert.equal(run.code, 1);
        const said = flags.includes("--json")
          ? run.json<{ error: { code: string; message: string } }>().error.message
          : run.stderr;
        assert.match(said, message);
        if (!flags.includes("--json")) assert.equal(run.stdout, "");
      }
    }
  });
});
