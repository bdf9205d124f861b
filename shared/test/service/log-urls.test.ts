// The service kit's URL scrubbing: URL settings are logged as scheme and host, and viem's errors (which
// repeat the full URL, with its API keys, in their message, their `url` field and their causes) lose
// every path, query and credential on the way to a log line.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createPublicClient, http } from "viem";
import { createLogger, loggableConfig, redactUrl, scrubUrls, serializeError } from "../../src/service/log.ts";
import { secret } from "../../src/service/secret.ts";

const URL_WITH_KEYS = "https://alice:hunter2@base-sepolia.example.com:8443/v2/PATHKEY?apikey=QUERYKEY#frag";
const SECRETS = ["alice", "hunter2", "PATHKEY", "QUERYKEY", "frag"];

function assertClean(text: string): void {
  for (const s of SECRETS) assert.ok(!text.includes(s), `${JSON.stringify(s)} leaked: ${text}`);
}

test("redactUrl keeps scheme and host only", () => {
  assert.equal(redactUrl(URL_WITH_KEYS), "https://base-sepolia.example.com:8443");
  assert.equal(redactUrl("wss://indexer.example/ws?token=QUERYKEY"), "wss://indexer.example");
  assert.equal(redactUrl("http://[::1]:8545/x"), "http://[::1]:8545");
  assert.equal(redactUrl("https://alice:hunter2@[bad/PATHKEY"), "https://[redacted]");
  assert.equal(redactUrl("not a url PATHKEY"), "[not a URL]");
});

test("scrubUrls cuts every URL in free text and keeps the rest", () => {
  const text = `HTTP request failed.\n\nURL: ${URL_WITH_KEYS}\nRequest body: {"x":1}. See (${URL_WITH_KEYS}).`;
  const scrubbed = scrubUrls(text);
  assertClean(scrubbed);
  assert.ok(scrubbed.includes("URL: https://base-sepolia.example.com:8443\n"));
  assert.ok(scrubbed.endsWith("See (https://base-sepolia.example.com:8443)."));
  assert.equal(scrubUrls("no url here"), "no url here");
});

test("loggableConfig shows URL settings as scheme and host and secrets as set", () => {
  const shown = loggableConfig({
    rpcUrl: URL_WITH_KEYS,
    bundlerUrl: undefined,
    gasKey: secret("0xabc"),
    port: 8545,
  });
  assert.deepEqual(shown, {
    rpcUrl: "https://base-sepolia.example.com:8443",
    bundlerUrl: "unset",
    gasKey: "set",
    port: 8545,
  });
});

test("a real viem HttpRequestError, logged at every level, names the host and no key", async () => {
  const client = createPublicClient({
    transport: http("http://alice:hunter2@127.0.0.1:1/v2/PATHKEY?apikey=QUERYKEY", { retryCount: 0 }),
  });
  const error = await client.getChainId().then(
    () => assert.fail("port 1 answered"),
    (e: unknown) => e,
  );
  assert.ok(String((error as Error).message).includes("QUERYKEY"), "viem repeats the full URL");
  const serialized = JSON.stringify(serializeError(error));
  assertClean(serialized);
  assert.ok(serialized.includes("http://127.0.0.1:1"));

  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const logger = createLogger({ name: "attestmesh-test", level: "trace", destination });
  logger.error({ err: error }, "rpc failed");
  logger.warn({ error, url: URL_WITH_KEYS }, (error as Error).message);
  logger.child({ endpoint: URL_WITH_KEYS }).debug({ cause: new Error("x", { cause: error }) }, "nested");
  logger.info(`retrying ${URL_WITH_KEYS}`);
  const text = chunks.join("");
  assert.equal(chunks.length, 4);
  assertClean(text);
  assert.ok(text.includes("127.0.0.1:1"), "the host is still named");
});
