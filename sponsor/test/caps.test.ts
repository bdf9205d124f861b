// The cap ledger: per-member daily caps over paid spends plus live reservations, kept in SQLite so a
// restart changes nothing, and checked-and-recorded in one transaction so concurrent approvals (even
// from several processes on one file) never pass a cap.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { fileTempDir } from "@attestmesh/shared/testing/tempDir.ts";
import { createCapLedger, type PaidOperation, STALLED_RESERVATION_SECONDS } from "../src/caps.ts";

const A = "0x00000000000000000000000000000000000000aA";
const B = "0x00000000000000000000000000000000000000bB";
const ACCOUNT = "0x000000000000000000000000000000000000aCC7";
const NOON = new Date("2026-11-30T12:00:00Z");
const NOON_S = Math.floor(NOON.getTime() / 1000);

const dir = fileTempDir("attestmesh-caps-");
let dbs = 0;
/** A fresh ledger file for one test (with its SQLite journal files, in a directory removed after the last test). */
function tempDb(): string {
  return join(dir, `state-${++dbs}.sqlite`);
}

function reservation(owner: string, nonce: bigint, maxCost: bigint, validUntil = NOON_S + 300) {
  return { owner, sender: ACCOUNT, nonce, maxCost, validUntil };
}

function paid(nonce: bigint, actualGasCost: bigint, blockNumber: bigint, extra: Partial<PaidOperation> = {}) {
  return {
    userOpHash: `0x${nonce.toString(16).padStart(64, "0")}`,
    sender: ACCOUNT,
    nonce,
    success: true,
    actualGasCost,
    blockNumber,
    blockTimestamp: NOON_S + 10,
    txHash: `0x${"ab".repeat(32)}`,
    ...extra,
  };
}

test("a reservation that would pass the daily count or wei cap is refused and records nothing", () => {
  const ledger = createCapLedger({ maxOps: 2, maxWei: 100n });
  assert.deepEqual(ledger.reserve(reservation(A, 0n, 60n), NOON), { ok: true });
  assert.deepEqual(ledger.reserve(reservation(A, 1n, 41n), NOON), { ok: false, usage: { ops: 1, wei: 60n } });
  assert.deepEqual(ledger.reserve(reservation(A, 1n, 40n), NOON), { ok: true });
  assert.equal(ledger.reserve(reservation(A, 2n, 0n), NOON).ok, false, "count cap");
  assert.deepEqual(ledger.usage(A.toLowerCase(), NOON), { ops: 2, wei: 100n }, "keys are case-insensitive");
  assert.equal(ledger.fits(B, 100n, NOON), true, "caps are per member key");
});

test("asking again for the same account nonce replaces the reservation: only one of them can be paid", () => {
  const ledger = createCapLedger({ maxOps: 1, maxWei: 100n });
  for (let i = 0; i < 5; i++) assert.equal(ledger.reserve(reservation(A, 7n, 90n), NOON).ok, true);
  assert.deepEqual(ledger.usage(A, NOON), { ops: 1, wei: 90n });
  assert.equal(ledger.reserve(reservation(A, 8n, 1n), NOON).ok, false, "another nonce is another operation");
});

test("a new UTC day starts from zero; a zero cap sponsors nothing", () => {
  const ledger = createCapLedger({ maxOps: 1, maxWei: 10n });
  const late = new Date("2026-11-30T23:59:59Z");
  ledger.reserve(reservation(A, 0n, 10n, NOON_S + 86_400), late);
  assert.equal(ledger.fits(A, 1n, late), false);
  assert.equal(ledger.fits(A, 10n, new Date("2026-12-01T00:00:00Z")), true);
  assert.equal(createCapLedger({ maxOps: 0, maxWei: 10n ** 18n }).fits(A, 0n), false);
});

