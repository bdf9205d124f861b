// The values pinned in the attested compose: read from the app-compose document (its compose file's
// `x-attestmesh` block), defaulting to guest API v0, and never from the environment.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  DEFAULT_PINNED,
  PINNED_ENVIRONMENT_NAMES,
  readPinnedSettings,
  refusePinnedInEnvironment,
} from "@attestmesh/shared/service/pinned.ts";

/** An app-compose.json document around `composeFile`, in the 4-space form dstack's vmm-cli writes. */
const manifest = (composeFile: string): string =>
  JSON.stringify(
    { manifest_version: 2, docker_compose_file: composeFile, runner: "docker-compose" },
    null,
    4,
  );

describe("readPinnedSettings", () => {
  test("reads guest_api from the x-attestmesh block of the compose file", () => {
    const compose = "x-attestmesh:\n  guest_api: v1\nservices:\n  app:\n    image: busybox\n";
    assert.deepEqual(readPinnedSettings(manifest(compose)), { guestApi: "v1" });
    assert.deepEqual(readPinnedSettings(manifest(compose.replace("v1", "v0"))), { guestApi: "v0" });
  });

  test("no block, an empty block, no compose file: today's behaviour, guest API v0", () => {
    assert.deepEqual(DEFAULT_PINNED, { guestApi: "v0" });
    assert.deepEqual(readPinnedSettings(manifest("services: {}\n")), DEFAULT_PINNED);
    assert.deepEqual(readPinnedSettings(manifest("x-attestmesh:\nservices: {}\n")), DEFAULT_PINNED);
    assert.deepEqual(readPinnedSettings(manifest("")), DEFAULT_PINNED);
    assert.deepEqual(readPinnedSettings("{}"), DEFAULT_PINNED);
  });

  test("the block elsewhere (a service's environment, a comment) pins nothing", () => {
    const compose =
      "# x-attestmesh: {guest_api: v1}\nservices:\n  app:\n    environment:\n      x-attestmesh: v1\n";
    assert.deepEqual(readPinnedSettings(manifest(compose)), DEFAULT_PINNED);
  });

  for (const [what, composeFile] of [
    ["an unknown guest API", "x-attestmesh:\n  guest_api: v2\n"],
    ["a guest API written as a number", "x-attestmesh:\n  guest_api: 1\n"],
    ["a misspelt key, which must not fall back to the default", "x-attestmesh:\n  guest-api: v1\n"],
    ["a block that is not a mapping", "x-attestmesh: v1\n"],
    ["a compose file that is not YAML", "x-attestmesh: [\n"],
  ] as const) {
    test(`refuses ${what}`, () => {
      assert.throws(() => readPinnedSettings(manifest(composeFile)), {
        code: "InvalidPinnedCompose",
        retryable: false,
      });
    });
  }

  test("refuses a missing or non-JSON document rather than guessing", () => {
    for (const text of ["", "not json", "[]", '{"docker_compose_file": 7}']) {
      assert.throws(() => readPinnedSettings(text), { code: "InvalidPinnedCompose" }, text);
    }
  });
});

describe("refusePinnedInEnvironment", () => {
  test("an environment without pin variables passes", () => {
    refusePinnedInEnvironment({ ATTESTMESH_RPC_URL: "http://x", PATH: "/bin" });
  });

  for (const name of PINNED_ENVIRONMENT_NAMES) {
    test(`${name} in the environment is refused, naming the compose block`, () => {
      assert.throws(
        () => refusePinnedInEnvironment({ [name]: "v1" }),
        (error: Error & { code?: string; retryable?: boolean }) => {
          assert.equal(error.code, "PinnedSettingInEnvironment");
          assert.equal(error.retryable, false);
          assert.match(error.message, /x-attestmesh\.guest_api/);
          return true;
        },
      );
    });
  }
});
