// The bridge's wire format on one TCP/TLS stream. Every unit is a frame: a 2-byte big-endian payload
// length, then the payload. A zero-length frame is a keepalive. The first frame a connecting side
// sends is a hello naming both ends; every later non-empty frame carries exactly one WireGuard
// datagram. Nothing here is trusted: WireGuard authenticates what the datagrams carry, so the codec
// only has to stay bounded and refuse what cannot be ours.
//
//   frame  = length:u16be payload[length]
//   hello  = "AMWG" version:u8(=1) from:appId[20] to:appId[20]           (45 bytes, in the first frame)
import { AttestmeshError } from "../errors.ts";

export const FRAME_HEADER_BYTES = 2;
/** The largest payload a 2-byte length can describe. */
export const FRAME_LIMIT = 0xffff;
/** Default payload limit: a WireGuard datagram at MTU 1420 is at most 1452 bytes. */
export const DEFAULT_MAX_PAYLOAD = 4096;
export const HELLO_MAGIC = Buffer.from("AMWG", "ascii");
export const HELLO_VERSION = 1;
export const HELLO_BYTES = HELLO_MAGIC.length + 1 + 20 + 20;

/** A stream that broke the format; the stream is closed, never resynchronised. */
export function frameError(message: string, details: Record<string, unknown> = {}): AttestmeshError {
  return new AttestmeshError(message, { code: "TransportFrameInvalid", retryable: false, details });
}

/** One frame around `payload` (empty: a keepalive). */
export function encodeFrame(payload: Uint8Array): Buffer {
  if (payload.length > FRAME_LIMIT) {
    throw frameError(`a ${payload.length}-byte datagram does not fit a frame (limit ${FRAME_LIMIT})`, {
      bytes: payload.length,
    });
  }
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt16BE(payload.length, 0);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

export const KEEPALIVE_FRAME: Buffer = encodeFrame(new Uint8Array(0));

/** The two ends of a stream, as app ids (0x + 40 lowercase hex). */
export interface Hello {
  readonly from: `0x${string}`;
  readonly to: `0x${string}`;
}

export function encodeHello(hello: Hello): Buffer {
  const payload = Buffer.concat([
    HELLO_MAGIC,
    Buffer.of(HELLO_VERSION),
    appIdBytes(hello.from, "from"),
    appIdBytes(hello.to, "to"),
  ]);
  return encodeFrame(payload);
}

/** Reads a hello payload; throws `TransportFrameInvalid` for anything else. */
export function decodeHello(payload: Uint8Array): Hello {
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (bytes.length < HELLO_MAGIC.length || !bytes.subarray(0, HELLO_MAGIC.length).equals(HELLO_MAGIC)) {
    throw frameError("the first frame is not an attestmesh hello (wrong magic)");
  }
  if (bytes[HELLO_MAGIC.length] !== HELLO_VERSION) {
    throw frameError(`unsupported hello version ${bytes[HELLO_MAGIC.length]}; this side speaks 1`, {
      version: bytes[HELLO_MAGIC.length],
    });
  }
  if (bytes.length !== HELLO_BYTES) {
    throw frameError(`a hello is ${HELLO_BYTES} bytes, this one ${bytes.length}`, { bytes: bytes.length });
  }
  const at = HELLO_MAGIC.length + 1;
  return {
    from: `0x${bytes.subarray(at, at + 20).toString("hex")}`,
    to: `0x${bytes.subarray(at + 20, at + 40).toString("hex")}`,
  };
}

function appIdBytes(appId: string, field: string): Buffer {
  const hex = appId.toLowerCase().replace(/^0x/, "");
  if (!/^[0-9a-f]{40}$/.test(hex)) throw frameError(`hello ${field} is not a 20-byte app id`, { field });
  return Buffer.from(hex, "hex");
}

/**
 * Splits a byte stream into frame payloads, across any chunking. Holds at most one partial frame
 * (≤ maxPayload + 2 bytes); a length above `maxPayload` throws `TransportFrameInvalid` at once, before
 * its payload is buffered.
 */
export interface FrameDecoder {
  /** The complete frames `chunk` finishes, in order; keepalives come out as empty payloads. */
  push(chunk: Uint8Array): Buffer[];
  /** Bytes held for a frame not complete yet. */
  readonly pending: number;
}

export function createFrameDecoder(maxPayload: number = DEFAULT_MAX_PAYLOAD): FrameDecoder {
  if (!Number.isInteger(maxPayload) || maxPayload < HELLO_BYTES || maxPayload > FRAME_LIMIT) {
    throw new RangeError(`maxPayload must be ${HELLO_BYTES}..${FRAME_LIMIT}, got ${maxPayload}`);
  }
  let buffered: Buffer = Buffer.alloc(0);
  let failed: AttestmeshError | undefined;
  return {
    push(chunk) {
      if (failed !== undefined) throw failed;
      const input = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      let data = buffered.length === 0 ? input : Buffer.concat([buffered, input]);
      const frames: Buffer[] = [];
      while (data.length >= FRAME_HEADER_BYTES) {
        const length = data.readUInt16BE(0);
        if (length > maxPayload) {
          failed = frameError(`a frame announces ${length} bytes, more than the limit of ${maxPayload}`, {
            length,
            maxPayload,
          });
          buffered = Buffer.alloc(0);
          throw failed;
        }
        if (data.length < FRAME_HEADER_BYTES + length) break;
        // A copy: the caller may keep payloads while later chunks reuse the socket's buffers.
        frames.push(Buffer.from(data.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length)));
        data = data.subarray(FRAME_HEADER_BYTES + length);
      }
      buffered = data.length === 0 ? Buffer.alloc(0) : Buffer.from(data);
      return frames;
    },
    get pending() {
      return buffered.length;
    },
  };
}
