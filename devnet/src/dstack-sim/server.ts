/**
 * The dstack simulator's transport: the guest agent's HTTP-over-unix-socket
 * API, served so that the official `@phala/dstack-sdk` `DstackClient` works
 * against it unchanged (DESIGN.md, "dstack, exactly"). A thin layer: parse a
 * request, call the simulator library, hex-encode the bytes.
 *
 * What the SDK (0.5.8) sends, and what is served here. Every call is a POST
 * with a JSON body; bytes travel as lowercase hex without `0x` (requests may
 * carry a `0x` prefix, as dstack's own decoder accepts).
 *
 *   /GetKey     {path, purpose, algorithm}  → {key, signature_chain: [app sig, KMS sig]}
 *               algorithm "secp256k1" (also "k256" or "") or "ed25519"
 *   /GetQuote   {report_data}               → {quote, event_log, report_data, vm_config}
 *               report_data ≤ 64 bytes, zero-padded; `quote` is the library's simulated quote
 *   /Info       {}                          → {app_id, instance_id, app_cert, tcb_info, app_name,
 *               device_id, mr_aggregated, os_image_hash, key_provider_info, compose_hash,
 *               vm_config, cloud_vendor, cloud_product}; `tcb_info` is a JSON string
 *               (the SDK parses it); `isReachable()` is this call with a 500 ms timeout
 *   /Version    {}                          → {version, rev}; the SDK calls it before any
 *               non-secp256k1 GetKey to check that the agent supports the algorithm
 *   /EmitEvent  {event, payload}            → {}; extends the simulated RTMR3 event log
 *
 * Every response also says `"simulator": true` (the SDK passes extra fields
 * through); Info adds `kms_root_address` and `app_public_key`. The SDK's
 * other calls (/GetTlsKey, /Attest, /Sign, /Verify) answer 501: the simulator
 * does not reproduce them. Errors are dstack's shape, `{"error": message}`
 * (which the SDK's getQuote throws as is), plus a stable `code`.
 *
 * Guest API v1 (dstack 0.6, dstack's docs/guest-api-v1.md): the v0 methods above are also served at
 * `/v0/<Method>`, and, unless `guestApis` is "v0" (an agent before 0.6), v1 at `/v1/<Method>`:
 *
 *   /v1/GetKey   {domain, algorithm}  → {key, public_key, signature_chain}; algorithm exactly
 *                "secp256k1" or "ed25519" (no default, no alias); v1 KDF and key claim
 *   /v1/Attest   {report_data}        → {attestation, boottime_gpu_evidence: []}; `attestation` is
 *                the versioned (MessagePack V1) attestation carrying the simulated quote and event log
 *   /v1/Info     {}                   → {app_id, instance_id, app_name, device_id, mr_aggregated,
 *                os_image_hash, compose_hash, app_compose, vm_config, key_provider_info}
 *   /v1/Version  {}                   → {version: "0.6.0", rev}
 *
 * Another method under /v1 answers 404 `{"error": "Service not found: <Method>"}`, as a mounted
 * surface does; with `guestApis: "v0"` every /v1 path answers a plain-text 404 (no such mount), as an
 * agent that predates v1 does. Both Info methods return the configured app-compose document
 * (v0: `tcb_info.app_compose`).
 *
 * Info's `tcb_info.event_log` and GetQuote's `event_log` hold a simulated
 * RTMR3 log: `app-id`, `compose-hash`, `instance-id`, then every EmitEvent,
 * each digested with dstack's runtime-event formula; `rtmr3` is its replay
 * (what the SDK's `replayRtmrs()` computes). MRTD and RTMR0–2 are zero.
 *
 * The SDK's unix-socket client measures bodies in UTF-16 units, not bytes:
 * reading a response it compares a JS string's length with Content-Length, so
 * every response here is pure ASCII (JSON `\u` escapes) or the client would
 * stall until the connection closed; sending, it declares Content-Length the
 * same way, so a non-ASCII path or purpose reaches any server (dstack's too)
 * truncated and is refused as malformed JSON.
 */
