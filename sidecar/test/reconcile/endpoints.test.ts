import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { describe, test } from "node:test";
import { suiteTempDir } from "@attestmesh/shared/testing/tempDir.ts";
import { createEndpointsFile, isEndpoint, parseEndpoints } from "../../src/reconcile/endpoints.ts";
import { captureLogger } from "../helpers.ts";

const A = "0x00000000000000000000000000000000000000aA";
const B = "0x00000000000000000000000000000000000000bb";

describe("endpoints", () => {
  test("isEndpoint", () => {
    for (const good of ["10.0.0.1:51820", "node-1.devnet:1", "[fd00::1]:65535", "localhost:443"]) {
      assert.ok(isEndpoint(good), good);
    }
    for (const bad of [
      "10.0.0.1",
      "10.0.0.1:0",
      "10.0.0.1:65536",
      "fd00::1:51820",
      "-x:1",
      "a b:1",
      ":51820",
    ]) {
      assert.ok(!isEndpoint(bad), bad);
    }
  });

  test("parseEndpoints keys by lowercase app id and drops bad entries with reasons", () => {
    const { endpoints, problems } = parseEndpoints(
      JSON.stringify({ [A]: "10.0.0.1:51820", [B]: "nope", "not-an-app": "10.0.0.2:1", "0xcc": 5 }),
    );
    assert.deepEqual([...endpoints], [[A.toLowerCase(), "10.0.0.1:51820"]]);
    assert.equal(problems.length, 3);
    assert.throws(() => parseEndpoints("[]"), { code: "InvalidEndpointsFile" });
    assert.throws(() => parseEndpoints("{"), { code: "InvalidEndpointsFile" });
  });

  describe("createEndpointsFile", () => {
    const inTempDir = suiteTempDir("am-endpoints-");

    test("no path: always empty", async () => {
      const source = createEndpointsFile(undefined, captureLogger().logger);
      assert.equal((await source.read()).size, 0);
    });

    test("re-reads every call, keeps the last good map on a broken file, logs each problem once", async () => {
      const path = inTempDir("endpoints.json");
      const { logger, lines } = captureLogger();
      const source = createEndpointsFile(path, logger);
      assert.equal((await source.read()).size, 0, "missing file: empty");
      await source.read();
      assert.equal(lines().filter((l) => l.problem === "missing (not written yet?)").length, 1);

      await writeFile(path, JSON.stringify({ [A]: "10.0.0.1:51820" }));
      assert.equal((await source.read()).get(A.toLowerCase()), "10.0.0.1:51820");

      await writeFile(path, "{ half written");
      assert.equal((await source.read()).get(A.toLowerCase()), "10.0.0.1:51820", "last good kept");
      await source.read();
      assert.equal(lines().filter((l) => /not valid JSON/.test(String(l.problem))).length, 1);

      await writeFile(path, JSON.stringify({ [B]: "10.0.0.2:51820" }));
      const now = await source.read();
      assert.equal(now.get(B.toLowerCase()), "10.0.0.2:51820");
      assert.equal(now.get(A.toLowerCase()), undefined);
    });
  });
});
