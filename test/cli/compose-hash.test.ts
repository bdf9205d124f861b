// `attestmesh compose-hash` equals getComposeHash of @phala/dstack-sdk on every manifest this repository
// ships, on dstack's own fixture, and on manifests whose key order, escapes and Unicode differ; and
// `allow compose <file>` hashes the same way.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { composeHashArgument } from "@attestmesh/scripts/owner/composeHash.ts";
import { getComposeHash } from "@phala/dstack-sdk/get-compose-hash";
import { runAttestmesh } from "../helpers/cli.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "attestmesh-compose-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function cliHash(path: string): Promise<string> {
  const run = await runAttestmesh(["compose-hash", path], {});
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^0x[0-9a-f]{64}\n$/);
  return run.stdout.trim();
}

const sdkHash = (path: string) => `0x${getComposeHash(JSON.parse(readFileSync(path, "utf8")))}`;

describe("attestmesh compose-hash", () => {
  for (const target of ["node", "indexer"]) {
    it(`deploy/${target}/app-compose.json: the SDK's hash, and the sha256 of the file's bytes`, async () => {
      const path = join(ROOT, "deploy", target, "app-compose.json");
      const hash = await cliHash(path);
      assert.equal(hash, sdkHash(path));
      const { createHash } = await import("node:crypto");
      assert.equal(hash, `0x${createHash("sha256").update(readFileSync(path)).digest("hex")}`);
    });
  }

  it("dstack's own simulator app-compose.json", async (t) => {
    const fixture = join(ROOT, "..", "shared", "fixtures", "dstack-simulator", "app-compose.json");
    if (!existsSync(fixture))
      return t.skip(`the design folder's fixture is not beside the repository (${fixture})`);
    assert.equal(await cliHash(fixture), sdkHash(fixture));
  });

  it("manifests that differ only in key order and whitespace hash alike, and as the SDK says", async () => {
    const a = {
      runner: "docker-compose",
      name: "ü-app ✓",
      docker_compose_file: 'services:\n  a: {image: "x\\y"}\n',
      allowed_envs: ["B", "A"],
      kms_enabled: true,
    };
    const b = {
      kms_enabled: true,
      allowed_envs: ["B", "A"],
      docker_compose_file: a.docker_compose_file,
      name: a.name,
      runner: a.runner,
    };
    const fa = join(dir, "a.json");
    const fb = join(dir, "b.json");
    writeFileSync(fa, JSON.stringify(a));
    writeFileSync(fb, JSON.stringify(b, null, 4));
    const ha = await cliHash(fa);
    assert.equal(ha, await cliHash(fb));
    assert.equal(ha, `0x${getComposeHash(a)}`);
    const c = join(dir, "c.json");
    writeFileSync(c, JSON.stringify({ ...a, allowed_envs: ["A", "B"] }));
    assert.notEqual(await cliHash(c), ha, "array order is part of the hash");
  });

  it("allow compose <file> and compose-hash agree", () => {
    const path = join(ROOT, "deploy", "node", "app-compose.json");
    assert.equal(composeHashArgument(path), sdkHash(path));
  });

  it("refuses what is not an app-compose.json, with a clear message", async () => {
    const notJson = join(dir, "bad.json");
    writeFileSync(notJson, "{ runner: docker-compose");
    const array = join(dir, "array.json");
    writeFileSync(array, "[]");
    const noRunner = join(dir, "norunner.json");
    writeFileSync(noRunner, JSON.stringify({ name: "x" }));
    for (const [path, message] of [
      [join(dir, "missing.json"), /does not exist/],
      [dir, /is not a file/],
      [notJson, /is not valid JSON/],
      [array, /must hold a JSON object/],
      [noRunner, /no "runner"/],
    ] as const) {
      const run = await runAttestmesh(["compose-hash", path], {});
      assert.equal(run.code, 1);
      assert.equal(run.stdout, "");
      assert.match(run.stderr, message);
    }
  });
});
