// Regression: an intake stopped while it read the indexer registry opened a session anyway, whose socket
// never heard the abort (the signal had fired already), and `stopped` never resolved. It hung
// sidecar/test/intake/intake.test.ts's `after` on a loaded machine, one connection to its own server open.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Registry } from "prom-client";
import type { PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { WebSocketServer } from "ws";
import { startIntake } from "../../src/intake/intake.ts";
import type { IndexerQuoteCheck } from "../../src/intake/quote.ts";
import type { IndexerRecord } from "../../src/intake/registry.ts";
import { captureLogger } from "../helpers.ts";

test("an intake stopped while it reads the registry opens no session and stops", async () => {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  after(async () => {
    for (const client of wss.clients) client.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });
  const address = wss.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  let connections = 0;
  wss.on("connection", () => {
    connections += 1;
  });

  const record: IndexerRecord = {
    endpoint: `ws://127.0.0.1:${port}`,
    signingKey: `0x${"11".repeat(32)}`,
    codeId: `0x${"22".repeat(32)}`,
    appId: `0x${"33".repeat(20)}`,
  };
  let reading: () => void = () => {};
  let answer: (records: IndexerRecord[]) => void = () => {};
  const read = new Promise<void>((resolve) => {
    reading = resolve;
  });
  const abort = new AbortController();
  const intake = startIntake({
    client: {} as PublicClient,
    readIndexerRecords: () =>
      new Promise((resolve) => {
        answer = resolve;
        reading();
      }),
    cluster: `0x${"44".repeat(20)}`,
    chainId: 31337,
    memberId: () => 1n,
    account: privateKeyToAccount(generatePrivateKey()),
    wake: async () => {},
    onStatus: () => {},
    signal: abort.signal,
    logger: captureLogger("silent").logger,
    registry: new Registry(),
    reproSampleRate: 0,
    lagThresholdMs: 60_000,
    confirmations: 0,
    backoff: { initialMs: 20, maxMs: 100 },
    registryRetryMs: 100,
    indexerQuote: (async () => {
      throw new Error("no session should get as far as a hello");
    }) as unknown as IndexerQuoteCheck,
    subscriptions: 1,
  });

  await read;
  abort.abort();
  answer([record]);
  const outcome = await Promise.race([
    intake.stopped.then(() => "stopped"),
    new Promise((resolve) => setTimeout(resolve, 5_000, "still running after 5 s")),
  ]);
  assert.equal(outcome, "stopped");
  assert.equal(connections, 0, "no connection was opened after the abort");
});
