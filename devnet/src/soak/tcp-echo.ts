// The soak's TCP stream across the mesh, run inside node namespaces (`ip netns exec`):
//   node tcp-echo.ts --serve <meshIp>:<port>     echoes every byte back
//   node tcp-echo.ts --connect <meshIp>:<port>   sends a 4-byte counter every 20 ms, checks the echoes come
//                                                back in order, prints one JSON status line a second
// A close, an error or an echo out of order is reported as an event line; the client reconnects.
import { connect, createServer, type Socket } from "node:net";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { serve: { type: "string" }, connect: { type: "string" } } });
const target = values.serve ?? values.connect;
if (target === undefined) {
  process.stderr.write("usage: tcp-echo.ts --serve host:port | --connect host:port\n");
  process.exit(2);
}
const host = target.slice(0, target.lastIndexOf(":"));
const port = Number(target.slice(target.lastIndexOf(":") + 1));
const emit = (value: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(value)}\n`);

if (values.serve !== undefined) {
  createServer((socket) => {
    socket.on("error", () => socket.destroy());
    socket.pipe(socket);
  }).listen(port, host, () => emit({ event: "listening" }));
} else {
  let sent = 0;
  let echoed = 0;
  let lastEchoAt = Date.now();
  let maxStallMs = 0;
  let connects = 0;
  const run = () => {
    let next = 0;
    let expected = 0;
    let buffered = Buffer.alloc(0);
    const socket: Socket = connect({ host, port, noDelay: true });
    let timer: NodeJS.Timeout | undefined;
    socket.once("connect", () => {
      connects += 1;
      emit({ event: "connected", connects });
      timer = setInterval(() => {
        const frame = Buffer.alloc(4);
        frame.writeUInt32BE(next++);
        socket.write(frame);
        sent += 1;
      }, 20);
    });
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 4) {
        const value = buffered.readUInt32BE(0);
        buffered = buffered.subarray(4);
        if (value !== expected) emit({ event: "out-of-order", expected, got: value });
        expected = value + 1;
        echoed += 1;
        const now = Date.now();
        maxStallMs = Math.max(maxStallMs, now - lastEchoAt);
        lastEchoAt = now;
      }
    });
    socket.on("error", (error) => emit({ event: "error", message: error.message }));
    socket.once("close", () => {
      clearInterval(timer);
      emit({ event: "closed" });
      setTimeout(run, 1_000);
    });
  };
  run();
  setInterval(() => {
    const stallMs = Date.now() - lastEchoAt;
    emit({ event: "status", sent, echoed, stallMs, maxStallMs: Math.max(maxStallMs, stallMs), connects });
  }, 1_000);
}
