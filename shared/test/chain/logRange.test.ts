// eth_getLogs in spans a provider accepts: a refused span is halved (and stays halved), other errors
// pass through at once, a refusal at the narrowest span is thrown; the backward read stops at the
// highest span with a log, or after its call budget.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createLogScanner, isLogRangeRefusal } from "@attestmesh/shared/chain/logRange.ts";
import { HttpRequestError, LimitExceededRpcError, RpcRequestError, TimeoutError } from "viem";

const rpcError = (code: number, message: string) =>
  new RpcRequestError({
    body: { method: "eth_getLogs" },
    error: { code, message },
    url: "https://rpc.example",
  });

/** A provider over blocks 0..`head` that refuses spans wider than `cap`; logs at `logsAt`. */
function provider(cap: bigint, logsAt: readonly bigint[]) {
  const calls: [bigint, bigint][] = [];
  const read = async (from: bigint, to: bigint) => {
    calls.push([from, to]);
    if (to - from + 1n > cap) throw rpcError(-32602, `query exceeds max block range ${cap}`);
    return logsAt.filter((b) => b >= from && b <= to);
  };
  return { read, calls };
}

describe("isLogRangeRefusal", () => {
  test("providers' wordings of a too-wide or too-heavy range, wrapped as viem wraps them", () => {
    for (const message of [
      "query exceeds max block range 1000",
      "block range too large",
      "exceed maximum block range: 10000",
      "query returned more than 10000 results",
      "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range",
      "eth_getLogs is limited to a 10,000 range",
      "block range is too wide",
    ]) {
      assert.ok(isLogRangeRefusal(rpcError(-32000, message)), message);
      assert.ok(isLogRangeRefusal(new Error(message)), message);
    }
    assert.ok(isLogRangeRefusal(new LimitExceededRpcError(rpcError(-32005, "limit exceeded"))));
  });

  test("not a range refusal: rate limits, timeouts, a provider that is down, anything else", () => {
    assert.equal(
      isLogRangeRefusal(rpcError(-32005, "daily request count exceeded, request rate limited")),
      false,
    );
    assert.equal(isLogRangeRefusal(rpcError(429, "Too Many Requests")), false);
    assert.equal(isLogRangeRefusal(new TimeoutError({ body: {}, url: "https://rpc.example" })), false);
    assert.equal(
      isLogRangeRefusal(
        new HttpRequestError({ url: "https://rpc.example", status: 502, details: "Bad Gateway" }),
      ),
      false,
    );
    assert.equal(isLogRangeRefusal(rpcError(-32000, "header not found")), false);
    assert.equal(isLogRangeRefusal(undefined), false);
  });
});

describe("createLogScanner", () => {
  test("forward: every log once, the span halved on refusal and kept for later reads", async () => {
    const p = provider(300n, [0n, 299n, 300n, 999n]);
    const shrinks: bigint[] = [];
    const scanner = createLogScanner({ maxBlocks: 1000n, onShrink: (b) => shrinks.push(b) });
    assert.deepEqual(await scanner.forward(0n, 999n, p.read), [0n, 299n, 300n, 999n]);
    assert.deepEqual(shrinks, [500n, 250n]);
    assert.equal(scanner.blocks, 250n);
    // 2 refusals, then 4 spans of 250.
    assert.equal(p.calls.length, 6);
    p.calls.length = 0;
    await scanner.forward(1000n, 1499n, p.read);
    assert.deepEqual(p.calls, [
      [1000n, 1249n],
      [1250n, 1499n],
    ]);
  });

  test("backward: the highest span with a log, within the call budget, never below the floor", async () => {
    const p = provider(10_000n, [120n, 450n]);
    const scanner = createLogScanner({ maxBlocks: 100n });
    assert.deepEqual(await scanner.backward(0n, 999n, p.read), [450n]);
    assert.deepEqual(p.calls.at(-1), [400n, 499n]);
    assert.equal(await scanner.backward(0n, 999n, p.read, 3), undefined);
    p.calls.length = 0;
    assert.deepEqual(await scanner.backward(200n, 399n, p.read), []);
    assert.deepEqual(p.calls, [
      [300n, 399n],
      [200n, 299n],
    ]);
  });

  test("a refusal at the narrowest span, or any other error, is thrown", async () => {
    const refusing = provider(0n, []);
    await assert.rejects(
      createLogScanner({ maxBlocks: 64n, minBlocks: 8n }).forward(0n, 99n, refusing.read),
      /range/,
    );
    assert.deepEqual(
      refusing.calls.map(([a, b]) => b - a + 1n),
      [64n, 32n, 16n, 8n],
    );
    let calls = 0;
    const down = async () => {
      calls += 1;
      throw new HttpRequestError({ url: "https://rpc.example", status: 503 });
    };
    await assert.rejects(createLogScanner().backward(0n, 99_999n, down), HttpRequestError);
    assert.equal(calls, 1);
  });
});
