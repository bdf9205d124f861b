// The values pinned in the attested compose: read from the app-compose document (its compose file's
// `x-attestmesh` block), defaulting to guest API v0, and never from the environment.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  DEFAULT_PINNED,
  PINNED_ENVIRONMENT_NAMES,
  readPinnedSettings,
  refuseEnvironmentOverride,
  refusePinnedInEnvironment,
  requireTrustPins,
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
          assert.match(error.message, /x-attestmesh\.(guest_api|kms_roots|member_app_implementation)\)/);
          return true;
        },
      );
    });
  }
});

describe("trust pins", () => {
  const cluster: `0x${string}` = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
  const implementation: `0x${string}` = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512";
  const root = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
  const pins = [
    "x-attestmesh:",
    "  guest_api: v0",
    "  chain_id: 31337",
    `  cluster: "${cluster.toLowerCase()}"`,
    `  member_app_implementation: "${implementation}"`,
    `  kms_roots: ["${root}", "${root.toLowerCase()}"]`,
    '  rpc_providers: ["https://mainnet.base.org", "http://127.0.0.1:8545"]',
    "services: {}",
    "",
  ].join("\n");

  test("reads chain id, cluster, member-app implementation, KMS roots (checksummed, deduplicated) and the guest API, beside the RPC providers", () => {
    const settings = readPinnedSettings(manifest(pins));
    assert.deepEqual(requireTrustPins(settings), {
      chainId: 31337,
      cluster,
      memberAppImplementation: implementation,
      kmsRoots: [root],
      guestApi: "v0",
    });
    assert.deepEqual(settings.rpcProviders, ["https://mainnet.base.org", "http://127.0.0.1:8545"]);
  });

  test("the guest API certificates are verified against is the one the compose pins, v0 when absent", () => {
    const v1 = requireTrustPins(readPinnedSettings(manifest(pins.replace("guest_api: v0", "guest_api: v1"))));
    assert.equal(v1.guestApi, "v1");
    const unpinned = pins.replace("  guest_api: v0\n", "");
    assert.doesNotMatch(unpinned, /guest_api/);
    assert.equal(requireTrustPins(readPinnedSettings(manifest(unpinned))).guestApi, "v0");
  });

  test("a compose without them cannot verify anyone: refused, naming each missing key", () => {
    assert.throws(
      () => requireTrustPins(DEFAULT_PINNED),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, "InvalidPinnedCompose");
        for (const key of ["chain_id", "cluster", "member_app_implementation", "kms_roots"]) {
          assert.match(error.message, new RegExp(`x-attestmesh\\.${key}`));
        }
        return true;
      },
    );
  });

  for (const [what, line] of [
    ["an unquoted address (YAML reads it as a number)", `  cluster: ${cluster}`],
    ["an empty KMS root list", "  kms_roots: []"],
    ["a KMS root that is not an address", '  kms_roots: ["0x1234"]'],
    ["a chain id that is not a positive integer", "  chain_id: -1"],
    ["an RPC provider with credentials or a path", '  rpc_providers: ["https://key@host/path"]'],
  ] as const) {
    test(`refuses ${what}`, () => {
      assert.throws(() => readPinnedSettings(manifest(`x-attestmesh:\n${line}\n`)), {
        code: "InvalidPinnedCompose",
      });
    });
  }

  test("the environment may repeat the pinned chain id and cluster, never name others", () => {
    const trust = requireTrustPins(readPinnedSettings(manifest(pins)));
    refuseEnvironmentOverride(trust, { chainId: 31337, cluster: cluster.toLowerCase() as typeof cluster });
    refuseEnvironmentOverride(trust, { chainId: undefined, cluster });
    for (const environment of [
      { chainId: 8453, cluster },
      { chainId: 31337, cluster: implementation },
    ]) {
      assert.throws(() => refuseEnvironmentOverride(trust, environment), { code: "PinnedSettingMismatch" });
    }
  });
});
