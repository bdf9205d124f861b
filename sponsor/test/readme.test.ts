// docs/configuration.md documents every variable the sponsorship service reads.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { SPONSOR_VARIABLES } from "../src/config.ts";

test("the sponsor table of docs/configuration.md names every variable with its default", async () => {
  const docs = await readFile(new URL("../../docs/configuration.md", import.meta.url), "utf8");
  for (const variable of SPONSOR_VARIABLES) {
    const row = docs.split("\n").find((line) => line.startsWith(`| \`${variable.name}\``));
    assert.ok(row, `docs/configuration.md has no row for ${variable.name}`);
    if (variable.default !== undefined)
      assert.ok(row.includes(`\`${variable.default}\``), `${variable.name} default`);
  }
});
