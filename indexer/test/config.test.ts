// The indexer's configuration: defaults, every bad value refused with the variable named, and the
// configuration page (docs/configuration.md) documents every variable.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, test } from "node:test";
import { configDocsMarkdown } from "@attestmesh/shared/service/env.ts";
import { CONFIG_DOCS, parseConfig } from "../src/config.ts";

const BASE = {
  ATTESTMESH_INDEXER_RPC_URL: "http://127.0.0.1:8545",
  ATTESTMESH_INDEXER_CLUSTERS: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
};

describe("indexer config", () => {
  test("defaults: never from genesis, 2 confirmations, batches of 1000, a 1 s poll and a 10 s one while subscribed", () => {
    const config = parseConfig(BASE);
    assert.equal(config.startBlock, undefined);
    assert.equal(config.confirmations, 2);
    assert.equal(config.batchBlocks, 1000);
    assert.equal(config.pollIntervalMs, 1000);
    assert.equal(config.subscribedPollIntervalMs, 10_000, "a 10 s safety poll while new heads wake it");
    assert.deepEqual(config.clusters, ["0x5FbDB2315678afecb367f032d93F642f64180aa3"]);
  });

  test("several clusters, deduplicated", () => {
    const a = "0x5fbdb2315678afecb367f032d93f642f64180aa3";
    const b = "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512";
    const config = parseConfig({ ...BASE, ATTESTMESH_INDEXER_CLUSTERS: `${a}, ${b},${a}` });
    assert.equal(config.clusters.length, 2);
  });

  const BAD: ReadonlyArray<readonly [string, string]> = [
    ["ATTESTMESH_INDEXER_RPC_URL", "localhost:8545"],
    ["ATTESTMESH_INDEXER_WS_URL", "http://127.0.0.1:8545"],
    ["ATTESTMESH_INDEXER_WS_URL", "127.0.0.1:8546"],
    ["ATTESTMESH_INDEXER_CLUSTERS", "0x1234"],
    ["ATTESTMESH_INDEXER_CLUSTERS", " , "],
    ["ATTESTMESH_INDEXER_START_BLOCK", "-1"],
    ["ATTESTMESH_INDEXER_CONFIRMATIONS", "1001"],
    ["ATTESTMESH_INDEXER_BATCH_BLOCKS", "0"],
    ["ATTESTMESH_INDEXER_SUBSCRIBED_POLL_INTERVAL_MS", "10"],
    ["ATTESTMESH_INDEXER_PORT", "65536"],
    ["ATTESTMESH_INDEXER_WINDOW", "0"],
    ["ATTESTMESH_INDEXER_LOG_LEVEL", "loud"],
  ];
  for (const [name, value] of BAD) {
    test(`refuses ${name}=${JSON.stringify(value)} and names it`, () => {
      assert.throws(
        () => parseConfig({ ...BASE, [name]: value }),
        (error: Error & { code?: string }) => error.code === "InvalidConfig" && error.message.includes(name),
      );
    });
  }

  test("the WebSocket URL is optional (polling alone) and takes ws or wss; a bad one is not echoed", () => {
    assert.equal(parseConfig(BASE).wsUrl, undefined);
    const url = "wss://base-mainnet.example.com/v2/sk-123";
    assert.equal(parseConfig({ ...BASE, ATTESTMESH_INDEXER_WS_URL: url }).wsUrl, url);
    assert.throws(
      () => parseConfig({ ...BASE, ATTESTMESH_INDEXER_WS_URL: "https://base-mainnet.example.com/v2/sk-123" }),
      (error: Error) => !error.message.includes("sk-123") && /ws:\/\/ or wss:\/\//.test(error.message),
    );
  });

  test("a missing required variable is named", () => {
    assert.throws(() => parseConfig({}), /ATTESTMESH_INDEXER_RPC_URL[\s\S]*ATTESTMESH_INDEXER_CLUSTERS/);
  });

  test("the indexer table of docs/configuration.md is exactly what the env table documents", async () => {
    const docs = await readFile(new URL("../../docs/configuration.md", import.meta.url), "utf8");
    assert.ok(
      docs.includes(configDocsMarkdown(CONFIG_DOCS)),
      "docs/configuration.md is out of date: paste configDocsMarkdown(CONFIG_DOCS) under 'Indexer'",
    );
  });
});
