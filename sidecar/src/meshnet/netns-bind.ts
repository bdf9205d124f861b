// Started by socket.ts as `ip netns exec <netns> node netns-bind.ts <address> <port>` with an IPC
// channel: binds a UDP socket inside that namespace, sends the bound socket to the parent, and exits.
// The descriptor the parent receives keeps the namespace it was created in.
import { createSocket } from "node:dgram";

const [address, portText] = process.argv.slice(2);
const port = Number(portText);
const fail = (error: string) => {
  process.send?.({ ok: false, error }, undefined, {}, () => process.exit(1));
};
if (process.send === undefined) {
  process.stderr.write("netns-bind: start me with an IPC channel\n");
  process.exit(2);
}
if (address === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
  fail(`usage: netns-bind <address> <port>, got ${JSON.stringify(process.argv.slice(2))}`);
} else {
  const socket = createSocket({ type: "udp4" });
  socket.once("error", (error) => fail(error.message));
  socket.bind({ address, port, exclusive: true }, () => {
    process.send?.({ ok: true }, socket, {}, () => {
      socket.close();
      process.disconnect();
    });
  });
}
