// The chain-id check: a wrong chain is fatal, an RPC that does not answer is retryable.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AttestmeshError, isAttestmeshError } from "@attestmesh/shared/errors.ts";
import { checkChainId } from "@attestmesh/shared/service/chainId.ts";

const names = { rpcVariable: "X_RPC_URL", chainIdVariable: "X_CHAIN_ID" };

test("the RPC's chain id is returned when it matches, or when none is expected", async () => {
  assert.equal(await checkChainId({ ...names, getChainId: async () => 8453, expected: 8453 }), 8453);
  assert.equal(await checkChainId({ ...names, getChainId: async () => 31337, expected: undefined }), 31337);
});

test("an RPC on another chain is refused as fatal, naming both settings", async () => {
  await assert.rejects(
    checkChainId({ ...names, getChainId: async () => 31337, expected: 8453 }),
    (error: unknown) =>
      isAttestmeshError(error, "ChainIdMismatch") &&
      !error.retryable &&
      /chain 31337/.test(error.message) &&
      /X_RPC_URL/.test(error.message) &&
      /X_CHAIN_ID is 8453/.test(error.message),
  );
});

test("an RPC that does not answer is retryable", async () => {
  await assert.rejects(
    checkChainId({ ...names, getChainId: () => Promise.reject(new Error("ECONNREFUSED")), expected: 1 }),
    (error: unknown) => isAttestmeshError(error, "RpcUnavailable") && error.retryable,
  );
});

test("a tool may word the errors itself", async () => {
  await assert.rejects(
    checkChainId({
      ...names,
      getChainId: async () => 1,
      expected: 2,
      mismatch: (actual, expected) =>
        new AttestmeshError(`want ${expected}, got ${actual}`, { code: "ChainIdMismatch" }),
    }),
    /want 2, got 1/,
  );
});
