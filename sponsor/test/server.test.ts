// The webhook's JSON-RPC surface: malformed requests get a clear error and never reach the policy;
// refusals carry the reason; /metrics and /healthz answer. The decision itself is tested against a
// real chain and bundler in test/sponsorship/sponsored.test.ts; here a recording service stands in.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { createSponsorMetrics } from "../src/metrics.ts";
import { type SponsorServer, startSponsorServer } from "../src/server.ts";
import type { SponsorRequest, SponsorService } from "../src/service.ts";

const calls: Array<{ method: string; request: SponsorRequest }> = [];
const service: SponsorService = {
  async decide(method, request) {
    calls.push({ method, request });
    return request.userOp.nonce === 7n
      ? { approved: false, reason: "cap-exceeded", detail: "too many today" }
      : {
          approved: true,
          paymaster: "0x00000000000000000000000000000000000000Aa",
          paymasterData: "0x1234",
          paymasterVerificationGasLimit: 60_000n,
          paymasterPostOpGasLimit: 0n,
        };
  },
};

let server: SponsorServer;
before(async () => {
  server = await startSponsorServer({
    service,
    metrics: createSponsorMetrics(),
    logger: pino({ level: "silent" }),
    host: "127.0.0.1",
    port: 0,
  });
});
after(() => server.close());

const OP = {
  sender: "0x00000000000000000000000000000000000000bB",
  nonce: "0x1",
  callData: "0x",
  maxFeePerGas: "0x3b9aca00",
  maxPriorityFeePerGas: "0x1",
};
const ENTRY_POINT = "0x0000000071727De22E5E9d8BAf0edAc6f37da032";

async function post(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(server.url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

test("pm_getPaymasterStubData and pm_getPaymasterData answer in ERC-7677 form", async () => {
  const stub = await post({
    jsonrpc: "2.0",
    id: 1,
    method: "pm_getPaymasterStubData",
    params: [OP, ENTRY_POINT, "0x7a69", {}],
  });
  assert.deepEqual(stub.json.result, {
    paymaster: "0x00000000000000000000000000000000000000Aa",
    paymasterData: "0x1234",
    paymasterVerificationGasLimit: "0xea60",
    paymasterPostOpGasLimit: "0x0",
    isFinal: false,
    sponsor: { name: "attestmesh cluster operator" },
  });
  const final = await post({
    jsonrpc: "2.0",
    id: 2,
    method: "pm_getPaymasterData",
    params: [OP, ENTRY_POINT, "0x7a69", null],
  });
  assert.equal((final.json.result as Record<string, unknown>).paymasterData, "0x1234");
  assert.deepEqual(
    calls.map((c) => [c.method, c.request.chainId, c.request.userOp.nonce]),
    [
      ["stub", 31337, 1n],
      ["final", 31337, 1n],
    ],
  );
});

test("a refusal is error -32001 whose message starts with the reason", async () => {
  const { json } = await post({
    jsonrpc: "2.0",
    id: 3,
    method: "pm_getPaymasterData",
    params: [{ ...OP, nonce: "0x7" }, ENTRY_POINT, "0x7a69"],
  });
  assert.deepEqual(json.error, {
    code: -32001,
    message: "cap-exceeded: too many today",
    data: { reason: "cap-exceeded" },
  });
});

test("malformed requests get a clear error and never reach the policy", async () => {
  const before = calls.length;
  const cases: Array<[unknown, number, RegExp]> = [
    ["{not json", -32700, /not JSON/],
    [{ jsonrpc: "2.0", id: 1, method: "eth_sendUserOperation", params: [] }, -32601, /not supported/],
    [{ jsonrpc: "2.0", id: 1, method: "pm_getPaymasterData", params: [OP] }, -32602, /params must be/],
    [
      {
        jsonrpc: "2.0",
        id: 1,
        method: "pm_getPaymasterData",
        params: [{ ...OP, sender: "me" }, ENTRY_POINT, "0x1"],
      },
      -32602,
      /sender must be an address/,
    ],
    [
      {
        jsonrpc: "2.0",
        id: 1,
        method: "pm_getPaymasterData",
        params: [{ ...OP, nonce: 1 }, ENTRY_POINT, "0x1"],
      },
      -32602,
      /nonce must be a hex quantity/,
    ],
    [
      { jsonrpc: "2.0", id: 1, method: "pm_getPaymasterData", params: [OP, "0x12", "0x1"] },
      -32602,
      /entryPoint must be an address/,
    ],
    [
      `{"jsonrpc":"2.0","id":1,"method":"pm_getPaymasterData","params":["${"a".repeat(70_000)}"]}`,
      -32700,
      /over 65536 bytes/,
    ],
  ];
  for (const [body, code, message] of cases) {
    const { json } = await post(body);
    const error = json.error as { code: number; message: string };
    assert.equal(error.code, code, JSON.stringify(json));
    assert.match(error.message, message);
  }
  assert.equal(calls.length, before);
});

test("GET /metrics and /healthz", async () => {
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /attestmesh_sponsor_decisions_total/);
});