import { chmod, lstat, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { resolve } from "node:path";
import { encodeTdxAttestation } from "@attestmesh/shared/dstack/attestation.ts";
import type { KeyAlgorithm } from "@attestmesh/shared/dstack/keychain.ts";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { clearStaleSocket } from "@attestmesh/shared/service/listen.ts";
import { sha384 } from "@noble/hashes/sha2";
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from "@noble/hashes/utils";
import pino, { type Logger } from "pino";
import { padReportData, SIMULATED_QUOTE_LAYOUT, type SimulatedCvm } from "./simulator.ts";

export type DstackSimulatorOptions = {
  /** Where to listen; a stale socket file there is replaced, anything else is refused. */
  readonly socketPath: string;
  readonly cvm: SimulatedCvm;
  /** "v0+v1" (default): dstack 0.6, both surfaces. "v0": an agent before 0.6, no /v1 mount. */
  readonly guestApis?: GuestApis;
  /** Default: pino at info level on stdout. */
  readonly logger?: Logger;
};

/** Which guest API surfaces the simulated agent serves. */
export type GuestApis = "v0" | "v0+v1";

export type DstackSimulator = {
  /** Absolute path of the listening socket (mode 0600). */
  readonly socketPath: string;
  /** Stops serving, drops open connections and removes the socket file. Idempotent. */
  close(): Promise<void>;
};

/**
 * The guest-agent API level reproduced: dstack OS ≥ 0.5.7 (the first with
 * /Version), as the `@phala/dstack-sdk` release the tests run against.
 */
export const DSTACK_API_VERSION = "0.5.8";
/** What /v1/Version reports (and /Version, when v1 is served): the first dstack with guest API v1. */
export const DSTACK_V1_API_VERSION = "0.6.0";
export const SIMULATOR_REV = "attestmesh-dstack-simulator";

/** dstack's event type for runtime events extended into RTMR3 (cc-eventlog). */
export const DSTACK_RUNTIME_EVENT_TYPE = 0x08000001;

/** Longest request body accepted; dstack's own calls are a few hundred bytes. */
export const MAX_BODY_BYTES = 64 * 1024;

/** Linux `sun_path` holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

/** One entry of dstack's event log, as the SDK's `replayRtmrs()` reads it. */
export type EventLogEntry = {
  readonly imr: number;
  readonly event_type: number;
  /** sha384 hex, 48 bytes. */
  readonly digest: string;
  readonly event: string;
  /** hex */
  readonly event_payload: string;
};

type JsonObject = Record<string, unknown>;

type Method = {
  /** Methods without arguments also answer GET, as dstack does, for curl. */
  readonly allowGet: boolean;
  readonly handle: (body: JsonObject) => JsonObject;
};

/** HTTP status per error code; any other `AttestmeshError` from a request is a 400. */
const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  UnknownMethod: 404,
  ServiceNotFound: 404,
  MethodNotAllowed: 405,
  PayloadTooLarge: 413,
  NotSimulated: 501,
};

/** SDK calls the simulator deliberately does not reproduce. */
const NOT_SIMULATED = new Set(["/GetTlsKey", "/Attest", "/Sign", "/Verify"]);

const hex = (bytes: Uint8Array): string => bytesToHex(bytes);

function requestError(code: string, message: string, details: JsonObject = {}): AttestmeshError {
  return new AttestmeshError(message, { code, retryable: false, details });
}

function requireString(body: JsonObject, field: string): string {
  const value = body[field];
  if (typeof value !== "string") {
    throw requestError(
      value === undefined ? "MissingField" : "InvalidField",
      `${field} must be a string, got ${value === undefined ? "nothing" : typeof value}.`,
      { field },
    );
  }
  return value;
}

/** Hex bytes as dstack decodes them: even length, optional `0x`. */
function requireHex(body: JsonObject, field: string): Uint8Array {
  const digits = requireString(body, field).replace(/^0x/i, "");
  if (digits.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(digits)) {
    throw requestError("InvalidField", `${field} must be hex bytes (an even number of hex digits).`, {
      field,
    });
  }
  return hexToBytes(digits.toLowerCase());
}

/** dstack's `normalize_algorithm`: "k256" and "" mean secp256k1. */
function requireAlgorithm(body: JsonObject): KeyAlgorithm {
  const value = body.algorithm;
  if (value === undefined || value === "" || value === "k256" || value === "secp256k1") return "secp256k1";
  if (value === "ed25519") return "ed25519";
  throw requestError(
    "UnsupportedAlgorithm",
    `algorithm ${JSON.stringify(value)} is not supported; use "secp256k1" (or "k256") or "ed25519".`,
    { field: "algorithm" },
  );
}

/** `sha384(le32(event_type) || ":" || event || ":" || payload)`, dstack's runtime-event digest. */
export function runtimeEvent(event: string, payload: Uint8Array): EventLogEntry {
  const type = new Uint8Array(4);
  new DataView(type.buffer).setUint32(0, DSTACK_RUNTIME_EVENT_TYPE, true);
  const colon = utf8ToBytes(":");
  return {
    imr: 3,
    event_type: DSTACK_RUNTIME_EVENT_TYPE,
    digest: hex(sha384(concatBytes(type, colon, utf8ToBytes(event), colon, payload))),
    event,
    event_payload: hex(payload),
  };
}

