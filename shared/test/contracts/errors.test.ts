// The cluster's error names come from the ABI, and the names other lists rely on are among them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { CLUSTER_ERROR_NAMES, isClusterErrorName } from "@attestmesh/shared/contracts/errors.ts";
import { CONTRACT_KEY_CHAIN_ERRORS } from "@attestmesh/shared/dstack/verify.ts";

test("every custom error of the ABI, and nothing else, is a cluster error name", () => {
  const fromAbi = clusterAbi.filter((item) => item.type === "error").map((item) => item.name);
  assert.ok(fromAbi.length > 10);
  assert.deepEqual([...CLUSTER_ERROR_NAMES], fromAbi);
  assert.ok(isClusterErrorName("AppIdNotAllowed"));
  assert.ok(!isClusterErrorName("addComposeHash"), "a function name is not an error name");
  assert.ok(!isClusterErrorName("NoSuchError"));
});

test("the key-chain checks the contract makes are cluster errors", () => {
  for (const name of CONTRACT_KEY_CHAIN_ERRORS) assert.ok(isClusterErrorName(name), name);
});
