// One framed stream: frames out and in over a connected duplex (a TLS socket), with a write limit so
// a slow or dead path never buffers without bound, keepalive frames while idle, and a deadline on
// silence so a half-dead connection is noticed. The owner decides what frames mean.
import type { Duplex } from "node:stream";
import {
  createFrameDecoder,
  DEFAULT_MAX_PAYLOAD,
  FRAME_HEADER_BYTES,
  FRAME_LIMIT,
  frameError,
  KEEPALIVE_FRAME,
} from "./frame.ts";

export interface FramedStreamOptions {
  readonly socket: Duplex;
  readonly maxPayload?: number;
  /** Bytes the socket may hold unsent before `send` refuses (congested); default 256 KiB. */
  readonly highWaterBytes?: number;
  /** A keepalive frame goes out after this long without a write; default 10 s. */
  readonly keepaliveMs?: number;
  /** The stream closes after this long without a received byte; default 35 s. */
  readonly idleTimeoutMs?: number;
  /** Once, on the first frame received (a keepalive included): the other side is there and reading. */
  readonly onFirstFrame?: (stream: FramedStream) => void;
  /** Every received payload; keepalives (empty) are not passed on. */
  readonly onFrame: (payload: Buffer, stream: FramedStream) => void;
  /** The socket can take writes again after `send` refused one. */
  readonly onDrain?: (stream: FramedStream) => void;
  /** Called once, with why the stream ended. */
  readonly onClose?: (reason: string, stream: FramedStream) => void;
}

export interface FramedStream {
  /**
   * Queues one frame, written with the others of this turn of the event loop; false (nothing queued)
   * while the socket holds more than its write limit. `payload` must not change until then.
   */
  send(payload: Uint8Array): boolean;
  /** Writes bytes that are already framed (a hello). */
  sendRaw(frame: Buffer): void;
  readonly congested: boolean;
  readonly closed: boolean;
  /** When the stream was made (ms since the epoch). */
  readonly openedAt: number;
  close(reason?: string): void;
}

/** A batch is written once it holds this many bytes, without waiting for the end of the turn. */
const BATCH_BYTES = 64 * 1024;

export function createFramedStream(options: FramedStreamOptions): FramedStream {
  const { socket } = options;
  const highWater = options.highWaterBytes ?? 256 * 1024;
  const keepaliveMs = options.keepaliveMs ?? 10_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 35_000;
  const decoder = createFrameDecoder(options.maxPayload ?? DEFAULT_MAX_PAYLOAD);
  let closed = false;
  let wantDrain = false;
  let lastWrite = Date.now();
  let lastRead = Date.now();
  let heard = false;
  // Frames sent during one turn of the event loop (every datagram WireGuard handed over in one poll)
  // go out as one socket write, so TLS seals them into as few records as fit, instead of one record
  // and one write per datagram. The payloads are referenced until then, and copied once, into the batch.
  let batch: Uint8Array[] = [];
  let batchBytes = 0;
  let scheduled: NodeJS.Immediate | undefined;

  function flush(): void {
    if (scheduled !== undefined) {
      clearImmediate(scheduled);
      scheduled = undefined;
    }
    if (batchBytes === 0 || closed) {
      batch = [];
      batchBytes = 0;
      return;
    }
    const out = Buffer.allocUnsafe(batchBytes);
    let at = 0;
    for (const payload of batch) {
      out.writeUInt16BE(payload.length, at);
      out.set(payload, at + FRAME_HEADER_BYTES);
      at += FRAME_HEADER_BYTES + payload.length;
    }
    batch = [];
    batchBytes = 0;
    socket.write(out);
    lastWrite = Date.now();
  }

  const stream: FramedStream = {
    send(payload) {
      if (closed || socket.writableLength + batchBytes > highWater) {
        wantDrain = !closed;
        return false;
      }
      if (payload.length > FRAME_LIMIT) {
        throw frameError(`a ${payload.length}-byte datagram does not fit a frame (limit ${FRAME_LIMIT})`, {
          bytes: payload.length,
        });
      }
      batch.push(payload);
      batchBytes += FRAME_HEADER_BYTES + payload.length;
      if (batchBytes >= BATCH_BYTES) flush();
      else scheduled ??= setImmediate(flush);
      return true;
    },
    sendRaw(frame) {
      if (closed) return;
      flush();
      socket.write(frame);
      lastWrite = Date.now();
    },
    get congested() {
      return closed || socket.writableLength + batchBytes > highWater;
    },
    get closed() {
      return closed;
    },
    openedAt: Date.now(),
    close(reason = "closed by this side") {
      finish(reason);
    },
  };

  const timer = setInterval(
    () => {
      const now = Date.now();
      if (now - lastRead > idleTimeoutMs) finish(`nothing received for ${idleTimeoutMs} ms`);
      else if (now - lastWrite >= keepaliveMs) stream.sendRaw(KEEPALIVE_FRAME);
    },
    Math.max(50, Math.min(keepaliveMs, idleTimeoutMs) / 2),
  );
  timer.unref();

  function finish(reason: string): void {
    if (closed) return;
    closed = true;
    clearInterval(timer);
    if (scheduled !== undefined) clearImmediate(scheduled);
    batch = [];
    batchBytes = 0;
    socket.destroy();
    options.onClose?.(reason, stream);
  }

  socket.on("data", (chunk: Buffer) => {
    lastRead = Date.now();
    let frames: Buffer[];
    try {
      frames = decoder.push(chunk);
    } catch (error) {
      finish(error instanceof Error ? error.message : String(error));
      return;
    }
    for (const frame of frames) {
      if (closed) return;
      if (!heard) {
        heard = true;
        options.onFirstFrame?.(stream);
        if (closed) return;
      }
      if (frame.length > 0) options.onFrame(frame, stream);
    }
  });
  socket.on("drain", () => {
    if (!wantDrain || closed) return;
    wantDrain = false;
    options.onDrain?.(stream);
  });
  socket.on("error", (error) => finish(error.message));
  socket.on("end", () => finish("the other side ended the stream"));
  socket.on("close", () => finish("connection closed"));
  // A socket that closed before these listeners existed would otherwise look open forever.
  if (socket.destroyed) queueMicrotask(() => finish("connection closed"));
  return stream;
}