/** An RTMR replayed from its events: `mr = sha384(mr || digest)` from 48 zero bytes. */
export function replayRtmr(events: readonly EventLogEntry[]): Uint8Array {
  let mr: Uint8Array = new Uint8Array(48);
  for (const entry of events) mr = sha384(concatBytes(mr, hexToBytes(entry.digest)));
  return mr;
}

/** JSON with every non-ASCII character escaped, so byte length equals string length. */
function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** v1's algorithm: exactly "secp256k1" or "ed25519"; an empty or other value is an error. */
function requireV1Algorithm(body: JsonObject): KeyAlgorithm {
  const value = body.algorithm;
  if (value === "secp256k1" || value === "ed25519") return value;
  throw requestError(
    "UnsupportedAlgorithm",
    `algorithm ${JSON.stringify(value ?? "")} is not supported; the accepted values are "secp256k1" and "ed25519".`,
    { field: "algorithm" },
  );
}

function requireReportData(body: JsonObject): Uint8Array {
  const reportData = requireHex(body, "report_data");
  const { length } = SIMULATED_QUOTE_LAYOUT.reportData;
  if (reportData.length > length) {
    throw requestError(
      "ReportDataTooLong",
      `report_data is ${reportData.length} bytes; at most ${length} are allowed (hash larger data first).`,
      { field: "report_data", length: reportData.length },
    );
  }
  return reportData;
}

