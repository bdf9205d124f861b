// The JSON-RPC HTTP transport against a real local HTTP server: answers, RPC errors as viem's error
// classes, HTTP failures and timeouts as errors that never carry the URL's credentials, and one kept-alive
// connection for many calls. The quorum reads over it, with a lying provider, are in reads.test.ts.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { createPublicClient } from "viem";
import { jsonRpcHttp } from "../../src/chain/http.ts";

type Handler = (body: { id: number; method: string; params: unknown[] }, res: ServerResponse) => void;

describe("JSON-RPC over Node's HTTP client", () => {
  let handler: Handler;
  let connections = 0;
  let base: string;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = "";
    req.on("data", (c) => {
      text += c;
    });
    req.on("end", () => handler(JSON.parse(text), res));
  });
  server.on("connection", () => {
    connections += 1;
  });
  const reply = (res: ServerResponse, payload: unknown, status = 200) =>
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(payload));

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const client = (url = `${base}/v2/SECRETKEY`, timeoutMs = 2_000) =>
    createPublicClient({ transport: jsonRpcHttp(url, { timeoutMs }), cacheTime: 0 });

  test("answers a call, and many calls share one kept-alive connection", async () => {
    const seen: string[] = [];
    handler = (body, res) => {
      seen.push(body.method);
      reply(res, { jsonrpc: "2.0", id: body.id, result: "0x2a" });
    };
    const c = client();
    connections = 0;
    for (let i = 0; i < 20; i++) assert.equal(await c.getBlockNumber(), 42n);
    assert.equal(seen.length, 20);
    assert.ok(seen.every((m) => m === "eth_blockNumber"));
    assert.equal(connections, 1, "one connection for twenty sequential calls");
  });

  test("an RPC error reaches the caller as viem's error, with its code and revert data", async () => {
    handler = (body, res) =>
      reply(res, {
        jsonrpc: "2.0",
        id: body.id,
        error: { code: 3, message: "execution reverted", data: "0x08c379a0" },
      });
    await assert.rejects(
      client().request({
        method: "eth_call",
        params: [{ to: "0x0000000000000000000000000000000000000001" }],
      }),
      (error: Error & { code?: number; cause?: { data?: unknown } }) => {
        assert.equal(error.code, 3);
        assert.match(error.message, /execution reverted/);
        let data: unknown;
        for (let e: unknown = error; e !== undefined && data === undefined; e = (e as Error).cause) {
          data = (e as { data?: unknown }).data;
        }
        assert.equal(data, "0x08c379a0", "the revert data is on the error");
        assert.doesNotMatch(error.message, /SECRETKEY/);
        return true;
      },
    );
  });

  for (const [what, respond, expected] of [
    ["HTTP 429", (_b: unknown, res: ServerResponse) => reply(res, { error: "slow down" }, 429), /HTTP 429/],
    ["not JSON", (_b: unknown, res: ServerResponse) => res.writeHead(200).end("<html>"), /not JSON/],
    ["not JSON-RPC", (_b: unknown, res: ServerResponse) => reply(res, [1, 2]), /not a JSON-RPC response/],
  ] as const) {
    test(`${what}: an error that names the origin and never the URL's key`, async () => {
      handler = respond;
      await assert.rejects(client().getBlockNumber(), (error: Error) => {
        assert.match(error.message, expected);
        assert.match(error.message, /127\.0\.0\.1/);
        assert.doesNotMatch(JSON.stringify({ m: error.message, s: error.stack }), /SECRETKEY/);
        return true;
      });
    });
  }

  test("a provider that never answers times out", async () => {
    handler = () => {};
    const started = performance.now();
    await assert.rejects(client(undefined, 300).getBlockNumber(), /no answer within 300 ms/);
    assert.ok(performance.now() - started < 2_000);
  });

  test("a provider that is down is a connection error, without the key", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    await assert.rejects(
      client(`http://user:SECRETKEY@127.0.0.1:${port}/x`).getBlockNumber(),
      (error: Error) => {
        assert.match(error.message, /request failed \(ECONNREFUSED\)/);
        assert.doesNotMatch(JSON.stringify({ m: error.message, s: error.stack }), /SECRETKEY/);
        return true;
      },
    );
  });

  test("a URL that is not http(s) is refused", () => {
    assert.throws(() => jsonRpcHttp("ws://127.0.0.1:1", { timeoutMs: 1_000 }), /http or https/);
  });
});
