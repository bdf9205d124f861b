// The RPC providers a node may read from: pinned hosts in the attested compose (https outside a local
// development chain), credentials only for those hosts from the environment, and a majority quorum.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { readPinnedSettings } from "@attestmesh/shared/service/pinned.ts";
import {
  majority,
  parsePinnedRpcProviders,
  resolveRpcProviders,
} from "@attestmesh/shared/service/rpcProviders.ts";

const manifest = (composeFile: string): string =>
  JSON.stringify({ manifest_version: 2, docker_compose_file: composeFile, runner: "docker-compose" });

const BASE = ["https://mainnet.base.org", "https://base-mainnet.g.alchemy.com", "https://base.llamarpc.com"];

describe("pinned RPC providers", () => {
  test("read from the compose with the chain id, as origins", () => {
    const pinned = readPinnedSettings(
      manifest(
        "x-attestmesh:\n  chain_id: 8453\n  rpc_providers:\n    - https://mainnet.base.org/\n    - https://Base-Mainnet.g.alchemy.com\nservices: {}\n",
      ),
    );
    assert.equal(pinned.chainId, 8453);
    assert.deepEqual(pinned.rpcProviders, ["https://mainnet.base.org", "https://base-mainnet.g.alchemy.com"]);
  });

  for (const [what, value, chainId] of [
    ["plain http on Base", ["http://mainnet.base.org"], 8453],
    ["a path (an API key belongs in the environment)", ["https://base-mainnet.g.alchemy.com/v2/KEY"], 8453],
    ["a query", ["https://rpc.example?key=1"], 8453],
    ["credentials in the URL", ["https://user:pass@rpc.example"], 8453],
    ["another scheme", ["wss://rpc.example"], 8453],
    ["a duplicate", ["https://rpc.example", "https://RPC.example/"], 8453],
    ["an empty list", [], 8453],
    ["not a list", "https://rpc.example", 8453],
    ["no pinned chain id", ["https://rpc.example"], undefined],
  ] as const) {
    test(`refuses ${what}`, () => {
      assert.throws(() => parsePinnedRpcProviders(value, chainId), { code: "InvalidPinnedCompose" });
    });
  }

  test("plain http only on a local development chain (the devnet)", () => {
    assert.deepEqual(parsePinnedRpcProviders(["http://127.0.0.1:8545", "http://127.0.0.1:8546"], 31337), [
      "http://127.0.0.1:8545",
      "http://127.0.0.1:8546",
    ]);
  });

  test("a chain id that is not a positive integer is refused", () => {
    for (const bad of ["8453", -1, 0, 1.5]) {
      assert.throws(
        () => readPinnedSettings(manifest(`x-attestmesh:\n  chain_id: ${JSON.stringify(bad)}\n`)),
        { code: "InvalidPinnedCompose" },
      );
    }
  });
});

describe("resolveRpcProviders", () => {
  test("every pinned host is used; the environment adds credentials to the ones it names", () => {
    const providers = resolveRpcProviders(
      BASE,
      ["https://base-mainnet.g.alchemy.com/v2/SECRETKEY"],
      "ATTESTMESH_RPC_URLS",
    );
    assert.deepEqual(providers, [
      { origin: "https://mainnet.base.org", url: "https://mainnet.base.org" },
      {
        origin: "https://base-mainnet.g.alchemy.com",
        url: "https://base-mainnet.g.alchemy.com/v2/SECRETKEY",
      },
      { origin: "https://base.llamarpc.com", url: "https://base.llamarpc.com" },
    ]);
  });

  test("an unpinned host in the environment is a startup error that names its origin, never its key", () => {
    for (const url of [
      "https://operator-rpc.example/v2/SECRETKEY",
      "http://mainnet.base.org/SECRETKEY", // right host, wrong scheme: another origin
      "https://mainnet.base.org:8443/SECRETKEY", // right host, another port
    ]) {
      assert.throws(
        () => resolveRpcProviders(BASE, [url], "ATTESTMESH_RPC_URLS"),
        (error: Error & { code?: string; retryable?: boolean }) => {
          assert.equal(error.code, "RpcProviderNotPinned");
          assert.equal(error.retryable, false);
          assert.match(error.message, /not one of the RPC providers the attested compose pins/);
          assert.ok(!error.message.includes("SECRETKEY"));
          return true;
        },
      );
    }
  });

  test("two URLs for one pinned host are refused", () => {
    assert.throws(
      () =>
        resolveRpcProviders(
          BASE,
          ["https://mainnet.base.org/a", "https://mainnet.base.org/b"],
          "ATTESTMESH_RPC_URLS",
        ),
      { code: "RpcProviderNotPinned" },
    );
  });

  test("no pinned providers at all is a startup error, whatever the environment says", () => {
    assert.throws(() => resolveRpcProviders([], ["https://mainnet.base.org"], "ATTESTMESH_RPC_URLS"), {
      code: "RpcProvidersNotPinned",
    });
  });

  test("the default quorum is a strict majority", () => {
    assert.deepEqual([1, 2, 3, 4, 5].map(majority), [1, 2, 2, 3, 3]);
  });
});
