// The framed stream over a real TCP connection: frames sent in one turn of the event loop leave in one
// socket write (so TLS seals them into few records), arrive intact and in order, and a full socket
// refuses more instead of buffering without bound.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Socket } from "node:net";
import { describe, it } from "node:test";
import { createFramedStream } from "../../src/transport/stream.ts";
import { waitFor } from "../helpers.ts";

async function socketPair(): Promise<{ client: Socket; server: Socket; close: () => void }> {
  const listener = createServer();
  listener.listen(0, "127.0.0.1");
  await once(listener, "listening");
  const port = (listener.address() as { port: number }).port;
  const accepted = once(listener, "connection");
  const { connect } = await import("node:net");
  const client = connect(port, "127.0.0.1");
  await once(client, "connect");
  const [server] = (await accepted) as [Socket];
  return {
    client,
    server,
    close: () => {
      client.destroy();
      server.destroy();
      listener.close();
    },
  };
}

describe("framed stream", () => {
  it("writes the frames of one turn of the event loop in one socket write, in order", async () => {
    const { client, server, close } = await socketPair();
    const writes: number[] = [];
    const write = client.write.bind(client);
    client.write = ((chunk: Buffer, ...rest: never[]) => {
      writes.push(chunk.length);
      return write(chunk, ...rest);
    }) as typeof client.write;
    const received: Buffer[] = [];
    const reader = createFramedStream({ socket: server, onFrame: (p) => received.push(p) });
    const writer = createFramedStream({ socket: client, onFrame: () => {} });
    const payloads = Array.from({ length: 30 }, (_, i) => Buffer.alloc(1400 + i, i));
    for (const payload of payloads) assert.equal(writer.send(payload), true);
    assert.deepEqual(writes, [], "nothing is written before the turn ends");
    await waitFor("every frame at the reader", () => received.length === payloads.length);
    assert.equal(writes.length, 1);
    assert.equal(
      writes[0],
      payloads.reduce((n, p) => n + 2 + p.length, 0),
    );
    assert.deepEqual(received, payloads);
    writer.close();
    reader.close();
    close();
  });

  it("refuses frames while the socket holds more than its limit, and says when it drained", async () => {
    const { client, server, close } = await socketPair();
    server.pause();
    let drained = 0;
    const writer = createFramedStream({
      socket: client,
      highWaterBytes: 64 * 1024,
      onFrame: () => {},
      onDrain: () => {
        drained += 1;
      },
    });
    const payload = Buffer.alloc(1400, 1);
    let accepted = 0;
    for (let turn = 0; turn < 200 && writer.send(payload); turn++) {
      accepted += 1;
      if (accepted % 40 === 0) await new Promise((r) => setImmediate(r));
    }
    await waitFor("the writer to be congested", () => {
      for (let i = 0; i < 40 && writer.send(payload); i++) accepted += 1;
      return writer.congested;
    });
    assert.equal(writer.send(payload), false);
    server.resume();
    await waitFor("a drain", () => drained > 0);
    assert.equal(writer.send(payload), true);
    writer.close();
    close();
  });
});