function createMethods(cvm: SimulatedCvm, logger: Logger, guestApis: GuestApis): Map<string, Method> {
  const identity = cvm.info();
  // The boot-time measurements a real CVM extends into RTMR3 that the simulator knows; then
  // whatever the app emits. Info's rtmr3 is always the replay of this log.
  const eventLog: EventLogEntry[] = [
    runtimeEvent("app-id", identity.appId),
    runtimeEvent("compose-hash", identity.composeHash),
    runtimeEvent("instance-id", identity.instanceId),
  ];
  const zeros = (length: number) => hex(new Uint8Array(length));
  const vmConfig = asciiJson({ simulator: true });

  const methods: [string, Method][] = [
    [
      "/GetKey",
      {
        allowGet: false,
        handle(body) {
          const path = requireString(body, "path");
          const purpose = requireString(body, "purpose");
          const algorithm = requireAlgorithm(body);
          logger.info({ path, purpose, algorithm }, "GetKey");
          const { key, signatureChain } = cvm.getKey(path, purpose, algorithm);
          return { key: hex(key), signature_chain: signatureChain.map(hex), simulator: true };
        },
      },
    ],
    [
      "/GetQuote",
      {
        allowGet: false,
        handle(body) {
          const reportData = requireReportData(body);
          logger.info({ reportDataLength: reportData.length }, "GetQuote");
          return {
            quote: hex(cvm.getQuote(reportData)),
            event_log: asciiJson(eventLog),
            report_data: hex(padReportData(reportData)),
            vm_config: vmConfig,
            simulator: true,
          };
        },
      },
    ],
    [
      "/Info",
      {
        allowGet: true,
        handle() {
          const info = cvm.info();
          const tcbInfo = {
            mrtd: zeros(48),
            rtmr0: zeros(48),
            rtmr1: zeros(48),
            rtmr2: zeros(48),
            rtmr3: hex(replayRtmr(eventLog)),
            mr_aggregated: zeros(32),
            os_image_hash: zeros(32),
            compose_hash: hex(info.composeHash),
            device_id: hex(info.deviceId),
            event_log: eventLog,
            app_compose: info.appCompose,
            simulator: true,
          };
          return {
            app_id: hex(info.appId),
            instance_id: hex(info.instanceId),
            app_cert: "",
            tcb_info: asciiJson(tcbInfo),
            app_name: info.appName,
            device_id: hex(info.deviceId),
            mr_aggregated: zeros(32),
            os_image_hash: zeros(32),
            key_provider_info: asciiJson({ name: "attestmesh-simulator", id: info.kmsRootAddress }),
            compose_hash: hex(info.composeHash),
            vm_config: vmConfig,
            cloud_vendor: "",
            cloud_product: "",
            simulator: true,
            kms_root_address: info.kmsRootAddress,
            app_public_key: hex(info.appPublicKey),
          };
        },
      },
    ],
    [
      "/Version",
      {
        allowGet: true,
        handle: () => ({
          version: guestApis === "v0" ? DSTACK_API_VERSION : DSTACK_V1_API_VERSION,
          rev: SIMULATOR_REV,
          simulator: true,
        }),
      },
    ],
    [
      "/EmitEvent",
      {
        allowGet: false,
        handle(body) {
          const event = requireString(body, "event");
          if (event === "")
            throw requestError("InvalidField", "event must not be empty.", { field: "event" });
          const payload = requireHex(body, "payload");
          eventLog.push(runtimeEvent(event, payload));
          logger.info({ event, payloadLength: payload.length }, "EmitEvent");
          return { simulator: true };
        },
      },
    ],
  ];
  const v1: [string, Method][] = [
    [
      "/v1/GetKey",
      {
        allowGet: false,
        handle(body) {
          const domain = requireString(body, "domain");
          const algorithm = requireV1Algorithm(body);
          logger.info({ domain, algorithm }, "v1 GetKey");
          const { key, publicKey, signatureChain } = cvm.getKeyV1(domain, algorithm);
          return {
            key: hex(key),
            public_key: hex(publicKey),
            signature_chain: signatureChain.map(hex),
            simulator: true,
          };
        },
      },
    ],
    [
      "/v1/Attest",
      {
        allowGet: false,
        handle(body) {
          const reportData = requireReportData(body);
          logger.info({ reportDataLength: reportData.length }, "v1 Attest");
          const attestation = encodeTdxAttestation({
            quote: cvm.getQuote(reportData),
            eventLog: eventLog.map((e) => ({
              imr: e.imr,
              event_type: e.event_type,
              digest: hexToBytes(e.digest),
              event: e.event,
              event_payload: hexToBytes(e.event_payload),
            })),
            reportData: padReportData(reportData),
            config: vmConfig,
          });
          return { attestation: hex(attestation), boottime_gpu_evidence: [], simulator: true };
        },
      },
    ],
    [
      "/v1/Info",
      {
        allowGet: true,
        handle() {
          const info = cvm.info();
          return {
            app_id: hex(info.appId),
            instance_id: hex(info.instanceId),
            app_name: info.appName,
            device_id: hex(info.deviceId),
            mr_aggregated: zeros(32),
            os_image_hash: zeros(32),
            compose_hash: hex(info.composeHash),
            app_compose: info.appCompose,
            vm_config: vmConfig,
            key_provider_info: asciiJson({ name: "attestmesh-simulator", id: info.kmsRootAddress }),
            simulator: true,
          };
        },
      },
    ],
    [
      "/v1/Version",
      {
        allowGet: true,
        handle: () => ({ version: DSTACK_V1_API_VERSION, rev: SIMULATOR_REV, simulator: true }),
      },
    ],
  ];
  return new Map(guestApis === "v0" ? methods : [...methods, ...v1]);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(
          requestError("PayloadTooLarge", `request body exceeds ${MAX_BODY_BYTES} bytes.`, {
            limit: MAX_BODY_BYTES,
          }),
        );
        req.removeAllListeners("data");
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolveBody(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function parseBody(text: string): JsonObject {
  if (text.trim() === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw requestError("InvalidJson", "request body is not valid JSON; send a JSON object.");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw requestError("InvalidJson", "request body must be a JSON object.");
  }
  return parsed as JsonObject;
}

function send(res: ServerResponse, status: number, body: JsonObject, headers: JsonObject = {}): void {
  const text = asciiJson(body);
  res.writeHead(status, {
    ...headers,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

/** Serves `cvm` as a dstack guest agent on a unix socket (mode 0600) until `close()`. */
export async function startDstackSimulator(options: DstackSimulatorOptions): Promise<DstackSimulator> {
  const socketPath = resolve(options.socketPath);
  const logger = (options.logger ?? pino({ name: "dstack-sim" })).child({ socketPath });
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new AttestmeshError(
      `socket path ${socketPath} is ${Buffer.byteLength(socketPath)} bytes; unix sockets allow ${MAX_SOCKET_PATH_BYTES}. Use a shorter path.`,
      { code: "SocketPathTooLong", details: { socketPath } },
    );
  }
  const guestApis = options.guestApis ?? "v0+v1";
  const methods = createMethods(options.cvm, logger, guestApis);

  const server = createServer(async (req, res) => {
    const started = performance.now();
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    // `/v0/<Method>` is the same handler as the unversioned alias.
    const route = path.startsWith("/v0/") ? path.slice(3) : path;
    let status = 200;
    try {
      if (route.startsWith("/v1/") && guestApis === "v0") {
        // An agent before 0.6 has no /v1 mount: its server's own 404 page, not prpc JSON.
        status = 404;
        res.writeHead(status, { "content-type": "text/plain", "content-length": 9 });
        res.end("Not Found");
        logger.warn({ route, status }, "no /v1 mount (guest API v0 only)");
        return;
      }
      const method = methods.get(route);
      if (method === undefined && route.startsWith("/v1/")) {
        throw requestError("ServiceNotFound", `Service not found: ${route.slice(4)}`, { route });
      }
      if (method === undefined) {
        throw NOT_SIMULATED.has(route)
          ? requestError("NotSimulated", `${route} is not reproduced by the attestmesh dstack simulator.`, {
              route,
            })
          : requestError(
              "UnknownMethod",
              `no such dstack method ${JSON.stringify(route)}; use /GetKey, /GetQuote, /Info, /Version or /EmitEvent.`,
              { route },
            );
      }
      if (req.method !== "POST" && !(req.method === "GET" && method.allowGet)) {
        throw requestError("MethodNotAllowed", `${route} takes POST with a JSON body, not ${req.method}.`, {
          allow: method.allowGet ? "GET, POST" : "POST",
        });
      }
      const body = parseBody(await readBody(req));
      send(res, status, method.handle(body));
      logger.debug({ route, status, ms: Math.round(performance.now() - started) }, "request");
    } catch (error) {
      if (error instanceof AttestmeshError) {
        status = STATUS_BY_CODE[error.code] ?? 400;
        const headers: JsonObject = {};
        if (typeof error.details.allow === "string") headers.allow = error.details.allow;
        if (status === 413) headers.connection = "close";
        send(res, status, { error: error.message, code: error.code, simulator: true }, headers);
        logger.warn({ route, status, code: error.code, error: error.message }, "request refused");
      } else {
        status = 500;
        send(res, status, {
          error: "internal simulator error; see its log.",
          code: "Internal",
          simulator: true,
        });
        logger.error({ route, err: error }, "request failed");
      }
    }
  });

  // Requests that are not even HTTP: answer in the same JSON shape, keep serving.
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Socket) => {
    logger.warn({ code: error.code, error: error.message }, "malformed HTTP request");
    if (!socket.writable || error.code === "ECONNRESET") {
      socket.destroy();
      return;
    }
    const text = asciiJson({ error: "malformed HTTP request.", code: "MalformedHttp", simulator: true });
    socket.end(
      `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${text.length}\r\nconnection: close\r\n\r\n${text}`,
    );
  });

  await clearStaleSocket(socketPath, (problem) =>
    problem === "not-a-socket"
      ? new AttestmeshError(
          `${socketPath} exists and is not a socket; remove it or choose another socket path.`,
          {
            code: "SocketPathNotSocket",
            details: { socketPath },
          },
        )
      : new AttestmeshError(
          `another server is listening on ${socketPath}; stop it or choose another socket path.`,
          {
            code: "SocketInUse",
            retryable: true,
            details: { socketPath },
          },
        ),
  );
  await new Promise<void>((listening, failed) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      failed(
        new AttestmeshError(
          `cannot listen on ${socketPath} (${error.code ?? error.message}); check that its directory exists and is writable.`,
          { code: "SocketListenFailed", details: { socketPath }, cause: error },
        ),
      ),
    );
    // bind(2) runs inside listen(), so this umask makes the socket 0600 from its first moment.
    // Worker threads cannot change the umask; the chmod below still applies there.
    let previousUmask: number | undefined;
    try {
      previousUmask = process.umask(0o177);
    } catch {}
    try {
      server.listen(socketPath, () => {
        server.removeAllListeners("error");
        server.on("error", (error) => logger.error({ err: error }, "server error"));
        listening();
      });
    } finally {
      if (previousUmask !== undefined) process.umask(previousUmask);
    }
  });
  await chmod(socketPath, 0o600);
  const { ino } = await lstat(socketPath);
  logger.info({ appId: hex(options.cvm.info().appId) }, "dstack simulator listening");

  let closing: Promise<void> | undefined;
  return {
    socketPath,
    close() {
      closing ??= new Promise<void>((closed) => {
        server.close(() => closed());
        server.closeAllConnections();
      }).then(async () => {
        // Closing already unlinks the socket (libuv); remove it only if it is still ours, never a
        // socket a successor bound at the same path in between.
        const current = await lstat(socketPath).catch(() => undefined);
        if (current?.ino === ino) await rm(socketPath, { force: true });
        logger.info("dstack simulator stopped");
      });
      return closing;
    },
  };
}
