// Byte-level helpers for the mesh protocols: a bounds-checked reader that throws a `WireError`
// naming the field that was short or wrong, and a writer. Integers are big-endian. Then the frame every
// signed mesh datagram shares: the header (version, type, chain id, cluster) and the closing Ed25519
// signature over a context string and the bytes before it.
import { type Address, getAddress } from "viem";
import { ED25519_SIGNATURE_BYTES } from "./crypto.ts";

/** A datagram that does not parse; `field` names the first bad field. */
export class WireError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = "WireError";
    this.field = field;
  }
}

export class Reader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #offset = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get offset(): number {
    return this.#offset;
  }

  #need(n: number, field: string): void {
    if (this.#offset + n > this.#bytes.length) {
      throw new WireError(
        field,
        `needs ${n} bytes at offset ${this.#offset}, datagram has ${this.#bytes.length}`,
      );
    }
  }

  u8(field: string): number {
    this.#need(1, field);
    return this.#view.getUint8(this.#offset++);
  }

  u16(field: string): number {
    this.#need(2, field);
    const value = this.#view.getUint16(this.#offset);
    this.#offset += 2;
    return value;
  }

  u64(field: string): bigint {
    this.#need(8, field);
    const value = this.#view.getBigUint64(this.#offset);
    this.#offset += 8;
    return value;
  }

  bytes(n: number, field: string): Uint8Array {
    this.#need(n, field);
    const value = this.#bytes.slice(this.#offset, this.#offset + n);
    this.#offset += n;
    return value;
  }

  address(field: string): Address {
    const raw = this.bytes(20, field);
    return getAddress(`0x${Buffer.from(raw).toString("hex")}`);
  }

  /** Everything read so far (the signed part of a message). */
  consumed(): Uint8Array {
    return this.#bytes.subarray(0, this.#offset);
  }

  end(field = "length"): void {
    if (this.#offset !== this.#bytes.length) {
      throw new WireError(field, `${this.#bytes.length - this.#offset} trailing bytes after the message`);
    }
  }
}

export class Writer {
  readonly #parts: Uint8Array[] = [];

  u8(value: number): this {
    this.#parts.push(Uint8Array.of(value));
    return this;
  }

  u16(value: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, value);
    this.#parts.push(b);
    return this;
  }

  u64(value: bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, value);
    this.#parts.push(b);
    return this;
  }

  bytes(value: Uint8Array): this {
    this.#parts.push(value);
    return this;
  }

  address(value: Address): this {
    return this.bytes(Buffer.from(value.slice(2), "hex"));
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const part of this.#parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }
}

/** The protocol version byte every mesh datagram starts with. */
export const MESH_PROTOCOL_VERSION = 1;

/** The second byte: what the datagram is. */
export const MessageType = {
  /** Retired (all-to-all heartbeats): no longer sent or accepted. */
  Heartbeat: 1,
  CskRequest: 2,
  CskResponse: 3,
  /** SWIM-style probes with signed liveness statements (heartbeat/swimCodec.ts). */
  Liveness: 4,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** The cluster a datagram belongs to: a message for another chain or diamond is never accepted. */
export interface ClusterId {
  readonly chainId: number;
  readonly cluster: Address;
}

export const U64_MAX = (1n << 64n) - 1n;

/** The type byte of a datagram, or undefined when it is not a version-1 mesh datagram. */
export function peekType(datagram: Uint8Array): number | undefined {
  if (datagram.length < 2 || datagram[0] !== MESH_PROTOCOL_VERSION) return undefined;
  return datagram[1];
}

/** Signing input: a context string, a NUL, then the signed bytes; one context per message kind. */
export function signingInput(context: string, body: Uint8Array): Uint8Array {
  const prefix = new TextEncoder().encode(`${context}\0`);
  const out = new Uint8Array(prefix.length + body.length);
  out.set(prefix, 0);
  out.set(body, prefix.length);
  return out;
}

/** Writes the header of a signed mesh datagram: version, type, chain id (u64), cluster (20 bytes). */
function writeHeader(w: Writer, type: MessageType, c: ClusterId): Writer {
  return w.u8(MESH_PROTOCOL_VERSION).u8(type).u64(BigInt(c.chainId)).address(c.cluster);
}

/** Reads that header; refuses another version or type, and a chain id outside 1 .. 2^53 − 1. */
function readHeader(r: Reader, type: MessageType): ClusterId {
  const version = r.u8("version");
  if (version !== MESH_PROTOCOL_VERSION) throw new WireError("version", `unsupported version ${version}`);
  const got = r.u8("type");
  if (got !== type) throw new WireError("type", `type ${got}, expected ${type}`);
  const chainId = r.u64("chainId");
  if (chainId === 0n || chainId > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new WireError("chainId", `chain id ${chainId} is out of range`);
  }
  return { chainId: Number(chainId), cluster: r.address("cluster") };
}

/** Reads a member id (u64); ids start at 1. */
export function readMemberId(r: Reader, field: string): bigint {
  const id = r.u64(field);
  if (id === 0n) throw new WireError(field, "member id 0 does not exist");
  return id;
}

/** A decoded signed datagram: its message, its signature and what the signature covers. */
export interface Signed<T> {
  readonly message: T;
  readonly signature: Uint8Array;
  /** What the signature covers (context prefix included). */
  readonly signedBytes: Uint8Array;
}

/**
 * Encodes a signed datagram: the header, the fields `body` writes, then the signature `sign` makes over
 * `signingInput(context, header and fields)`.
 */
export function encodeSigned(
  type: MessageType,
  cluster: ClusterId,
  context: string,
  sign: (message: Uint8Array) => Uint8Array,
  body: (w: Writer) => Writer,
): Uint8Array {
  const signed = body(writeHeader(new Writer(), type, cluster)).finish();
  const signature = sign(signingInput(context, signed));
  const out = new Uint8Array(signed.length + signature.length);
  out.set(signed, 0);
  out.set(signature, signed.length);
  return out;
}

/**
 * Decodes a signed datagram: the header, the fields `body` reads, then the closing signature, which must
 * end the datagram. No signature check.
 */
export function decodeSigned<T>(
  datagram: Uint8Array,
  type: MessageType,
  context: string,
  body: (r: Reader, cluster: ClusterId) => T,
): Signed<T> {
  const r = new Reader(datagram);
  const message = body(r, readHeader(r, type));
  const signed = r.consumed().slice();
  const signature = r.bytes(ED25519_SIGNATURE_BYTES, "signature");
  r.end();
  return { message, signature, signedBytes: signingInput(context, signed) };
}
