// The bridge's framing codec: frames survive any chunking; oversize lengths and garbage are refused
// before anything is buffered or delivered (the hello: hello.test.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { WG_GATEWAY_MTU } from "../../src/model/wireguard.ts";
import {
  createFrameDecoder,
  DEFAULT_MAX_PAYLOAD,
  encodeFrame,
  FRAME_LIMIT,
  KEEPALIVE_FRAME,
} from "../../src/transport/frame.ts";

function datagram(size: number, seed: number): Buffer {
  return Buffer.from(Array.from({ length: size }, (_, i) => (i * 31 + seed) & 0xff));
}

describe("frame codec", () => {
  it("round-trips datagrams split at every possible byte boundary", () => {
    const payloads = [datagram(148, 1), datagram(1452, 2), datagram(1, 3), datagram(92, 4)];
    const stream = Buffer.concat([...payloads.map(encodeFrame), KEEPALIVE_FRAME]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const decoder = createFrameDecoder();
      const frames = [...decoder.push(stream.subarray(0, cut)), ...decoder.push(stream.subarray(cut))];
      assert.deepEqual(frames.slice(0, 4), payloads, `cut at ${cut}`);
      assert.equal(frames[4]?.length, 0, "a keepalive comes out empty");
      assert.equal(decoder.pending, 0);
    }
  });

  it("holds a partial frame until its last byte arrives, one byte at a time", () => {
    const decoder = createFrameDecoder();
    const frame = encodeFrame(datagram(300, 9));
    for (let i = 0; i < frame.length - 1; i++) assert.deepEqual(decoder.push(frame.subarray(i, i + 1)), []);
    assert.equal(decoder.pending, frame.length - 1);
    assert.deepEqual(decoder.push(frame.subarray(frame.length - 1)), [datagram(300, 9)]);
  });

  it("does not let later chunks change a payload already delivered", () => {
    const decoder = createFrameDecoder();
    const chunk = Buffer.concat([encodeFrame(Buffer.from("first")), encodeFrame(Buffer.from("sec"))]);
    const [first] = decoder.push(chunk.subarray(0, 9));
    chunk.fill(0);
    assert.equal(first?.toString(), "first");
  });

  it("refuses a frame longer than the limit as soon as its header arrives", () => {
    const decoder = createFrameDecoder(1500);
    const header = Buffer.alloc(2);
    header.writeUInt16BE(1501);
    assert.throws(() => decoder.push(header), { code: "TransportFrameInvalid" });
    assert.equal(decoder.pending, 0, "nothing of the oversize frame is buffered");
    assert.throws(() => decoder.push(encodeFrame(Buffer.from("ok"))), { code: "TransportFrameInvalid" });
  });

  it("refuses to encode a datagram a 2-byte length cannot describe", () => {
    assert.throws(() => encodeFrame(new Uint8Array(FRAME_LIMIT + 1)), { code: "TransportFrameInvalid" });
    assert.equal(encodeFrame(new Uint8Array(FRAME_LIMIT)).length, FRAME_LIMIT + 2);
  });

  it("stops at garbage: an HTTP request is an oversize frame, never a datagram", () => {
    const decoder = createFrameDecoder();
    assert.throws(() => decoder.push(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), {
      code: "TransportFrameInvalid",
    });
  });

  it("takes a whole WireGuard datagram at the gateway path's MTU, the size every bridge accepts", () => {
    // WireGuard adds 32 bytes (type, receiver, counter, tag). Older sidecars decode with the same
    // limit, so this MTU must not outgrow it.
    const largest = WG_GATEWAY_MTU + 32;
    assert.equal(largest, DEFAULT_MAX_PAYLOAD);
    const decoder = createFrameDecoder();
    const [payload] = decoder.push(encodeFrame(Buffer.alloc(largest, 7)));
    assert.equal(payload?.length, largest);
    assert.throws(() => createFrameDecoder().push(encodeFrame(Buffer.alloc(largest + 1))), {
      code: "TransportFrameInvalid",
    });
  });

  it("rejects an invalid payload limit", () => {
    assert.throws(() => createFrameDecoder(10), RangeError);
    assert.throws(() => createFrameDecoder(FRAME_LIMIT + 1), RangeError);
  });
});
