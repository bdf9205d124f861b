// The sponsorship webhook: an ERC-7677 paymaster web service (JSON-RPC `pm_getPaymasterStubData` and
// `pm_getPaymasterData`, what viem's paymaster client and hosted bundler tooling speak), plus
// GET /metrics (Prometheus) and GET /healthz. A refusal is JSON-RPC error -32001 whose message starts
// with the policy's reason (`cap-exceeded: ...`) and whose data is `{ reason }`.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { listenHttp } from "@attestmesh/shared/service/listen.ts";
import type { Logger } from "pino";
import { type Address, type Hex, hexToBigInt, isAddress, isHex, numberToHex } from "viem";
import type { ApprovedOperation } from "./approval.ts";
import type { SponsorMetrics } from "./metrics.ts";
import type { SponsorMethod, SponsorService } from "./service.ts";

const MAX_BODY_BYTES = 64 * 1024;
export const REFUSED = -32001;
const METHODS: Record<string, SponsorMethod> = {
  pm_getPaymasterStubData: "stub",
  pm_getPaymasterData: "final",
};

class BadRequest extends Error {}

function quantity(value: unknown, field: string): bigint {
  if (typeof value !== "string" || !isHex(value)) throw new BadRequest(`${field} must be a hex quantity`);
  return hexToBigInt(value);
}

function optionalQuantity(value: unknown, field: string): bigint | undefined {
  return value === undefined || value === null ? undefined : quantity(value, field);
}

function data(value: unknown, field: string): Hex {
  if (typeof value !== "string" || !isHex(value)) throw new BadRequest(`${field} must be hex data`);
  return value;
}

function address(value: unknown, field: string): Address {
  if (typeof value !== "string" || !isAddress(value, { strict: false })) {
    throw new BadRequest(`${field} must be an address`);
  }
  return value;
}

/** Reads an ERC-7677 userOp (EntryPoint v0.7 RPC form). */
export function parseUserOperation(raw: unknown): ApprovedOperation {
  if (typeof raw !== "object" || raw === null)
    throw new BadRequest("params[0] must be a UserOperation object");
  const op = raw as Record<string, unknown>;
  const factory =
    op.factory === undefined || op.factory === null ? undefined : address(op.factory, "factory");
  return {
    sender: address(op.sender, "sender"),
    nonce: quantity(op.nonce, "nonce"),
    ...(factory === undefined ? {} : { factory, factoryData: data(op.factoryData ?? "0x", "factoryData") }),
    callData: data(op.callData, "callData"),
    callGasLimit: optionalQuantity(op.callGasLimit, "callGasLimit") ?? 0n,
    verificationGasLimit: optionalQuantity(op.verificationGasLimit, "verificationGasLimit") ?? 0n,
    preVerificationGas: optionalQuantity(op.preVerificationGas, "preVerificationGas") ?? 0n,
    maxFeePerGas: quantity(op.maxFeePerGas, "maxFeePerGas"),
    maxPriorityFeePerGas: quantity(op.maxPriorityFeePerGas, "maxPriorityFeePerGas"),
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req) {
    length += (chunk as Buffer).length;
    if (length > MAX_BODY_BYTES) throw new BadRequest(`request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function send(res: ServerResponse, status: number, body: unknown, type = "application/json") {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(text) });
  res.end(text);
}

export interface SponsorServer {
  readonly server: Server;
  readonly url: string;
  close(): Promise<void>;
}

export async function startSponsorServer(options: {
  readonly service: SponsorService;
  readonly metrics: SponsorMetrics;
  readonly logger: Logger;
  readonly host: string;
  readonly port: number;
}): Promise<SponsorServer> {
  const { service, metrics, logger } = options;

  async function rpc(body: unknown): Promise<unknown> {
    const request = body as { id?: unknown; method?: unknown; params?: unknown };
    const id = request?.id ?? null;
    const method = typeof request?.method === "string" ? METHODS[request.method] : undefined;
    if (method === undefined) {
      return {
        jsonrpc: "2.0",
        id,
        error: { code: -32601, message: `method not supported: ${String(request?.method)}` },
      };
    }
    try {
      if (!Array.isArray(request.params) || request.params.length < 3) {
        throw new BadRequest("params must be [userOperation, entryPoint, chainId, context?]");
      }
      const [rawOp, entryPoint, chainId, context] = request.params as unknown[];
      const answer = await service.decide(method, {
        userOp: parseUserOperation(rawOp),
        entryPoint: address(entryPoint, "entryPoint"),
        chainId: Number(quantity(chainId, "chainId")),
        context,
      });
      if (!answer.approved) {
        return {
          jsonrpc: "2.0",
          id,
          error: {
            code: REFUSED,
            message: `${answer.reason}: ${answer.detail}`,
            data: { reason: answer.reason },
          },
        };
      }
      const result: Record<string, unknown> = {
        paymaster: answer.paymaster,
        paymasterData: answer.paymasterData,
        paymasterVerificationGasLimit: numberToHex(answer.paymasterVerificationGasLimit),
        paymasterPostOpGasLimit: numberToHex(answer.paymasterPostOpGasLimit),
      };
      if (method === "stub") {
        result.isFinal = false;
        result.sponsor = { name: "attestmesh cluster operator" };
      }
      return { jsonrpc: "2.0", id, result };
    } catch (error) {
      if (error instanceof BadRequest) {
        return { jsonrpc: "2.0", id, error: { code: -32602, message: error.message } };
      }
      logger.error({ err: error }, "sponsorship decision failed; the caller may retry");
      return {
        jsonrpc: "2.0",
        id,
        error: { code: -32603, message: "the sponsor could not read the chain; retry" },
      };
    }
  }

  const server = createServer((req, res) => {
    void (async () => {
      try {
        if (req.method === "GET" && req.url === "/metrics") {
          send(res, 200, await metrics.registry.metrics(), metrics.registry.contentType);
          return;
        }
        if (req.method === "GET" && req.url === "/healthz") {
          send(res, 200, { ok: true });
          return;
        }
        if (req.method !== "POST") {
          send(res, 404, { error: "POST JSON-RPC to /, or GET /metrics or /healthz" });
          return;
        }
        let body: unknown;
        try {
          body = JSON.parse(await readBody(req));
        } catch (error) {
          const message = error instanceof BadRequest ? error.message : "body is not JSON";
          send(res, 400, { jsonrpc: "2.0", id: null, error: { code: -32700, message } });
          return;
        }
        send(res, 200, Array.isArray(body) ? await Promise.all(body.map(rpc)) : await rpc(body));
      } catch (error) {
        logger.error({ err: error }, "request failed");
        if (!res.headersSent) send(res, 500, { error: "internal error" });
      }
    })();
  });
  const { port, close } = await listenHttp(server, options.host, options.port);
  const url = `http://${options.host}:${port}`;
  logger.info({ url }, "sponsorship service listening");
  return { server, url, close };
}
