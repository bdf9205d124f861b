// A client of the dstack guest agent's API v1 (dstack 0.6; dstack's docs/guest-api-v1.md): prpc JSON —
// POST with `Content-Type: application/json` — to `/v1/<Method>` on the unix socket (default
// /var/run/dstack.sock) or an http(s) endpoint (a simulator). The official JS SDK reachable here
// (@phala/dstack-sdk 0.5.8) speaks only v0, so this is written against the spec; v0 stays with the SDK.
//
// An agent without v1 answers `/v1/...` with a 404 whose body is not JSON carrying `Service not found`
// (no such mount): that is a fatal `DstackGuestApiV1Unavailable`, never a retry, because only a new
// dstack OS image helps. A 404 `Service not found: <Method>` means v1 is there without that method.
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { type Address, type Hex, hexToBytes } from "viem";
import { decodeTdxAttestation } from "../dstack/attestation.ts";
import type { KeyAlgorithm } from "../dstack/keychain.ts";
import { AttestmeshError } from "../errors.ts";
import type { DerivedKey, DstackAgent } from "./dstack.ts";
import { parseAppId, parseBytes32 } from "./dstack.ts";
import { fatalError, retryableError } from "./errors.ts";

/** Where dstack's guest agent listens inside a CVM. */
export const DEFAULT_DSTACK_SOCKET = "/var/run/dstack.sock";

/** Longest response accepted; an attestation with its event log is a few tens of kilobytes. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
const TIMEOUT_MS = 30_000;

/** What `/v1/Info` returns, the fields read here (bytes as 0x-hex). */
export interface InfoV1 {
  readonly appId: Address;
  readonly composeHash: Hex;
  /** The machine's device id (32 bytes). */
  readonly deviceId: Hex;
  /** The deployed app-compose.json, verbatim. */
  readonly appCompose: string;
}

/** A v1 `GetKey` answer: the key, its raw public key and the chain (link 0 signs the v1 key claim). */
export interface DerivedKeyV1 extends DerivedKey {
  readonly publicKey: Uint8Array;
}

export interface DstackV1Client {
  getKey(domain: string, algorithm: KeyAlgorithm): Promise<DerivedKeyV1>;
  /** The versioned attestation over `reportData` (≤ 64 bytes), raw. */
  attest(reportData: Uint8Array): Promise<Uint8Array>;
  info(): Promise<InfoV1>;
  version(): Promise<{ readonly version: string; readonly rev: string }>;
}

interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

