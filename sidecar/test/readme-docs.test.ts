// The README documents every sidecar environment variable; this keeps it in step with the parser.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { configDocsMarkdown } from "../src/config.ts";

test("the README's sidecar configuration table is exactly what the config parser documents", async () => {
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
  assert.ok(
    readme.includes(configDocsMarkdown().trim()),
    "README.md is out of date: paste the output of configDocsMarkdown() under 'Configuration'",
  );
});