test("a paid operation replaces its reservation with the EntryPoint's actualGasCost, once", () => {
  const ledger = createCapLedger({ maxOps: 10, maxWei: 2_000n });
  ledger.reserve(reservation(A, 0n, 900n), NOON);
  assert.deepEqual(ledger.usage(A, NOON), { ops: 1, wei: 900n });
  ledger.settle([paid(0n, 123n, 5n)], { block: 5n, timestamp: NOON_S + 10 });
  assert.deepEqual(ledger.usage(A, NOON), { ops: 1, wei: 123n });
  // The same confirmed event seen again (a restart re-reading a range) is not counted twice.
  ledger.settle([paid(0n, 123n, 5n)], { block: 5n, timestamp: NOON_S + 10 });
  assert.deepEqual(ledger.usage(A, NOON), { ops: 1, wei: 123n });
  const spend = ledger.spend(paid(0n, 0n, 5n).userOpHash);
  assert.equal(spend?.actualGasCost, 123n);
  assert.equal(spend?.owner, A.toLowerCase());
  // A reverted operation was paid for too: it counts.
  ledger.reserve(reservation(A, 1n, 900n), NOON);
  ledger.settle([paid(1n, 77n, 6n, { success: false })], { block: 6n, timestamp: NOON_S + 12 });
  assert.deepEqual(ledger.usage(A, NOON), { ops: 2, wei: 200n });
  // An event no reservation names is charged to the owner the watcher resolved, on the block's day.
  ledger.settle([paid(9n, 5n, 7n, { owner: A })], { block: 7n, timestamp: NOON_S + 14 });
  assert.deepEqual(ledger.usage(A, NOON), { ops: 3, wei: 205n });
});

test("an approval never paid stops counting once a confirmed block is past its validUntil, not before", () => {
  const ledger = createCapLedger({ maxOps: 1, maxWei: 1_000n });
  const validUntil = NOON_S + 300;
  ledger.reserve(reservation(A, 0n, 500n, validUntil), NOON);
  ledger.settle([], { block: 10n, timestamp: validUntil });
  assert.equal(ledger.fits(A, 1n, NOON), false, "a block at validUntil could still include it");
  ledger.settle([], { block: 11n, timestamp: validUntil + 1 });
  assert.deepEqual(ledger.usage(A, NOON), { ops: 0, wei: 0n });
  assert.equal(ledger.reserve(reservation(A, 1n, 500n), NOON).ok, true);
});

test("a stalled chain does not hold a reservation forever", () => {
  const ledger = createCapLedger({ maxOps: 1, maxWei: 1_000n });
  ledger.reserve(reservation(A, 0n, 500n, NOON_S + 300), NOON);
  const later = new Date((NOON_S + 300 + STALLED_RESERVATION_SECONDS + 1) * 1000);
  assert.deepEqual(ledger.usage(A, later), { ops: 0, wei: 0n });
});

test("caps, spends and the cursor survive a restart", () => {
  const path = tempDb();
  const first = createCapLedger({ maxOps: 3, maxWei: 1_000n }, path);
  first.reserve(reservation(A, 0n, 400n), NOON);
  first.reserve(reservation(A, 1n, 300n), NOON);
  first.settle([paid(0n, 111n, 20n)], { block: 20n, timestamp: NOON_S + 5 });
  const before = first.usage(A, NOON);
  first.close();
  const second = createCapLedger({ maxOps: 3, maxWei: 1_000n }, path);
  assert.deepEqual(second.usage(A, NOON), before);
  assert.deepEqual(before, { ops: 2, wei: 411n });
  assert.deepEqual(second.cursor(), { block: 20n, timestamp: NOON_S + 5 });
  assert.equal(second.spend(paid(0n, 0n, 0n).userOpHash)?.actualGasCost, 111n);
  second.close();
});

test("four processes reserving against one cap on one file never pass it", async () => {
  const path = tempDb();
  createCapLedger({ maxOps: 25, maxWei: 10n ** 18n }, path).close();
  const source = `
    import { workerData, parentPort } from "node:worker_threads";
    const { createCapLedger } = await import(workerData.module);
    const ledger = createCapLedger({ maxOps: 25, maxWei: 10n ** 18n }, workerData.path);
    let ok = 0;
    for (let i = 0; i < 40; i++) {
      const nonce = BigInt(workerData.index * 1000 + i);
      if (ledger.reserve({ owner: "${A}", sender: "${ACCOUNT}", nonce, maxCost: 1n, validUntil: ${NOON_S + 300} }, new Date(${NOON.getTime()})).ok) ok++;
    }
    ledger.close();
    parentPort.postMessage(ok);`;
  const module = new URL("../src/caps.ts", import.meta.url).href;
  const approvals = await Promise.all(
    [0, 1, 2, 3].map(
      (index) =>
        new Promise<number>((resolve, reject) => {
          const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(source)}`), {
            workerData: { module, path, index },
          });
          worker.once("message", resolve);
          worker.once("error", reject);
        }),
    ),
  );
  assert.equal(
    approvals.reduce((a, b) => a + b, 0),
    25,
    `approvals per process: ${approvals.join(", ")}`,
  );
  const ledger = createCapLedger({ maxOps: 25, maxWei: 10n ** 18n }, path);
  assert.deepEqual(ledger.usage(A, NOON), { ops: 25, wei: 25n });
  ledger.close();
});
