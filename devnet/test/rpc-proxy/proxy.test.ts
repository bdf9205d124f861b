// The devnet's RPC proxy, honest: a request goes upstream as it came (a batch as one call) over a
// kept-alive connection, and the upstream's answer comes back byte for byte; told to lie, it still
// rewrites the answer (lies.ts). Regression for issue 15's profile, where the proxies' per-request
// fetch, parse and re-encode made them busier than any sidecar at the moment of a join.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { type RpcProxy, startRpcProxy } from "../../src/rpc-proxy/proxy.ts";

describe("rpc proxy", () => {
  let upstream: Server;
  let proxy: RpcProxy;
  const bodies: string[] = [];
  let connections = 0;
  // Odd spacing and key order: an answer re-encoded on the way would not come back equal.
  const answerTo = (text: string) => {
    const parsed = JSON.parse(text) as { id: number; method: string } | { id: number; method: string }[];
    const one = (r: { id: number; method: string }) =>
      r.method === "eth_chainId"
        ? `{"result":"0x7a69",  "id":${r.id},"jsonrpc":"2.0"}`
        : `{"id":${r.id}, "jsonrpc":"2.0","result":"0x10"}`;
    return Array.isArray(parsed) ? `[${parsed.map(one).join(" ,")}]` : one(parsed);
  };

  before(async () => {
    upstream = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (c: Buffer) => chunks.push(c));
      request.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        bodies.push(text);
        response.writeHead(200, { "content-type": "application/json" });
        response.end(answerTo(text));
      });
    });
    upstream.on("connection", () => {
      connections += 1;
    });
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", () => resolve()));
    proxy = await startRpcProxy({
      upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
    });
  });

  after(async () => {
    await proxy.close();
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  const post = async (text: string) => {
    const reply = await fetch(proxy.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: text,
    });
    return { status: reply.status, text: await reply.text() };
  };

  test("honest: a batch goes upstream once, as sent, and its answer comes back byte for byte", async () => {
    bodies.length = 0;
    const batch = `[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"eth_blockNumber"}]`;
    const reply = await post(batch);
    assert.equal(reply.status, 200);
    assert.equal(reply.text, answerTo(batch));
    assert.deepEqual(bodies, [batch]);
    assert.equal(proxy.stats().calls.eth_chainId, 1);
    assert.equal(proxy.stats().calls.eth_blockNumber, 1);
  });

  test("honest: one request after another share one upstream connection", async () => {
    const before = connections;
    for (let i = 0; i < 10; i++) {
      const single = `{"jsonrpc":"2.0","id":${i},"method":"eth_blockNumber"}`;
      assert.equal((await post(single)).text, answerTo(single));
    }
    assert.ok(connections - before <= 1, `${connections - before} upstream connections for 10 requests`);
  });

  test("told to lie, it still rewrites what the upstream answered", async () => {
    proxy.set({ behaviour: "other-chain" });
    try {
      const reply = JSON.parse((await post(`{"jsonrpc":"2.0","id":7,"method":"eth_chainId"}`)).text) as {
        id: number;
        result: string;
      };
      assert.equal(reply.id, 7);
      assert.notEqual(reply.result, "0x7a69");
      assert.equal(proxy.stats().rewritten, 1);
    } finally {
      proxy.set({ behaviour: "honest" });
    }
  });
});
