// The devnet gateway's SNI reader against real ClientHellos (made by Node's TLS client), split and
// fragmented, and against malformed input; and the gateway itself routing real TLS connections.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, connect as netConnect, type Socket } from "node:net";
import { describe, it } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { gatewayServerName, parseGatewayServerName } from "@attestmesh/shared/gateway/serverName.ts";
import pino from "pino";
import { startSniGateway } from "../../src/orchestration/gateway.ts";
import { parseClientHelloSni } from "../../src/orchestration/sni.ts";

const APP = "0xabcdefabcdefabcdefabcdefabcdefabcdef0123";
const DOMAIN = "devnet.attestmesh.test";

/** The first bytes Node's TLS client sends for `servername` (undefined: no SNI). */
async function clientHello(servername?: string): Promise<Buffer> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  const client = tlsConnect({
    host: "127.0.0.1",
    port,
    rejectUnauthorized: false,
    ...(servername ? { servername } : {}),
  });
  client.on("error", () => {});
  const [socket] = (await once(server, "connection")) as [Socket];
  const chunks: Buffer[] = [];
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      socket.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        const data = Buffer.concat(chunks);
        if (parseClientHelloSni(data).kind !== "incomplete") resolve(data);
      });
      socket.on("close", () => reject(new Error("closed before a whole ClientHello")));
    });
  } finally {
    socket.destroy();
    client.destroy();
    server.close();
  }
}

/** Re-cuts one TLS record into records of at most `size` bytes each. */
function fragment(hello: Buffer, size: number): Buffer {
  const body = hello.subarray(5, 5 + hello.readUInt16BE(3));
  const records: Buffer[] = [];
  for (let at = 0; at < body.length; at += size) {
    const piece = body.subarray(at, at + size);
    const header = Buffer.from([22, 3, 1, 0, 0]);
    header.writeUInt16BE(piece.length, 3);
    records.push(header, piece);
  }
  return Buffer.concat(records);
}

describe("SNI reader", () => {
  it("reads the server name of a real ClientHello, fed in any split", async () => {
    const name = gatewayServerName(APP, 51821, DOMAIN);
    const hello = await clientHello(name);
    assert.deepEqual(parseClientHelloSni(hello), { kind: "ok", serverName: name });
    for (let cut = 0; cut < hello.length; cut += 7) {
      assert.deepEqual(parseClientHelloSni(hello.subarray(0, cut)), { kind: "incomplete" }, `cut at ${cut}`);
    }
  });

  it("reassembles a ClientHello fragmented over many records", async () => {
    const name = gatewayServerName(APP, 443, DOMAIN);
    const fragmented = fragment(await clientHello(name), 17);
    assert.deepEqual(parseClientHelloSni(fragmented), { kind: "ok", serverName: name });
    assert.equal(parseClientHelloSni(fragmented.subarray(0, fragmented.length - 1)).kind, "incomplete");
  });

  it("reports a ClientHello without SNI as having none", async () => {
    // Node sends no SNI when connecting to an IP address without a servername.
    assert.deepEqual(parseClientHelloSni(await clientHello()), { kind: "ok", serverName: undefined });
  });

  it("refuses what is not a ClientHello", () => {
    const cases: Array<[string, Buffer]> = [
      ["HTTP", Buffer.from("GET / HTTP/1.1\r\nHost: a\r\n\r\n")],
      ["a TLS alert record", Buffer.from([21, 3, 3, 0, 2, 2, 40])],
      ["SSLv2-style version", Buffer.from([22, 2, 0, 0, 4, 1, 0, 0, 0])],
      ["an empty record", Buffer.from([22, 3, 1, 0, 0])],
      ["a ServerHello", Buffer.from([22, 3, 3, 0, 4, 2, 0, 0, 0])],
      ["a ClientHello claiming 16 MiB", Buffer.from([22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff])],
    ];
    for (const [what, bytes] of cases) assert.equal(parseClientHelloSni(bytes).kind, "invalid", what);
  });

  it("refuses truncated and lying lengths inside the ClientHello", async () => {
    const hello = await clientHello(gatewayServerName(APP, 51821, DOMAIN));
    // Shrink the record and handshake lengths so the body ends in the middle of the extensions.
    const cut = Buffer.from(hello.subarray(0, 5 + 60));
    cut.writeUInt16BE(60, 3);
    cut.writeUIntBE(56, 6, 3);
    assert.equal(parseClientHelloSni(cut).kind, "invalid");
    // An SNI entry whose length runs past its list.
    const at = hello.indexOf(Buffer.from(DOMAIN)) - 47 - 2;
    const lying = Buffer.from(hello);
    lying.writeUInt16BE(0xfff0, at);
    assert.equal(parseClientHelloSni(lying).kind, "invalid");
  });
});

