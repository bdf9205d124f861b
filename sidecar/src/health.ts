// GET /healthz: the sidecar's status as JSON, HTTP 200 only in the `healthy` phase, 503 otherwise.
// GET /metrics: Prometheus text. Nothing secret is ever part of either.
// GET /attestation?nonce=…: this member's fresh attestation (attestation.ts), when one is wired in.

import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { listenHttp } from "@attestmesh/shared/service/listen.ts";
import type { Registry } from "prom-client";
import type { AttestationHandler } from "./attestation.ts";
import type { Logger } from "./log.ts";
import type { PeerAttestation } from "./model/attestation.ts";
import type { SidecarStatus } from "./status.ts";
import type { PeerTransportReport } from "./transport/peers.ts";

/** The JSON body of GET /healthz (bigints as decimal strings). */
export interface HealthReport {
  readonly phase: string;
  readonly healthy: boolean;
  readonly phaseSince: string;
  readonly appId: string | null;
  /** The address this node's writes come from (member account when sponsored, else the gas key). */
  readonly account: string | null;
  readonly memberId: string | null;
  readonly meshIp: string | null;
  readonly wireguardPublicKey: string | null;
  readonly interfaceUp: boolean;
  /** Peers whose signed heartbeats currently count. */
  readonly livePeers: number;
  /** Desired peers with a completed WireGuard handshake. */
  readonly handshakenPeers: number;
  readonly desiredPeers: number;
  /** Epoch of the CSK held (decimal), null when none. */
  readonly cskEpoch: string | null;
  /** keccak256 of the CSK held: compare with the chain's commitment. */
  readonly cskCommitment: string | null;
  /** The CSK of the chain's current epoch is held. */
  readonly cskAcquired: boolean;
  /** The chain's current CSK epoch as last read (decimal). */
  readonly chainCskEpoch: string | null;
  /** Every live member reports the same live set. */
  readonly converged: boolean;
  readonly peers: ReadonlyArray<{
    readonly memberId: string;
    readonly appId: string;
    readonly meshIp: string;
    readonly publicKey: string;
    readonly endpoint: string | null;
    readonly latestHandshake: number;
    /** Its heartbeats currently count. */
    readonly live: boolean;
    /** ISO time of its last counted heartbeat. */
    readonly lastHeartbeat: string | null;
    /** That heartbeat's content (ids and counters as decimal strings), null if none counted yet. */
    readonly heartbeat: {
      readonly epoch: string;
      readonly holdsCsk: boolean;
      readonly counter: string;
      readonly sentAtMs: string;
      readonly heard: readonly string[];
    } | null;
    /** Its live attestation as this node last judged it; null before the first check. */
    readonly attestation: AttestationJson | null;
    /** "gateway" (through the dstack gateway bridge) or "udp" (direct); absent without the bridge. */
    readonly transport?: string;
    readonly transportDetail?: {
      readonly since: string;
      readonly testing: boolean;
      readonly directEndpoint: string | null;
      readonly directFailures: number;
      readonly nextDirectTestAt: string | null;
      readonly gateway: {
        readonly localEndpoint: string;
        readonly outbound: string;
        readonly inbound: number;
        readonly datagramsOut: number;
        readonly datagramsIn: number;
        readonly dropped: number;
      } | null;
    };
  }>;
  readonly droppedRecords: ReadonlyArray<{ readonly memberId: string; readonly reason: string }>;
  /**
   * Every peer's re-attestation, refused ones included (a refused peer is not in `peers`: it left the
   * WireGuard peer set). `kind` "simulated" marks SIMULATED evidence (devnet only).
   */
  readonly peerAttestations: readonly AttestationJson[];
  readonly lastReconcileBlock: string | null;
  readonly lastReconcileAt: string | null;
  readonly lastError: { readonly code: string; readonly message: string; readonly at: string } | null;
  /**
   * The interface went away by itself (or never came up) and is being brought back, null once it has
   * stayed up for a while: why (daemon-exited, interface-gone, restart-failed, start-failed), the
   * failures in a row, and whether the next attempt is held back (a crash loop backs off) and until when.
   */
  readonly wireguardRestart: {
    readonly reason: string;
    readonly failures: number;
    readonly backingOff: boolean;
    readonly nextAttemptAt: string | null;
  } | null;
  /** True only while a verified indexer subscription is up. */
  readonly indexerSubscribed: boolean;
  readonly lastVerifiedPushBlock: string | null;
  /** Each indexer subscribed to, with its own lag flag. */
  readonly indexers: ReadonlyArray<{
    readonly endpoint: string;
    readonly signingKey: string;
    readonly subscribed: boolean;
    readonly lastVerifiedPushBlock: string | null;
    readonly lateLogs: number;
    readonly lagging: boolean;
  }>;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** One peer's re-attestation in /healthz and the application API (ids decimal, times ISO). */
export interface AttestationJson {
  readonly memberId: string;
  /** pending, passed, failed (refused: no WireGuard peer, no CSK), unreachable (not answering yet). */
  readonly status: string;
  readonly kind: "tdx" | "simulated" | null;
  readonly reason: string | null;
  readonly detail: string | null;
  readonly composeHash: string | null;
  readonly deviceId: string | null;
  readonly tcbStatus: string | null;
  readonly verifiedAt: string | null;
  readonly nextAt: string | null;
  readonly verifications: number;
}

export function attestationJson(a: PeerAttestation): AttestationJson {
  return {
    memberId: a.memberId.toString(),
    status: a.status,
    kind: a.kind ?? null,
    reason: a.reason ?? null,
    detail: a.detail ?? null,
    composeHash: a.composeHash ?? null,
    deviceId: a.deviceId ?? null,
    tcbStatus: a.tcbStatus ?? null,
    verifiedAt: a.verifiedAt === undefined ? null : iso(a.verifiedAt),
    nextAt: Number.isFinite(a.nextAt) ? iso(a.nextAt) : null,
    verifications: a.verifications,
  };
}

function attestationOf(status: SidecarStatus, memberId: bigint): AttestationJson | null {
  const a = status.peerAttestations.find((p) => p.memberId === memberId);
  return a === undefined ? null : attestationJson(a);
}

function heartbeatOf(status: SidecarStatus, memberId: bigint) {
  const peer = status.meshPeers.find((p) => p.memberId === memberId);
  const hb = peer?.heartbeat;
  return {
    live: peer?.live ?? false,
    lastHeartbeat: peer?.lastHeartbeat === undefined ? null : iso(peer.lastHeartbeat),
    heartbeat:
      hb === undefined
        ? null
        : {
            epoch: hb.epoch.toString(),
            holdsCsk: hb.holdsCsk,
            counter: hb.counter.toString(),
            sentAtMs: hb.sentAtMs.toString(),
            heard: hb.heard.map(String),
          },
  };
}

export function healthReport(status: SidecarStatus): HealthReport {
  return {
    phase: status.phase,
    healthy: status.phase === "healthy",
    phaseSince: iso(status.phaseSince),
    appId: status.appId ?? null,
    account: status.account ?? null,
    memberId: status.memberId?.toString() ?? null,
    meshIp: status.meshIp ?? null,
    wireguardPublicKey: status.wireguardPublicKey ?? null,
    interfaceUp: status.interfaceUp,
    livePeers: status.meshPeers.filter((p) => p.live).length,
    handshakenPeers: status.peers.filter((p) => p.latestHandshake > 0).length,
    desiredPeers: status.peers.length,
    cskEpoch: status.cskEpoch?.toString() ?? null,
    cskCommitment: status.cskCommitment ?? null,
    cskAcquired: status.cskAcquired,
    chainCskEpoch: status.chainCskEpoch?.toString() ?? null,
    converged: status.converged,
    peers: status.peers.map((p) => ({
      memberId: p.memberId.toString(),
      appId: p.appId,
      meshIp: p.meshIp,
      publicKey: p.publicKey,
      endpoint: p.endpoint ?? null,
      latestHandshake: p.latestHandshake,
      ...heartbeatOf(status, p.memberId),
      attestation: attestationOf(status, p.memberId),
      ...(p.transport === undefined ? {} : transportFields(p.transport)),
    })),
    droppedRecords: status.droppedRecords.map((d) => ({ memberId: d.memberId.toString(), reason: d.reason })),
    peerAttestations: status.peerAttestations.map(attestationJson),
    lastReconcileBlock: status.lastReconcileBlock?.toString() ?? null,
    lastReconcileAt: status.lastReconcileAt === undefined ? null : iso(status.lastReconcileAt),
    lastError:
      status.lastError === undefined
        ? null
        : { code: status.lastError.code, message: status.lastError.message, at: iso(status.lastError.at) },
    wireguardRestart:
      status.wireguardRestart === undefined
        ? null
        : {
            reason: status.wireguardRestart.reason,
            failures: status.wireguardRestart.failures,
            backingOff: status.wireguardRestart.nextAttemptAt !== undefined,
            nextAttemptAt:
              status.wireguardRestart.nextAttemptAt === undefined
                ? null
                : iso(status.wireguardRestart.nextAttemptAt),
          },
    indexerSubscribed: status.indexerSubscribed,
    lastVerifiedPushBlock: status.lastVerifiedPushBlock?.toString() ?? null,
    indexers: status.indexers.map((i) => ({
      endpoint: i.endpoint,
      signingKey: i.signingKey,
      subscribed: i.subscribed,
      lastVerifiedPushBlock: i.lastVerifiedPushBlock?.toString() ?? null,
      lateLogs: i.lateLogs,
      lagging: i.lagging,
    })),
  };
}

function transportFields(t: PeerTransportReport) {
  const g = t.gateway;
  return {
    transport: t.path,
    transportDetail: {
      since: iso(t.since),
      testing: t.testing,
      directEndpoint: t.directEndpoint ?? null,
      directFailures: t.directFailures,
      nextDirectTestAt: t.nextTestAt === undefined ? null : iso(t.nextTestAt),
      gateway:
        g === undefined
          ? null
          : {
              localEndpoint: g.localEndpoint,
              outbound: g.outbound,
              inbound: g.inbound,
              datagramsOut: g.datagramsOut,
              datagramsIn: g.datagramsIn,
              dropped: g.dropped,
            },
    },
  };
}

export interface HealthServer {
  /** `http://host:port` as bound (the real port when 0 was asked for). */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startHealthServer(options: {
  readonly host: string;
  readonly port: number;
  readonly status: () => SidecarStatus;
  readonly registry: Registry;
  readonly logger: Logger;
  /** GET /attestation (attestation.ts); absent, the path is not served. */
  readonly attestation?: AttestationHandler;
}): Promise<HealthServer> {
  const { logger } = options;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname;
    if (path === "/attestation" && options.attestation !== undefined && req.method === "GET") {
      const answer = await options.attestation(url);
      res.writeHead(answer.status, answer.headers).end(answer.body);
      return;
    }
    if (path !== "/healthz" && path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /healthz or /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("method not allowed\n");
      return;
    }
    if (path === "/healthz") {
      const report = healthReport(options.status());
      res
        .writeHead(report.healthy ? 200 : 503, {
          "content-type": "application/json",
          "cache-control": "no-store",
        })
        .end(req.method === "HEAD" ? undefined : `${JSON.stringify(report)}\n`);
      return;
    }
    const body = await options.registry.metrics();
    res
      .writeHead(200, { "content-type": options.registry.contentType })
      .end(req.method === "HEAD" ? undefined : body);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ err }, "health server request failed");
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end("internal error\n");
    });
  });
  const listener = await listenHttp(server, options.host, options.port);
  const url = `http://${listener.host}:${listener.port}`;
  logger.info({ url }, "health server listening");
  return { url, port: listener.port, close: listener.close };
}
