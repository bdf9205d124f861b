// Bytes as the dstack guest agent and its JSON documents spell them: raw bytes, a list of byte values,
// or hex text with or without 0x.

/** `value` as bytes (a copy), or undefined when it is none of the spellings above. */
export function looseBytes(value: unknown): Uint8Array | undefined {
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (Array.isArray(value) && value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
    return Uint8Array.from(value as number[]);
  }
  if (typeof value === "string" && /^(0x)?([0-9a-fA-F]{2})*$/.test(value)) {
    return Uint8Array.from(Buffer.from(value.replace(/^0x/, ""), "hex"));
  }
  return undefined;
}

/** One entry of dstack's JSON event log, as `GetQuote` returns it (digest and payload in hex). */
export interface EventLogJson {
  readonly imr: number;
  readonly event_type: number;
  readonly digest: string;
  readonly event: string;
  readonly event_payload: string;
}
