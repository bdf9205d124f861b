// The dashboard's quorum reads over real HTTP JSON-RPC providers: a read counts only when a majority return
// it byte for byte; a provider that lies is outvoted, a lying majority is refused, "latest" is pinned to
// the head a quorum has reached, and a viem client runs over it unchanged.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { QuorumReadFailed, quorumTransport } from "@attestmesh/scripts/dashboard/quorum.ts";
import { createPublicClient } from "viem";

interface Provider {
  url: string;
  head: bigint;
  /** What eth_call answers; records the block it was asked at. */
  call: string;
  asked: string[];
  down: boolean;
}

const servers: Server[] = [];

async function provider(head: bigint, call: string): Promise<Provider> {
  const p: Provider = { url: "", head, call, asked: [], down: false };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      if (p.down) return void res.writeHead(503).end();
      const { id, method, params } = JSON.parse(body) as { id: number; method: string; params: unknown[] };
      let result: unknown;
      if (method === "eth_chainId") result = "0x7a69";
      else if (method === "eth_blockNumber") result = `0x${p.head.toString(16)}`;
      else if (method === "eth_call") {
        p.asked.push(String(params[1]));
        result = p.call;
      } else result = null;
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ jsonrpc: "2.0", id, result }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  p.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return p;
}

const TRUE = `0x${"0".repeat(63)}1`;
const LIE = `0x${"0".repeat(63)}2`;
const call = (client: ReturnType<typeof createPublicClient>) =>
  client.call({ to: "0x00000000000000000000000000000000000000d1", data: "0x12345678" });

describe("dashboard quorum reads", () => {
  after(() => {
    for (const s of servers) s.close();
  });

  it("one lying provider of three is outvoted; the head is the highest block a majority reached", async () => {
    const ps = [await provider(100n, LIE), await provider(98n, TRUE), await provider(99n, TRUE)];
    const q = quorumTransport(ps.map((p) => p.url));
    assert.equal(q.quorum, 2);
    const client = createPublicClient({ transport: q.transport });
    assert.equal(
      await client.getBlockNumber({ cacheTime: 0 }),
      99n,
      "not the liar's 100, which only one reached",
    );
    assert.equal((await call(client)).data, TRUE);
    assert.ok(
      ps.every((p) => p.asked.every((b) => b === "0x63")),
      "every provider asked at the agreed head",
    );
    assert.ok((q.outvoted().get(0) ?? 0) >= 1, "the liar is counted");
  });

  it("a lying majority, or too few answers, is refused, never shown", async () => {
    const liars = [
      await provider(5n, LIE),
      await provider(5n, `0x${"0".repeat(63)}3`),
      await provider(5n, TRUE),
    ];
    const client = createPublicClient({ transport: quorumTransport(liars.map((p) => p.url)).transport });
    await client.getBlockNumber({ cacheTime: 0 });
    await assert.rejects(call(client), (e: Error) => /disagree/.test(e.message));
    const ps = [await provider(5n, TRUE), await provider(5n, TRUE), await provider(5n, TRUE)];
    ps[1]!.down = true;
    ps[2]!.down = true;
    const thin = createPublicClient({ transport: quorumTransport(ps.map((p) => p.url)).transport });
    await assert.rejects(
      thin.getBlockNumber({ cacheTime: 0 }),
      /only 1 RPC provider\(s\) answered, 2 must agree/,
    );
    ps[2]!.down = false;
    assert.equal(
      await thin.getBlockNumber({ cacheTime: 0 }),
      5n,
      "a provider that failed is replaced by the next",
    );
    assert.equal((await call(thin)).data, TRUE);
  });

  it("a quorum outside 1..providers is refused", () => {
    assert.throws(() => quorumTransport(["http://a", "http://b"], 3), RangeError);
    assert.throws(() => quorumTransport(["http://a"], 0), RangeError);
    assert.ok(new QuorumReadFailed("eth_call", 1, 2, false).message.includes("will retry"));
  });
});