describe("gateway server names", () => {
  it("round-trips app id and port, case- and trailing-dot-insensitively", () => {
    const name = gatewayServerName(APP.toUpperCase().replace("0X", "0x"), 51821, DOMAIN);
    assert.equal(name, `${APP.slice(2)}-51821s.${DOMAIN}`);
    assert.deepEqual(parseGatewayServerName(`${name.toUpperCase()}.`, DOMAIN), { appId: APP, port: 51821 });
  });

  it("refuses other domains, non-passthrough names, bad app ids and ports", () => {
    for (const name of [
      `${APP.slice(2)}-51821s.other.test`,
      `${APP.slice(2)}-51821.${DOMAIN}`,
      `${APP.slice(2, 40)}-51821s.${DOMAIN}`,
      `${APP.slice(2)}-0s.${DOMAIN}`,
      `${APP.slice(2)}-70000s.${DOMAIN}`,
      `x.${APP.slice(2)}-51821s.${DOMAIN}`,
      DOMAIN,
    ]) {
      assert.equal(parseGatewayServerName(name, DOMAIN), undefined, name);
    }
  });
});

describe("devnet SNI gateway", () => {
  it("forwards TLS untouched to the named node and refuses what it cannot route", async () => {
    // The "node": a TLS-less echo that proves the gateway passes raw bytes through unchanged.
    const node = createServer((socket) => socket.pipe(socket));
    node.listen(0, "127.0.0.1");
    await once(node, "listening");
    const nodePort = (node.address() as { port: number }).port;
    const gateway = await startSniGateway({
      host: "127.0.0.1",
      port: 0,
      domain: DOMAIN,
      route: (appId) => (appId === APP ? "127.0.0.1" : undefined),
      logger: pino({ level: "silent" }),
      helloTimeoutMs: 500,
    });
    const send = async (bytes: Buffer, expectEcho: boolean) => {
      const socket = netConnect(gateway.port, "127.0.0.1");
      socket.write(bytes);
      const chunks: Buffer[] = [];
      socket.on("data", (c: Buffer) => chunks.push(c));
      await once(socket, "close");
      const echoed = Buffer.concat(chunks);
      assert.equal(echoed.length > 0, expectEcho);
      return echoed;
    };
    try {
      const routed = await clientHello(gatewayServerName(APP, nodePort, DOMAIN));
      const socket = netConnect(gateway.port, "127.0.0.1");
      socket.write(routed.subarray(0, 10));
      socket.write(routed.subarray(10));
      const [echo] = (await once(socket, "data")) as [Buffer];
      assert.ok(
        routed.subarray(0, echo.length).equals(echo),
        "the ClientHello reaches the node byte for byte",
      );
      socket.destroy();

      await send(await clientHello(gatewayServerName(`0x${"9".repeat(40)}`, nodePort, DOMAIN)), false);
      await send(await clientHello(`${APP.slice(2)}-${nodePort}s.elsewhere.test`), false);
      await send(await clientHello(), false);
      await send(Buffer.from("GET / HTTP/1.1\r\n\r\n"), false);
      await send(Buffer.from([22, 3, 1]), false); // then silence: the hello deadline closes it
      const stats = gateway.stats();
      assert.equal(stats.routed, 1);
      assert.equal(stats["unknown-app"], 1);
      assert.equal(stats["foreign-name"], 1);
      assert.equal(stats["no-sni"], 1);
      assert.equal(stats["not-tls"], 1);
      assert.equal(stats["hello-timeout"], 1);
    } finally {
      await gateway.close();
      node.close();
    }
  });
});
