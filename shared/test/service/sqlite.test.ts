// immediateTransaction: what the body wrote is committed when it returns and rolled back when it throws.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DatabaseSync, immediateTransaction } from "../../src/service/sqlite.ts";

function table() {
  const db = new DatabaseSync(":memory:");
  db.exec("CREATE TABLE t (v INTEGER NOT NULL)");
  const count = () => (db.prepare("SELECT COUNT(*) AS n FROM t").get() as { n: number }).n;
  return { db, count };
}

test("a body that returns is committed, and its value returned", () => {
  const { db, count } = table();
  const value = immediateTransaction(db, () => {
    db.exec("INSERT INTO t (v) VALUES (1), (2)");
    return "done";
  });
  assert.equal(value, "done");
  assert.equal(count(), 2);
  assert.equal(db.isTransaction, false);
});

test("a body that throws is rolled back and its error rethrown", () => {
  const { db, count } = table();
  db.exec("INSERT INTO t (v) VALUES (1)");
  assert.throws(
    () =>
      immediateTransaction(db, () => {
        db.exec("INSERT INTO t (v) VALUES (2)");
        throw new Error("refused halfway");
      }),
    /refused halfway/,
  );
  assert.equal(count(), 1, "the half-done write is gone");
  assert.equal(db.isTransaction, false);
});
