// GET /attestation over the mesh on real TCP sockets (loopback mode: mesh IP 10.77.0.x is served at
// 127.77.0.x, as the in-memory WireGuard backend's nodes do): a peer fetches it with its nonce; any
// other path is 404; an answer over the size limit and a dead peer are retryable errors.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { test } from "node:test";
import { createLocalSocketFactory } from "../../src/meshnet/socketFactory.ts";
import {
  fetchMeshAttestation,
  MAX_ATTESTATION_BYTES,
  startMeshAttestationServer,
} from "../../src/reattest/mesh.ts";
import { captureLogger } from "../helpers.ts";

test("served on the mesh IP, fetched with the nonce; errors are retryable", async () => {
  const factory = createLocalSocketFactory();
  const asked: string[] = [];
  const server = await startMeshAttestationServer({
    factory,
    mode: "loopback",
    meshIp: "10.77.0.41",
    port: 51941,
    handler: async (url) => {
      asked.push(url.searchParams.get("nonce") ?? "");
      return { status: 200, headers: { "content-type": "application/json" }, body: '{"version":1}\n' };
    },
    logger: captureLogger("silent").logger,
  });
  try {
    const nonce = new Uint8Array(32).fill(7);
    let bytes = 0;
    let connected = 0;
    const doc = await fetchMeshAttestation({
      factory,
      mode: "loopback",
      meshIp: "10.77.0.41",
      port: 51941,
      nonce,
      timeoutMs: 2000,
      connectTimeoutMs: 400,
      onConnected: () => {
        connected += 1;
        assert.equal(asked.length, 0, "told before the request is answered");
      },
      onBytes: (n) => {
        bytes = n;
      },
    });
    assert.deepEqual(doc, { version: 1 });
    assert.equal(connected, 1);
    assert.deepEqual(asked, [`0x${"07".repeat(32)}`]);
    assert.equal(bytes, 14);
    // The request rides the factory's socket, whatever the address says (in the devnet the socket is
    // opened inside the node's namespace; from here, 10.255.255.1 is not even routed). Regression: an
    // HTTP agent opened its own connection from this namespace and ignored the mesh socket.
    const redirected = {
      ...factory,
      connect: (_host: string, _port: number, ms: number) => factory.connect("127.77.0.41", 51941, ms),
    };
    const viaSocket = await fetchMeshAttestation({
      factory: redirected,
      mode: "direct",
      meshIp: "10.255.255.1",
      port: 51941,
      nonce,
      timeoutMs: 2000,
    });
    assert.deepEqual(viaSocket, { version: 1 });
    const other = await fetch("http://127.77.0.41:51941/healthz");
    assert.equal(other.status, 404);
    await assert.rejects(
      fetchMeshAttestation({
        factory,
        mode: "loopback",
        meshIp: "10.77.0.42",
        port: 51941,
        nonce,
        timeoutMs: 500,
        onConnected: () => {
          connected += 1;
        },
      }),
      /TransportConnectFailed|cannot connect/,
    );
    assert.equal(connected, 1, "no connection, no onConnected");
  } finally {
    await server.close();
  }
  // A peer answering more than the limit is cut off.
  const huge = createServer((_req, res) => res.end("x".repeat(MAX_ATTESTATION_BYTES + 10)));
  await new Promise<void>((resolve) => huge.listen(51942, "127.77.0.43", resolve));
  try {
    await assert.rejects(
      fetchMeshAttestation({
        factory,
        mode: "loopback",
        meshIp: "10.77.0.43",
        port: 51942,
        nonce: new Uint8Array(32),
        timeoutMs: 2000,
      }),
      /exceeds/,
    );
  } finally {
    huge.close();
  }
});
