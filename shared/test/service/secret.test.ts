// The Secret box prints as a placeholder however it is printed.
import assert from "node:assert/strict";
import { test } from "node:test";
import { format, inspect } from "node:util";
import { secret } from "@attestmesh/shared/service/secret.ts";

test("a boxed secret reveals its value only through reveal()", () => {
  const value = "0xdeadbeefcafe";
  const box = secret(value);
  assert.equal(box.reveal(), value);
  for (const shown of [
    String(box),
    `${box}`,
    JSON.stringify({ box }),
    inspect({ nested: { box } }, { depth: 10 }),
    format("%s %o %j", box, box, box),
  ]) {
    assert.ok(!shown.includes("deadbeef"), shown);
    assert.ok(shown.includes("[secret]"), shown);
  }
  assert.ok(Object.isFrozen(box));
});
