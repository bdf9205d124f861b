// Per-member daily caps: counted per member key, reset at the UTC day boundary.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createCapLedger } from "../src/caps.ts";

const A = "0x00000000000000000000000000000000000000aA";
const B = "0x00000000000000000000000000000000000000bB";

test("an operation that would pass the daily count or wei cap does not fit", () => {
  const ledger = createCapLedger({ maxOps: 2, maxWei: 100n });
  const noon = new Date("2026-11-30T12:00:00Z");
  assert.equal(ledger.fits(A, 60n, noon), true);
  ledger.record(A, 60n, noon);
  assert.equal(ledger.fits(A, 41n, noon), false, "wei cap");
  assert.equal(ledger.fits(A, 40n, noon), true);
  ledger.record(A, 40n, noon);
  assert.equal(ledger.fits(A, 0n, noon), false, "count cap");
  assert.deepEqual(ledger.usage(A.toLowerCase(), noon), { ops: 2, wei: 100n }, "keys are case-insensitive");
  assert.equal(ledger.fits(B, 100n, noon), true, "caps are per member key");
});

test("a new UTC day starts from zero", () => {
  const ledger = createCapLedger({ maxOps: 1, maxWei: 10n });
  ledger.record(A, 10n, new Date("2026-11-30T23:59:59Z"));
  assert.equal(ledger.fits(A, 1n, new Date("2026-11-30T23:59:59Z")), false);
  assert.equal(ledger.fits(A, 10n, new Date("2026-12-01T00:00:00Z")), true);
});

test("a zero cap sponsors nothing", () => {
  const ledger = createCapLedger({ maxOps: 0, maxWei: 10n ** 18n });
  assert.equal(ledger.fits(A, 0n), false);
});
