import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { looseBytes } from "../src/bytes.ts";

describe("looseBytes", () => {
  it("reads raw bytes (as a copy), byte values and hex text with or without 0x", () => {
    const raw = Uint8Array.of(1, 2, 255);
    const copy = looseBytes(raw);
    assert.deepEqual(copy, raw);
    assert.notEqual(copy, raw, "a copy, not the caller's buffer");
    assert.deepEqual(looseBytes([1, 2, 255]), raw);
    assert.deepEqual(looseBytes("0102ff"), raw);
    assert.deepEqual(looseBytes("0x0102FF"), raw);
    assert.deepEqual(looseBytes(""), new Uint8Array());
  });

  it("refuses what is not bytes: odd or non-hex text, values out of byte range, other types", () => {
    for (const bad of ["0x123", "zz", [256], [-1], [1.5], ["1"], 7, null, undefined, {}]) {
      assert.equal(looseBytes(bad), undefined, JSON.stringify(bad));
    }
  });
});