function post(endpoint: string, path: string, body: unknown): Promise<HttpAnswer> {
  const text = JSON.stringify(body);
  const headers = { "content-type": "application/json", "content-length": Buffer.byteLength(text) };
  return new Promise((resolve, reject) => {
    const onResponse = (res: import("node:http").IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_RESPONSE_BYTES) {
          res.destroy(new Error(`response exceeds ${MAX_RESPONSE_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
      );
      res.on("error", reject);
    };
    const req = endpoint.startsWith("/")
      ? httpRequest({ socketPath: endpoint, path, method: "POST", headers }, onResponse)
      : (endpoint.startsWith("https:") ? httpsRequest : httpRequest)(
          new URL(path.slice(1), endpoint.endsWith("/") ? endpoint : `${endpoint}/`),
          { method: "POST", headers },
          onResponse,
        );
    req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
    req.on("error", reject);
    req.end(text);
  });
}

function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** True when a 404 body is the prpc "Service not found" of a mounted surface (spec: "Detecting an agent without v1"). */
export function isServiceNotFound(body: string): boolean {
  const error = jsonObject(body)?.error;
  return typeof error === "string" && error.startsWith("Service not found");
}

function hexBytes(value: unknown, field: string, method: string): Uint8Array {
  if (typeof value !== "string" || !/^(0x)?([0-9a-fA-F]{2})*$/.test(value)) {
    throw fatalError(
      "InvalidSignatureChain",
      `dstack /v1/${method} returned ${field} that is not hex bytes; the guest agent is not speaking guest API v1.`,
      { details: { method, field } },
    );
  }
  return hexToBytes(`0x${value.replace(/^0x/, "").toLowerCase()}`);
}

function hexString(value: unknown, field: string, method: string): Hex {
  return `0x${Buffer.from(hexBytes(value, field, method)).toString("hex")}` as Hex;
}

/** A guest API v1 client on `endpoint` (a unix socket path or an http(s) URL; default the CVM socket). */
export function createDstackV1Client(endpoint: string | undefined): DstackV1Client {
  const where = endpoint ?? DEFAULT_DSTACK_SOCKET;
  const call = async (method: string, body: unknown): Promise<Record<string, unknown>> => {
    let answer: HttpAnswer;
    try {
      answer = await post(where, `/v1/${method}`, body);
    } catch (cause) {
      throw retryableError(
        "DstackUnavailable",
        `dstack /v1/${method} failed (${where}); check the guest agent socket is mounted, or set DSTACK_SIMULATOR_ENDPOINT.`,
        { cause, details: { endpoint: where, method } },
      );
    }
    if (answer.status === 404 && !isServiceNotFound(answer.body)) {
      throw fatalError(
        "DstackGuestApiV1Unavailable",
        `the dstack guest agent at ${where} has no guest API v1 (/v1/${method} answered 404 without "Service not found"): it predates dstack 0.6. This cluster's compose pins guest_api v1; boot the CVM on a dstack 0.6 or later OS image, or use a compose that pins guest_api v0.`,
        { details: { endpoint: where, method } },
      );
    }
    const json = jsonObject(answer.body);
    if (answer.status !== 200 || json === undefined) {
      const error = typeof json?.error === "string" ? json.error : answer.body.slice(0, 200);
      const transient = answer.status >= 500 || answer.status === 0;
      const make = transient ? retryableError : fatalError;
      throw make(
        transient ? "DstackUnavailable" : "DstackRequestRefused",
        `dstack /v1/${method} answered ${answer.status}: ${error}`,
        { details: { endpoint: where, method, status: answer.status } },
      );
    }
    return json;
  };
  return {
    async getKey(domain, algorithm) {
      const json = await call("GetKey", { domain, algorithm });
      const chain = json.signature_chain;
      if (!Array.isArray(chain)) {
        throw fatalError("InvalidSignatureChain", "dstack /v1/GetKey returned no signature_chain list.", {
          details: { domain },
        });
      }
      return {
        key: hexBytes(json.key, "key", "GetKey"),
        publicKey: hexBytes(json.public_key, "public_key", "GetKey"),
        signatureChain: chain.map((link, i) => hexBytes(link, `signature_chain[${i}]`, "GetKey")),
        guestApiVersion: 1,
      };
    },
    async attest(reportData) {
      const json = await call("Attest", { report_data: Buffer.from(reportData).toString("hex") });
      return hexBytes(json.attestation, "attestation", "Attest");
    },
    async info() {
      const json = await call("Info", {});
      if (typeof json.app_id !== "string" || typeof json.app_compose !== "string") {
        throw fatalError("InvalidAppId", "dstack /v1/Info returned no app_id or app_compose.", {
          details: {},
        });
      }
      return {
        appId: parseAppId(json.app_id),
        composeHash: hexString(json.compose_hash, "compose_hash", "Info"),
        deviceId: parseBytes32("device_id", typeof json.device_id === "string" ? json.device_id : undefined),
        appCompose: json.app_compose,
      };
    },
    async version() {
      const json = await call("Version", {});
      return { version: String(json.version ?? ""), rev: String(json.rev ?? "") };
    },
  };
}

/**
 * A `DstackAgent` on guest API v1: keys from `/v1/GetKey` with the key spec's purpose as domain (the
 * path is a v0 notion; v1 names a key by domain and algorithm only), quotes from `/v1/Attest`.
 */
export function createDstackV1Agent(endpoint: string | undefined): DstackAgent {
  const client = createDstackV1Client(endpoint);
  return {
    async info() {
      const { appId, composeHash, deviceId } = await client.info();
      return { appId, composeHash, deviceId };
    },
    appId: async () => (await client.info()).appId,
    getKey: (_path, purpose, algorithm) => client.getKey(purpose, algorithm),
    async getQuote(reportData) {
      const encoded = await client.attest(reportData);
      let quote: Uint8Array;
      try {
        quote = decodeTdxAttestation(encoded).quote;
      } catch (cause) {
        if (!(cause instanceof AttestmeshError)) throw cause;
        throw fatalError("InvalidAttestation", `dstack /v1/Attest: ${cause.message}`, { cause });
      }
      return `0x${Buffer.from(quote).toString("hex")}` as Hex;
    },
  };
}
