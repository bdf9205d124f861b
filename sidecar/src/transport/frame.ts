// The bridge's wire format on one TCP/TLS stream. Every unit is a frame: a 2-byte big-endian payload
// length, then the payload. A zero-length frame is a keepalive. The first frame a connecting side
// sends is a signed hello (hello.ts); every later non-empty frame carries exactly one WireGuard
// datagram. The codec only has to stay bounded and refuse what cannot be ours.
//
//   frame  = length:u16be payload[length]
import { AttestmeshError } from "../errors.ts";

export const FRAME_HEADER_BYTES = 2;
/** The largest payload a 2-byte length can describe. */
export const FRAME_LIMIT = 0xffff;
/**
 * Default payload limit: the largest WireGuard datagram, at the gateway path's route MTU (4,064 inner
 * bytes, model/wireguard.ts WG_GATEWAY_MTU) plus WireGuard's 32. Raising it is safe; lowering it, or
 * raising WG_GATEWAY_MTU past it, cuts off peers (a longer frame closes the stream).
 */
export const DEFAULT_MAX_PAYLOAD = 4096;
/** The smallest payload limit a decoder accepts: a hello and a WireGuard handshake must fit. */
export const MIN_MAX_PAYLOAD = 256;

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

const EMPTY = Buffer.alloc(0);

export function createFrameDecoder(maxPayload: number = DEFAULT_MAX_PAYLOAD): FrameDecoder {
  if (!Number.isInteger(maxPayload) || maxPayload < MIN_MAX_PAYLOAD || maxPayload > FRAME_LIMIT) {
    throw new RangeError(`maxPayload must be ${MIN_MAX_PAYLOAD}..${FRAME_LIMIT}, got ${maxPayload}`);
  }
  let buffered: Buffer = EMPTY;
  let failed: AttestmeshError | undefined;
  return {
    push(chunk) {
      if (failed !== undefined) throw failed;
      const input = Buffer.isBuffer(chunk)
        ? chunk
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      const data = buffered.length === 0 ? input : Buffer.concat([buffered, input]);
      // First find where the complete frames end, then copy them out once: the caller may keep
      // payloads while later chunks reuse the socket's buffers, and one copy per chunk is cheaper
      // than one per datagram.
      let end = 0;
      while (data.length - end >= FRAME_HEADER_BYTES) {
        const length = data.readUInt16BE(end);
        if (length > maxPayload) {
          failed = frameError(`a frame announces ${length} bytes, more than the limit of ${maxPayload}`, {
            length,
            maxPayload,
          });
          buffered = EMPTY;
          throw failed;
        }
        if (data.length - end < FRAME_HEADER_BYTES + length) break;
        end += FRAME_HEADER_BYTES + length;
      }
      const frames: Buffer[] = [];
      if (end > 0) {
        const copy = data === input ? Buffer.from(data.subarray(0, end)) : data.subarray(0, end);
        for (let at = 0; at < end; ) {
          const length = copy.readUInt16BE(at);
          frames.push(copy.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length));
          at += FRAME_HEADER_BYTES + length;
        }
      }
      buffered = end === data.length ? EMPTY : Buffer.from(data.subarray(end));
      return frames;
    },
    get pending() {
      return buffered.length;
    },
  };
}
