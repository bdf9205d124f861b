/**
 * The TDX event log as dstack writes it, read back: every entry extends one RTMR with its digest
 * (`mr = sha384(mr || digest)` from 48 zero bytes), and dstack's own runtime events (RTMR3, event type
 * 0x08000001) have the digest `sha384(le32(event_type) || ":" || event || ":" || payload)`, so their
 * payloads can be checked, not only folded. dstack's runtime events say what booted: `app-id`
 * (20 bytes), `compose-hash` (32 bytes, sha256 of the exact app-compose.json), `instance-id`,
 * `key-provider` (JSON `{name, id}`), then `system-ready` and any event the app emits.
 *
 * Entries arrive as dstack's JSON (hex strings; v0 `GetQuote`'s `event_log` is that JSON as text) or
 * as bytes (v1 `Attest`); both are read into one form.
 */
import { sha384 } from "@noble/hashes/sha2";
import { bytesToHex, concatBytes, utf8ToBytes } from "@noble/hashes/utils";
import { looseBytes } from "../bytes.ts";
import { AttestmeshError } from "../errors.ts";

/** dstack's event type for runtime events (RTMR3). */
export const DSTACK_RUNTIME_EVENT_TYPE = 0x08000001;

/** One event-log entry with its bytes decoded. */
export interface EventLogEntry {
  readonly imr: number;
  readonly eventType: number;
  /** 48 bytes. */
  readonly digest: Uint8Array;
  readonly event: string;
  readonly payload: Uint8Array;
}

/** What dstack's runtime events say about the CVM (hex without 0x; absent when the log lacks it). */
export interface DstackIdentity {
  readonly appId: string | undefined;
  readonly composeHash: string | undefined;
  /** Empty when the app sets `no_instance_id`. */
  readonly instanceId: string | undefined;
  /** The key provider event's JSON, as dstack writes it (`{name, id}`), or its text if not JSON. */
  readonly keyProvider: { readonly name?: string; readonly id?: string; readonly raw: string } | undefined;
  /** Every runtime event in log order: name and payload (hex). */
  readonly events: readonly { readonly event: string; readonly payload: string }[];
}

function malformed(message: string, details: Record<string, unknown> = {}, cause?: unknown): never {
  throw new AttestmeshError(`the event log is malformed: ${message}`, {
    code: "EventLogMalformed",
    details,
    cause,
  });
}

function bytesOf(value: unknown, field: string): Uint8Array {
  return looseBytes(value) ?? malformed(`${field} is not bytes (hex text or byte values).`, { field });
}

/**
 * Reads an event log from dstack's JSON form (a list, or that list as JSON text) or the v1 attestation's
 * byte form. Field names: `imr`, `event_type`, `digest`, `event`, `event_payload`.
 */
export function parseEventLog(input: unknown): EventLogEntry[] {
  let list = input;
  if (typeof input === "string") {
    try {
      list = JSON.parse(input);
    } catch (cause) {
      malformed("it is not JSON.", {}, cause);
    }
  }
  if (!Array.isArray(list)) malformed("it is not a list of entries.");
  return list.map((raw, i) => {
    if (typeof raw !== "object" || raw === null) malformed(`entry ${i} is not an object.`, { index: i });
    const e = raw as Record<string, unknown>;
    const imr = e.imr;
    const eventType = e.event_type ?? e.eventType;
    if (typeof imr !== "number" || !Number.isInteger(imr) || imr < 0 || imr > 3) {
      malformed(`entry ${i} has no imr in 0..3.`, { index: i });
    }
    if (typeof eventType !== "number" || !Number.isInteger(eventType)) {
      malformed(`entry ${i} has no integer event_type.`, { index: i });
    }
    const event = e.event ?? "";
    if (typeof event !== "string") malformed(`entry ${i}'s event is not text.`, { index: i });
    const digest = bytesOf(e.digest, `entry ${i} digest`);
    if (digest.length !== 48)
      malformed(`entry ${i}'s digest is ${digest.length} bytes, not 48.`, { index: i });
    return {
      imr,
      eventType,
      digest,
      event,
      payload: bytesOf(e.event_payload ?? e.payload ?? "", `entry ${i} payload`),
    };
  });
}

/** dstack's digest of a runtime event. */
export function runtimeEventDigest(event: string, payload: Uint8Array): Uint8Array {
  const type = new Uint8Array(4);
  new DataView(type.buffer).setUint32(0, DSTACK_RUNTIME_EVENT_TYPE, true);
  const colon = utf8ToBytes(":");
  return sha384(concatBytes(type, colon, utf8ToBytes(event), colon, payload));
}

/** RTMR0–3 replayed from the log: `mr = sha384(mr || digest)` from 48 zero bytes, per register. */
export function replayRtmrs(log: readonly EventLogEntry[]): [Uint8Array, Uint8Array, Uint8Array, Uint8Array] {
  const mrs: [Uint8Array, Uint8Array, Uint8Array, Uint8Array] = [
    new Uint8Array(48),
    new Uint8Array(48),
    new Uint8Array(48),
    new Uint8Array(48),
  ];
  for (const entry of log) mrs[entry.imr] = sha384(concatBytes(mrs[entry.imr]!, entry.digest));
  return mrs;
}

/**
 * The runtime events whose digest is not what their name and payload give: the first such index, or
 * undefined when every one matches. (Boot events of RTMR0–2 are measured by firmware; only their fold
 * into the RTMRs can be checked.)
 */
export function firstForgedRuntimeEvent(log: readonly EventLogEntry[]): number | undefined {
  const at = log.findIndex(
    (e) =>
      e.imr === 3 &&
      e.eventType === DSTACK_RUNTIME_EVENT_TYPE &&
      bytesToHex(runtimeEventDigest(e.event, e.payload)) !== bytesToHex(e.digest),
  );
  return at < 0 ? undefined : at;
}

/**
 * What dstack's runtime events say. When an event occurs twice, the first counts: dstack writes the
 * boot events once, before the app runs, and anything later was emitted by the app.
 */
export function dstackIdentity(log: readonly EventLogEntry[]): DstackIdentity {
  const runtime = log.filter((e) => e.imr === 3 && e.eventType === DSTACK_RUNTIME_EVENT_TYPE);
  const first = (name: string) => runtime.find((e) => e.event === name)?.payload;
  const hex = (b: Uint8Array | undefined) => (b === undefined ? undefined : bytesToHex(b));
  const provider = first("key-provider");
  let keyProvider: DstackIdentity["keyProvider"];
  if (provider !== undefined) {
    const raw = new TextDecoder().decode(provider);
    try {
      const parsed = JSON.parse(raw) as { name?: unknown; id?: unknown };
      keyProvider = {
        raw,
        ...(typeof parsed.name === "string" ? { name: parsed.name } : {}),
        ...(typeof parsed.id === "string" ? { id: parsed.id } : {}),
      };
    } catch {
      keyProvider = { raw };
    }
  }
  return {
    appId: hex(first("app-id")),
    composeHash: hex(first("compose-hash")),
    instanceId: hex(first("instance-id")),
    keyProvider,
    events: runtime.map((e) => ({ event: e.event, payload: bytesToHex(e.payload) })),
  };
}
