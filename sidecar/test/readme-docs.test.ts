// docs/configuration.md documents every sidecar environment variable; this keeps it in step with the parser.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { configDocsMarkdown } from "../src/config.ts";

test("the sidecar table of docs/configuration.md is exactly what the config parser documents", async () => {
  const docs = await readFile(new URL("../../docs/configuration.md", import.meta.url), "utf8");
  assert.ok(
    docs.includes(configDocsMarkdown().trim()),
    "docs/configuration.md is out of date: paste the output of configDocsMarkdown() under 'Sidecar'",
  );
});
