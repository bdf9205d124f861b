/**
 * dstack's versioned attestation (`AttestResponse.attestation` of guest API v1; dstack's
 * docs/guest-api-v1.md "Extracting a quote from an attestation", dstack-attest `v1.rs`), the parts this
 * project reads. The first byte tells the form: 0x00 is the legacy SCALE-encoded V0 (not read here), a
 * MessagePack map prefix is V1, a named map:
 *
 *   { version: 1,
 *     platform: { kind: "tdx" | "gcp-tdx" | …, data: { quote, event_log, … } },
 *     stack:    { kind: "dstack" | "dstack-pod", data: { report_data, runtime_events, config, … } } }
 *
 * Byte fields are read as MessagePack bin, an array of byte values (serde's default for `Vec<u8>`) or
 * hex text; they are written as arrays of byte values, as dstack's `rmp_serde::to_vec_named` writes a
 * `Vec<u8>`.
 */
import { Packr } from "msgpackr";
import { looseBytes } from "../bytes.ts";
import { AttestmeshError } from "../errors.ts";

/** The only V1 attestation version there is. */
export const ATTESTATION_VERSION = 1;

/** One TDX event-log entry as the attestation carries it. */
export interface AttestationEvent {
  readonly imr: number;
  readonly event_type: number;
  readonly digest: Uint8Array;
  readonly event: string;
  readonly event_payload: Uint8Array;
}

/** What a TDX attestation tells its reader. */
export interface TdxAttestation {
  readonly platform: "tdx" | "gcp-tdx";
  /** The raw TDX quote, exactly what v0's GetQuote returned. */
  readonly quote: Uint8Array;
  readonly eventLog: readonly AttestationEvent[];
  /** The 64 bytes of report data the caller asked for. */
  readonly reportData: Uint8Array;
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

function malformed(message: string, details: Record<string, unknown> = {}, cause?: unknown): never {
  throw new AttestmeshError(`the dstack attestation is malformed: ${message}`, {
    code: "InvalidAttestation",
    details,
    cause,
  });
}

function record(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    malformed(`${field} is not a map.`, { field });
  }
  return value as Record<string, unknown>;
}

function bytes(value: unknown, field: string): Uint8Array {
  return looseBytes(value) ?? malformed(`${field} is not bytes.`, { field });
}

/** Reads a V1 attestation and returns its TDX quote, event log and report data. */
export function decodeTdxAttestation(encoded: Uint8Array): TdxAttestation {
  const first = encoded[0];
  if (first === undefined) malformed("it is empty.");
  if (first === 0x00) {
    malformed("it is the legacy SCALE-encoded V0 form, which guest API v1 does not return.", {
      first,
    });
  }
  if (!((first >= 0x80 && first <= 0x8f) || first === 0xde || first === 0xdf)) {
    malformed("it does not start with a MessagePack map.", { first });
  }
  let decoded: unknown;
  try {
    decoded = packr.unpack(encoded);
  } catch (cause) {
    malformed("it is not valid MessagePack.", {}, cause);
  }
  const top = record(decoded, "attestation");
  if (top.version !== ATTESTATION_VERSION) {
    malformed(`version is ${String(top.version)}, expected ${ATTESTATION_VERSION}.`, {
      version: top.version,
    });
  }
  const platform = record(top.platform, "platform");
  const kind = platform.kind;
  if (kind !== "tdx" && kind !== "gcp-tdx") {
    malformed(`platform ${JSON.stringify(kind)} carries no TDX quote; attestmesh runs on Intel TDX.`, {
      platform: kind,
    });
  }
  const data = record(platform.data, "platform.data");
  const log = data.event_log;
  if (!Array.isArray(log)) malformed("platform.data.event_log is not a list.");
  const eventLog = log.map((entry, i) => {
    const e = record(entry, `event_log[${i}]`);
    if (typeof e.imr !== "number" || typeof e.event_type !== "number" || typeof e.event !== "string") {
      malformed(`event_log[${i}] lacks imr, event_type or event.`, { index: i });
    }
    return {
      imr: e.imr,
      event_type: e.event_type,
      digest: bytes(e.digest, `event_log[${i}].digest`),
      event: e.event,
      event_payload: bytes(e.event_payload, `event_log[${i}].event_payload`),
    };
  });
  const stack = record(top.stack, "stack");
  const reportData = bytes(record(stack.data, "stack.data").report_data, "stack.report_data");
  if (reportData.length !== 64) malformed(`stack.report_data is ${reportData.length} bytes, not 64.`);
  return { platform: kind, quote: bytes(data.quote, "platform.data.quote"), eventLog, reportData };
}

/** Writes a V1 TDX attestation (the simulator's `/v1/Attest`). */
export function encodeTdxAttestation(fields: {
  readonly quote: Uint8Array;
  readonly eventLog: readonly AttestationEvent[];
  readonly reportData: Uint8Array;
  /** The VM configuration document (`stack.data.config`). */
  readonly config: string;
}): Uint8Array {
  const list = (b: Uint8Array) => Array.from(b);
  return packr.pack({
    version: ATTESTATION_VERSION,
    platform: {
      kind: "tdx",
      data: {
        quote: list(fields.quote),
        event_log: fields.eventLog.map((e) => ({
          imr: e.imr,
          event_type: e.event_type,
          digest: list(e.digest),
          event: e.event,
          event_payload: list(e.event_payload),
        })),
      },
    },
    stack: {
      kind: "dstack",
      data: {
        report_data: list(fields.reportData),
        runtime_events: fields.eventLog
          .filter((e) => e.imr === 3)
          .map((e) => ({ event: e.event, payload: list(e.event_payload) })),
        config: fields.config,
      },
    },
  });
}
