import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { getAddress } from "viem";
import { type HealthReport, type HealthServer, startHealthServer } from "../src/health.ts";
import { createMetrics } from "../src/metrics.ts";
import { createStatusStore, type StatusStore } from "../src/status.ts";
import { captureLogger, HEALTHY_FACTS } from "./helpers.ts";

describe("health server", () => {
  let server: HealthServer;
  let status: StatusStore;
  const { logger, lines } = captureLogger();
  const metrics = createMetrics();

  before(async () => {
    status = createStatusStore({ logger, onPhase: (phase) => metrics.setPhase(phase) });
    server = await startHealthServer({
      host: "127.0.0.1",
      port: 0,
      status: status.get,
      registry: metrics.registry,
      logger,
    });
  });

  after(async () => {
    await server.close();
  });

  test("503 with the phase while not healthy", async () => {
    const res = await fetch(`${server.url}/healthz`);
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("content-type"), "application/json");
    const body = (await res.json()) as HealthReport;
    assert.equal(body.phase, "booting");
    assert.equal(body.healthy, false);
    assert.equal(body.memberId, null);
    assert.deepEqual(body.peers, []);
  });

  test("200 when healthy, with peers and bigints as strings", async () => {
    const appId = getAddress("0x00000000000000000000000000000000000a11ce");
    status.update({
      appId,
      memberId: 7n,
      meshIp: "10.77.0.7",
      interfaceUp: true,
      peers: [
        {
          memberId: 8n,
          appId,
          meshIp: "10.77.0.8",
          publicKey: "k8=",
          endpoint: "10.0.0.8:51820",
          latestHandshake: 1700000000,
        },
        {
          memberId: 9n,
          appId,
          meshIp: "10.77.0.9",
          publicKey: "k9=",
          endpoint: undefined,
          // Healthy means every desired peer handshook (phase.ts); its heartbeat liveness is apart.
          latestHandshake: 1700000009,
        },
      ],
      lastReconcileBlock: 123n,
      lastReconcileAt: 0,
      cskEpoch: 2n,
      cskAcquired: true,
      chainCskEpoch: 2n,
      converged: true,
      meshPeers: [
        { memberId: 8n, live: true, lastHeartbeat: 1700000000000 },
        { memberId: 9n, live: false, lastHeartbeat: undefined },
      ],
      peerAttestations: [
        {
          memberId: 8n,
          status: "passed",
          kind: "simulated",
          composeHash: "ab".repeat(32),
          verifiedAt: 1700000000000,
          nextAt: 1700000600000,
          verifications: 1,
        },
        // Refused: not a desired peer any more, but its verdict is reported.
        {
          memberId: 10n,
          status: "failed",
          reason: "ReportDataMismatch",
          detail: "bound to other keys",
          nextAt: Number.POSITIVE_INFINITY,
          verifications: 1,
        },
      ],
    });
    status.update(HEALTHY_FACTS);
    const res = await fetch(`${server.url}/healthz`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as HealthReport;
    assert.equal(body.phase, "healthy");
    assert.equal(body.memberId, "7");
    assert.equal(body.appId, appId);
    assert.equal(body.meshIp, "10.77.0.7");
    assert.equal(body.livePeers, 1);
    assert.equal(body.handshakenPeers, 2);
    assert.equal(body.desiredPeers, 2);
    assert.equal(body.cskEpoch, "2");
    assert.equal(body.cskAcquired, true);
    assert.equal(body.chainCskEpoch, "2");
    assert.equal(body.converged, true);
    assert.equal(body.peers[0]?.live, true);
    assert.equal(body.peers[0]?.lastHeartbeat, new Date(1700000000000).toISOString());
    assert.deepEqual(body.peers[1], {
      memberId: "9",
      appId,
      meshIp: "10.77.0.9",
      publicKey: "k9=",
      endpoint: null,
      latestHandshake: 1700000009,
      live: false,
      lastHeartbeat: null,
      heartbeat: null,
      attestation: null,
    });
    assert.equal(body.peers[0]?.attestation?.status, "passed");
    assert.equal(body.peers[0]?.attestation?.kind, "simulated");
    assert.equal(body.peers[0]?.attestation?.nextAt, new Date(1700000600000).toISOString());
    assert.deepEqual(
      body.peerAttestations.map((a) => [a.memberId, a.status, a.reason, a.nextAt]),
      [
        ["8", "passed", null, new Date(1700000600000).toISOString()],
        ["10", "failed", "ReportDataMismatch", null],
      ],
    );
    assert.equal(body.lastReconcileBlock, "123");
    assert.equal(body.lastReconcileAt, "1970-01-01T00:00:00.000Z");
    assert.ok(
      lines().some(
        (l) =>
          l.from === "booting" &&
          l.to === "healthy" &&
          l.reason === "every peer handshook, the CSK is held and the mesh converged",
      ),
      "transition logged",
    );
  });

  test("/metrics serves Prometheus text with the phase", async () => {
    metrics.rpcCalls.inc({ method: "eth_blockNumber" });
    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /attestmesh_phase\{phase="healthy"\} 1/);
    assert.match(text, /attestmesh_phase\{phase="booting"\} 0/);
    assert.match(text, /attestmesh_rpc_calls_total\{method="eth_blockNumber"\} 1/);
    assert.match(text, /attestmesh_reconcile_duration_seconds_bucket/);
  });

  test("404 for other paths, 405 for other methods", async () => {
    assert.equal((await fetch(`${server.url}/`)).status, 404);
    const post = await fetch(`${server.url}/healthz`, { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
  });
});
