// JSON-RPC over HTTP(S) as a viem transport, on Node's own HTTP client with a keep-alive agent per
// provider. viem's `http` transport goes through `fetch` (undici's WHATWG streams, an AbortController
// and a timer per call): about 0.5–1 ms of CPU per call against ~0.1 ms here, and a resting sidecar
// makes about ten calls a second (docs/performance.md, idle cost). Each call is one JSON-RPC request.
// An error object in the answer is thrown as viem's http transport throws it (RpcRequestError, which
// viem maps to its RPC error classes; revert data included), naming the origin instead of the URL. An
// HTTP status other than 200, an answer that is not JSON-RPC, a timeout or a connection failure is an
// Error that names the provider's origin only (the URL's path, query or user info may carry an API key).
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { custom, RpcRequestError, type Transport } from "viem";

/** Largest answer accepted (a page of 1,000 member records is well under a megabyte). */
const MAX_ANSWER_BYTES = 32 * 1024 * 1024;

interface JsonRpcAnswer {
  readonly result?: unknown;
  readonly error?: { readonly code: number; readonly message: string; readonly data?: unknown };
}

export function jsonRpcHttp(url: string, options: { readonly timeoutMs: number }): Transport {
  const target = new URL(url);
  const secure = target.protocol === "https:";
  if (!secure && target.protocol !== "http:") {
    throw new TypeError(`an RPC provider must be http or https, not ${target.protocol}`);
  }
  const { origin } = target;
  const agent = secure
    ? new HttpsAgent({ keepAlive: true, maxSockets: 16 })
    : new HttpAgent({ keepAlive: true, maxSockets: 16 });
  const send = secure ? httpsRequest : httpRequest;
  let nextId = 0;

  const post = (body: string) =>
    new Promise<JsonRpcAnswer>((resolve, reject) => {
      const fail = (why: string) => reject(new Error(`RPC provider ${origin}: ${why}`));
      const req = send(
        target,
        {
          method: "POST",
          agent,
          headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
          timeout: options.timeoutMs,
        },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_ANSWER_BYTES) {
              req.destroy();
              fail(`answer larger than ${MAX_ANSWER_BYTES} bytes`);
            } else chunks.push(chunk);
          });
          res.on("error", () => fail("the answer was cut off"));
          res.on("end", () => {
            if (res.statusCode !== 200) return fail(`HTTP ${res.statusCode}`);
            let answer: unknown;
            try {
              answer = JSON.parse(Buffer.concat(chunks).toString("utf8"));
            } catch {
              return fail("the answer is not JSON");
            }
            if (typeof answer !== "object" || answer === null || Array.isArray(answer)) {
              return fail("the answer is not a JSON-RPC response");
            }
            resolve(answer as JsonRpcAnswer);
          });
        },
      );
      req.on("timeout", () => {
        req.destroy();
        fail(`no answer within ${options.timeoutMs} ms`);
      });
      req.on("error", (error: NodeJS.ErrnoException) => fail(`request failed (${error.code ?? "error"})`));
      req.end(body);
    });

  return custom(
    {
      async request({ method, params }: { method: string; params?: unknown }) {
        nextId = (nextId + 1) % Number.MAX_SAFE_INTEGER;
        const answer = await post(
          JSON.stringify({ jsonrpc: "2.0", id: nextId, method, params: params ?? [] }),
        );
        if (answer.error !== undefined && answer.error !== null) {
          // What viem's own http transport throws (so callers see the same error classes, revert data
          // included), with the origin in place of the URL.
          throw new RpcRequestError({ body: { method, params }, error: answer.error, url: origin });
        }
        if (!("result" in answer)) throw new Error(`RPC provider ${origin}: no result in the answer`);
        return answer.result;
      },
    },
    { retryCount: 0 },
  );
}
