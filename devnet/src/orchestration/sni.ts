// Reads the server name (SNI) from the first bytes of a TLS connection without terminating TLS, the
// way the dstack gateway routes passthrough connections. Handles a ClientHello split over several
// records and over several reads; everything is bounds-checked, since the bytes come from anyone.
//
// TLSPlaintext   = type:u8(22 = handshake) version:u16 length:u16 fragment[length]
// Handshake      = msg_type:u8(1 = client_hello) length:u24 body
// ClientHello    = version:u16 random[32] session_id<0..32> cipher_suites<2..2^16-2>
//                  compression_methods<1..2^8-1> extensions<0..2^16-1>
// server_name    = extension 0: list<1..2^16-1> of (name_type:u8(0 = host_name) host_name<1..2^16-1>)

export type SniResult =
  | { readonly kind: "incomplete" }
  | { readonly kind: "ok"; readonly serverName: string | undefined }
  | { readonly kind: "invalid"; readonly reason: string };

/** A ClientHello larger than this is refused (real ones are a few KiB). */
export const MAX_CLIENT_HELLO_BYTES = 16 * 1024;

const RECORD_HEADER = 5;
const HANDSHAKE = 22;
const CLIENT_HELLO = 1;

/** The SNI in `data`, the bytes received so far; "incomplete" asks for more. */
export function parseClientHelloSni(data: Uint8Array): SniResult {
  // Reassemble the handshake message from as many records as it takes.
  const fragments: Uint8Array[] = [];
  let have = 0;
  let needed: number | undefined;
  let offset = 0;
  while (needed === undefined || have < needed) {
    if (data.length < offset + RECORD_HEADER) return { kind: "incomplete" };
    if (data[offset] !== HANDSHAKE) return invalid(`not a TLS handshake record (type ${data[offset]})`);
    if (data[offset + 1] !== 3) return invalid("not a TLS record version 3.x");
    const length = (data[offset + 3]! << 8) | data[offset + 4]!;
    if (length === 0) return invalid("an empty handshake record");
    if (data.length < offset + RECORD_HEADER + length) return { kind: "incomplete" };
    const fragment = data.subarray(offset + RECORD_HEADER, offset + RECORD_HEADER + length);
    fragments.push(fragment);
    have += fragment.length;
    offset += RECORD_HEADER + length;
    if (needed === undefined && have >= 4) {
      const head = concat(fragments, 4);
      if (head[0] !== CLIENT_HELLO)
        return invalid(`the first handshake message is type ${head[0]}, not a ClientHello`);
      needed = 4 + ((head[1]! << 16) | (head[2]! << 8) | head[3]!);
      if (needed > MAX_CLIENT_HELLO_BYTES) return invalid(`a ${needed}-byte ClientHello is too large`);
    }
    if (offset > MAX_CLIENT_HELLO_BYTES + 64 * RECORD_HEADER)
      return invalid("too many records for a ClientHello");
  }
  const message = concat(fragments, needed);
  return readClientHello(message.subarray(4));
}

function readClientHello(body: Uint8Array): SniResult {
  const reader = cursor(body);
  reader.skip(2 + 32); // legacy version, random
  reader.skip(reader.u8()); // session id
  reader.skip(reader.u16()); // cipher suites
  reader.skip(reader.u8()); // compression methods
  if (reader.failed) return invalid("ClientHello truncated before its extensions");
  if (reader.remaining === 0) return { kind: "ok", serverName: undefined };
  const extensionsLength = reader.u16();
  const extensionsEnd = reader.position + extensionsLength;
  if (reader.failed || extensionsEnd > body.length) return invalid("extensions run past the ClientHello");
  while (reader.position < extensionsEnd) {
    const type = reader.u16();
    const length = reader.u16();
    if (reader.failed || reader.position + length > extensionsEnd)
      return invalid("an extension runs past the list");
    if (type !== 0) {
      reader.skip(length);
      continue;
    }
    return readServerName(body.subarray(reader.position, reader.position + length));
  }
  return { kind: "ok", serverName: undefined };
}

function readServerName(extension: Uint8Array): SniResult {
  const reader = cursor(extension);
  const listEnd = 2 + reader.u16();
  if (reader.failed || listEnd !== extension.length) return invalid("server_name list length does not match");
  while (reader.position < listEnd) {
    const nameType = reader.u8();
    const length = reader.u16();
    if (reader.failed || length === 0 || reader.position + length > listEnd) {
      return invalid("a server_name entry runs past its list");
    }
    const name = extension.subarray(reader.position, reader.position + length);
    reader.skip(length);
    if (nameType !== 0) continue;
    // RFC 6066: a host name is ASCII, no trailing dot expected but tolerated; nothing else.
    if (!name.every((c) => c > 0x20 && c < 0x7f)) return invalid("the host name is not printable ASCII");
    return { kind: "ok", serverName: Buffer.from(name).toString("ascii") };
  }
  return { kind: "ok", serverName: undefined };
}

function invalid(reason: string): SniResult {
  return { kind: "invalid", reason };
}

function concat(parts: readonly Uint8Array[], bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let at = 0;
  for (const part of parts) {
    if (at >= bytes) break;
    const take = Math.min(part.length, bytes - at);
    out.set(part.subarray(0, take), at);
    at += take;
  }
  return out;
}

function cursor(bytes: Uint8Array) {
  let position = 0;
  let failed = false;
  const take = (n: number) => {
    if (position + n > bytes.length) {
      failed = true;
      position = bytes.length;
      return undefined;
    }
    const at = position;
    position += n;
    return at;
  };
  return {
    u8() {
      const at = take(1);
      return at === undefined ? 0 : bytes[at]!;
    },
    u16() {
      const at = take(2);
      return at === undefined ? 0 : (bytes[at]! << 8) | bytes[at + 1]!;
    },
    skip(n: number) {
      take(n);
    },
    get position() {
      return position;
    },
    get remaining() {
      return bytes.length - position;
    },
    get failed() {
      return failed;
    },
  };
}
