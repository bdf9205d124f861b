// The factories: retryable and fatal, codes from the package's list, and how unknown errors retry.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { errorFactories, isRetryable } from "@attestmesh/shared/service/errors.ts";

const CODES = ["Down", "Broken"] as const;
const { retryableError, fatalError } = errorFactories(CODES);

test("retryable and fatal errors carry their code, details and cause", () => {
  const cause = new Error("socket hang up");
  const retry = retryableError("Down", "the RPC is down; retrying", { cause, details: { url: "x" } });
  assert.ok(retry instanceof AttestmeshError);
  assert.equal(retry.code, "Down");
  assert.equal(retry.retryable, true);
  assert.equal(retry.cause, cause);
  assert.deepEqual(retry.details, { url: "x" });
  const fatal = fatalError("Broken", "fix the config");
  assert.equal(fatal.retryable, false);
  assert.deepEqual(fatal.details, {});
  // @ts-expect-error a code outside the package's list does not compile
  retryableError("NotAListedCode", "x");
});

test("isRetryable: our errors say so; anything unknown is treated as I/O", () => {
  assert.equal(isRetryable(retryableError("Down", "x")), true);
  assert.equal(isRetryable(fatalError("Broken", "x")), false);
  assert.equal(isRetryable(new Error("ECONNRESET")), true);
});
