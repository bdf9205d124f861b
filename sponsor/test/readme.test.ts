// The README documents every variable the sponsorship service reads.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { SPONSOR_VARIABLES } from "../src/config.ts";

test("the README's sponsor table names every variable with its default", async () => {
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
  for (const variable of SPONSOR_VARIABLES) {
    const row = readme.split("\n").find((line) => line.startsWith(`| \`${variable.name}\``));
    assert.ok(row, `README.md has no row for ${variable.name}`);
    if (variable.default !== undefined)
      assert.ok(row.includes(`\`${variable.default}\``), `${variable.name} default`);
  }
});
