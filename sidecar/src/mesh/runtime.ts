// The mesh layer of one membership: the mesh UDP socket, liveness (heartbeat/swim.ts), CSK serving and the CSK state
// machine, wired together for as long as this node is an active member with its interface up. Created
// by main.ts once registration is done; stopped (socket closed, timers cleared) when membership ends or
// the sidecar shuts down.
import type { CollateralSource } from "@attestmesh/shared/attestation/collateral.ts";
import type { AttestationHandler } from "../attestation.ts";
import type { ChainContext } from "../chain/client.ts";
import type { ClusterReader } from "../chain/cluster.ts";
import type { MembershipFollower } from "../chain/follower.ts";
import type { SidecarConfig } from "../config.ts";
import { createCskChain, headReadsOf } from "../csk/chain.ts";
import { createCskClient } from "../csk/client.ts";
import type { CskCustody } from "../csk/holder.ts";
import { type CskManager, createCskManager, type HeardPeers, type TickAction } from "../csk/manager.ts";
import { type CskServePolicy, createCskServer } from "../csk/server.ts";
import { createStandingCheck } from "../csk/standing.ts";
import type { HeartbeatEvent } from "../heartbeat/service.ts";
import { createSwimService, type LivenessService } from "../heartbeat/swim.ts";
import type { KeySource, NodeKeys } from "../keys.ts";
import type { Logger } from "../log.ts";
import { signingKeyFromSeed } from "../meshnet/crypto.ts";
import { directoryFrom, type MeshMember } from "../meshnet/directory.ts";
import { createLogThrottle, createRateLimiter } from "../meshnet/rateLimit.ts";
import { type MeshSocket, type MeshSocketMode, openMeshSocket } from "../meshnet/socket.ts";
import type { SocketFactory } from "../meshnet/socketFactory.ts";
import { MessageType, peekType } from "../meshnet/wire.ts";
import { isStale, type Member } from "../model/member.ts";
import type { AttestedFollower } from "../reattest/follower.ts";
import type { ReattestMetrics } from "../reattest/metrics.ts";
import type { Reattestation } from "../reattest/scheduler.ts";
import { type ReattestService, startReattestService } from "../reattest/service.ts";
import { FULL_CADENCE, type PollCadence, sleepToBeat } from "../sleep.ts";
import type { MeshMetrics } from "./metrics.ts";

/** How long one peer has to answer a CSK request. */
export const CSK_REQUEST_TIMEOUT_MS = 1000;
/**
 * The next CSK pull after a peer answered "not attested yet" (its first verdict on this node is under
 * way): well inside the per-source request rate (CSK_REQUEST_RATE), a tick would cost the join ~1 s.
 */
export const CSK_NOT_ATTESTED_RETRY_MS = 250;
/**
 * Prompt retries in a row (about 10 s of them: each pull that heard "not attested yet" also waits up to
 * CSK_REQUEST_TIMEOUT_MS for the key to follow); then the ordinary tick.
 */
export const CSK_NOT_ATTESTED_RETRIES = 8;
/** Peers asked at the same time. */
export const CSK_FANOUT = 3;
/** A CSK request's timestamp must be this close to the server's clock. */
export const CSK_REQUEST_MAX_SKEW_MS = 30_000;
/** CSK requests per source: a requester asks one server about once a tick (≤ 1 s), so 5/s is ample. */
export const CSK_REQUEST_RATE = { perSecond: 5, burst: 20 } as const;
/**
 * Liveness datagrams per source, as multiples of the probe rate: a member sends another a ping, an ack,
 * a ping-req or a relayed ack now and then, gossip while there is news, and a sync answer (at most 8
 * datagrams) when asked.
 */
export const LIVENESS_RATE_FACTOR = 10;
export const LIVENESS_BURST = 24;
/** A drop of one kind is logged at most this often (with the number suppressed meanwhile). */
export const DROP_LOG_EVERY_MS = 10_000;

export interface MeshRuntimeOptions {
  readonly config: SidecarConfig;
  readonly chain: ChainContext;
  readonly reader: ClusterReader;
  readonly follower: MembershipFollower;
  /** A record read outside the view, if its certificate verified (else undefined). */
  readonly certified: (record: Member | undefined) => Promise<Member | undefined>;
  readonly keys: NodeKeys;
  readonly keySource: KeySource;
  readonly memberId: bigint;
  readonly meshIp: string;
  readonly custody: CskCustody;
  readonly metrics: MeshMetrics;
  readonly logger: Logger;
  readonly signal: AbortSignal;
  readonly servePolicy?: CskServePolicy;
  /** Called whenever the CSK, the live set or convergence may have changed. */
  readonly onChange: () => void;
  /** The pollers' cadence: the CSK tick stretches at rest, and every liveness event stirs it. */
  readonly cadence?: PollCadence;
  /** Every heartbeat event, from the first (the service's start) to the last (its stop). */
  readonly onEvent?: (event: HeartbeatEvent) => void;
  /**
   * The sockets of this mesh (the mesh socket, the attestation server and fetches), from the layer, which
   * starts it before the interface is up (in the devnet: the helper in the node's namespace) and closes it.
   */
  readonly sockets?: SocketFactory;
  /** Peer re-attestation (reattest/): absent, peers are not re-attested (tests of the mesh alone). */
  readonly reattest?: {
    readonly follower: AttestedFollower;
    readonly handler: AttestationHandler;
    readonly collateral: CollateralSource;
    readonly metrics: ReattestMetrics;
    /** A peer was refused or admitted again: reconcile now. */
    readonly onRefusal: () => void;
    /** Whether a member is a WireGuard peer yet: a newcomer is first attested once it is. */
    readonly peered?: (member: Member) => boolean;
  };
}

export interface MeshRuntime {
  readonly heartbeat: LivenessService;
  readonly manager: CskManager;
  /** Runs a CSK tick soon. */
  wake(): void;
  /** Resolves when the socket is closed and the loops ended. */
  readonly stopped: Promise<void>;
  /** Peer re-attestation; undefined when it is off. */
  readonly reattestation: Reattestation | undefined;
}

export function meshSocketMode(config: SidecarConfig): MeshSocketMode {
  if (config.wgMode === "memory") return "loopback";
  return config.wgNetns === undefined ? "direct" : "netns";
}

export async function startMeshRuntime(options: MeshRuntimeOptions): Promise<MeshRuntime> {
  const { config, chain, keys, memberId, custody, metrics, logger, signal } = options;
  const log = logger.child({ component: "mesh" });
  const cluster = { chainId: chain.chainId, cluster: chain.cluster };
  const seed = Uint8Array.from(keys.identity.secret.reveal());
  const key = signingKeyFromSeed(seed);
  seed.fill(0);
  const directory = directoryFrom(() => options.follower.current()?.members);

  // The mesh socket (CSK, liveness) and the attestation server open side by side: in the devnet each
  // starts a helper in the node's namespace, and peers judging a newcomer wait for the latter.
  const opening = openMeshSocket({
    mode: meshSocketMode(config),
    meshIp: options.meshIp,
    port: config.meshPort,
    ...(config.wgNetns === undefined ? {} : { netns: config.wgNetns }),
    onError: (error) => log.debug({ err: error.message }, "mesh socket error"),
    ...(options.sockets === undefined ? {} : { factory: options.sockets }),
  });
  // Declared before the re-attestation service starts: its first refusal may come while the socket opens.
  let woken: (() => void) | undefined;
  const wake = () => woken?.();
  /** Stops the re-attestation service if the socket does not open (the layer then starts anew). */
  const reattestStop = new AbortController();
  let reattest: ReattestService | undefined;
  /** Set below: the verdict on a peer passed, so its request told "not attested yet" gets the key now. */
  let pushKey: (memberId: bigint) => void = () => {};
  const starting =
    options.reattest === undefined
      ? undefined
      : (() => {
          const r = options.reattest;
          return startReattestService({
            chain,
            follower: r.follower,
            self: memberId,
            meshIp: options.meshIp,
            port: config.meshPort,
            mode: meshSocketMode(config),
            netns: config.wgNetns,
            periodMs: config.reattestIntervalS * 1000,
            collateral: r.collateral,
            handler: r.handler,
            metrics: r.metrics,
            logger,
            signal: AbortSignal.any([signal, reattestStop.signal]),
            onRefusal: () => {
              r.onRefusal();
              options.onChange();
              wake();
            },
            onChange: () => {
              r.metrics.publish(reattest?.reattestation.report() ?? []);
              options.onChange();
            },
            onPassed: (member) => pushKey(member.memberId),
            ...(r.peered === undefined ? {} : { peered: r.peered }),
            ...(options.sockets === undefined ? {} : { factory: options.sockets }),
          });
        })();
  const [opened, started] = await Promise.allSettled([opening, starting]);
  if (opened.status === "rejected" || started.status === "rejected") {
    if (opened.status === "fulfilled") await opened.value.close();
    if (started.status === "fulfilled" && started.value !== undefined) {
      reattestStop.abort();
      await started.value.stopped;
    }
    key.destroy();
    throw opened.status === "rejected" ? opened.reason : (started as PromiseRejectedResult).reason;
  }
  const socket: MeshSocket = opened.value;
  reattest = started.value;
  const reattestation = reattest?.reattestation;
  log.info(
    { address: `${options.meshIp}:${config.meshPort}`, mode: meshSocketMode(config) },
    "mesh socket open",
  );
  const typeName = (t: number | undefined) =>
    t === MessageType.Liveness
      ? "liveness"
      : t === MessageType.CskRequest
        ? "csk-request"
        : t === MessageType.CskResponse
          ? "csk-response"
          : "unknown";
  const send = (datagram: Uint8Array, ip: string, port: number) => {
    metrics.meshBytes.inc({ direction: "sent", type: typeName(peekType(datagram)) }, datagram.length);
    socket.send(datagram, ip, port);
  };

  const throttle = createLogThrottle(DROP_LOG_EVERY_MS);
  /** Counts a dropped datagram by reason and logs it, at most once per reason every DROP_LOG_EVERY_MS. */
  const dropped = (type: string, reason: string, fields: Record<string, unknown>) => {
    metrics.meshDropped.inc({ type, reason });
    throttle.maybe(`${type}:${reason}`, (suppressed) =>
      log.info({ type, reason, ...fields, suppressed }, "mesh datagram dropped"),
    );
  };
  const limits = {
    liveness: createRateLimiter({
      perSecond: (LIVENESS_RATE_FACTOR * 1000) / config.heartbeatIntervalMs,
      burst: LIVENESS_BURST,
    }),
    cskRequest: createRateLimiter(CSK_REQUEST_RATE),
  };
  // One head read per (epoch, member), shared by the server (may this requester have the epoch?) and
  // the manager (was this node evicted?).
  const headReads = headReadsOf(chain, options.reader);
  const standing = createStandingCheck(headReads);

  let manager: CskManager | undefined;
  /** What the liveness service, the CSK server and the CSK client each know of this node. */
  const node = { self: memberId, cluster, key, directory };
  const heartbeat = createSwimService({
    ...node,
    send,
    port: config.meshPort,
    intervalMs: config.heartbeatIntervalMs,
    suspicionMs: config.heartbeatTimeoutMs,
    maxSkewMs: Math.max(config.heartbeatTimeoutMs, 30_000),
    csk: () => {
      const chainEpoch = manager?.chainState()?.epoch;
      const held = custody.current();
      return { epoch: chainEpoch ?? held?.epoch ?? 0n, holds: manager?.acquired() ?? false };
    },
    onReceived(result, from) {
      metrics.heartbeatsReceived.inc({ result: result.ok ? "accepted" : result.reason });
      if (!result.ok) {
        dropped("liveness", result.reason, {
          senderId: result.senderId?.toString() ?? null,
          from: from.address,
          detail: result.detail,
        });
        return;
      }
      // A member's signed liveness came over the mesh: it is up and reachable. One never judged yet (a
      // newcomer whose server was not up at the last try) is checked now rather than at its next retry,
      // up to 250 ms later; the scheduler allows this once per 250 ms each, and only before its first
      // verdict (scheduler.ts `hurry`).
      const sender = options.follower.current()?.members.get(result.senderId);
      if (sender !== undefined) reattestation?.hurry(sender);
    },
    onSent: () => metrics.heartbeatsSent.inc(),
  });

  const server = createCskServer({
    ...node,
    // Requesters are looked up in the view only (no chain read per datagram), and the view holds only
    // members whose certificate verified (certs/follower.ts): nothing is sealed to anyone else.
    standing,
    // The key goes only to a requester this node's re-attestation holds a current passing verdict on;
    // before the first one it answers "not attested yet" (issue 14: a newcomer is peered, and could
    // ask, before anyone judged its evidence).
    ...(reattestation === undefined
      ? {}
      : {
          attested: (requester: MeshMember) => reattestation.admits(requester.record),
          // Told "not attested yet", the requester is up and reachable: judge it now (if never judged).
          onNotAttested: (requester: MeshMember) => reattestation.hurry(requester.record),
        }),
    parkMs: CSK_REQUEST_TIMEOUT_MS,
    holder: custody,
    send: (datagram, to) => send(datagram, to.address, to.port),
    maxSkewMs: CSK_REQUEST_MAX_SKEW_MS,
    ...(options.servePolicy === undefined ? {} : { policy: options.servePolicy }),
  });
  pushKey = (memberId) => {
    server
      .attested(memberId)
      .then((r) => {
        if (r === undefined) return;
        metrics.cskServed.inc({ outcome: r.outcome });
        log.info(
          { peer: memberId.toString(), outcome: r.outcome, detail: r.detail ?? null },
          r.outcome === "served"
            ? "sent the CSK to a peer told 'not attested yet' the moment its attestation passed"
            : "a peer told 'not attested yet' passed its attestation but gets no key on that request",
        );
      })
      .catch((err: unknown) => log.warn({ err }, "CSK push after a passing verdict failed"));
  };
  const client = createCskClient({
    ...node,
    send,
    port: config.meshPort,
    requestTimeoutMs: CSK_REQUEST_TIMEOUT_MS,
    fanout: CSK_FANOUT,
    onRejected(peer, reason, epoch) {
      metrics.cskRejected.inc({ reason });
      log.warn(
        { peer: peer.toString(), reason, epoch: epoch.toString() },
        reason === "hash-mismatch"
          ? `rejected a bogus CSK from member ${peer}: its keccak256 is not the on-chain commitment; trying the next peer`
          : `rejected a CSK answer from member ${peer} (${reason}); trying the next peer`,
      );
    },
  });
  manager = createCskManager({
    self: memberId,
    cluster,
    chain: createCskChain(chain, keys.member.secret, logger),
    keySource: options.keySource,
    custody,
    client,
    directory,
    peers: heardPeersOf(heartbeat, config.heartbeatTimeoutMs),
    takeoverMs: config.cskTakeoverMs,
    logger: log,
    // Ranked ahead only while active and standing at the head: a member the owner's revocation reached
    // may not commit (the contract refuses it), so nobody waits for it.
    stillActive: async (id) => {
      const at = await headReads.head();
      const [record, standing] = await Promise.all([headReads.member(id, at), headReads.standing?.(id, at)]);
      return record?.status === "active" && !isStale(standing);
    },
    standing,
    onCommit: (outcome) => metrics.cskCommits.inc({ outcome }),
  });

  socket.onMessage((datagram, from) => {
    const type = peekType(datagram);
    metrics.meshBytes.inc({ direction: "received", type: typeName(type) }, datagram.length);
    if (type === MessageType.Liveness) {
      if (!limits.liveness.take(from.address))
        return dropped("liveness", "rate-limited", { from: from.address });
      heartbeat.handle(datagram, from);
    } else if (type === MessageType.CskRequest) {
      if (!limits.cskRequest.take(from.address))
        return dropped("csk-request", "rate-limited", { from: from.address });
      server
        .handle(datagram, from)
        .then((r) => {
          metrics.cskServed.inc({ outcome: r.outcome });
          if (r.outcome !== "served" && r.outcome !== "not-held") {
            dropped("csk-request", r.outcome, {
              requesterId: r.requesterId?.toString() ?? null,
              from: from.address,
              detail: r.detail ?? null,
            });
          }
        })
        .catch((err: unknown) => log.warn({ err }, "CSK request handling failed"));
    } else if (type === MessageType.CskResponse) {
      client.handle(datagram, from);
    }
  });

  const cadence = options.cadence ?? FULL_CADENCE;
  const unsubscribe = heartbeat.onEvent((event) => {
    if (event.type === "peer-live")
      log.info({ peer: event.memberId.toString() }, "peer live: its own signed word says it is alive");
    if (event.type === "peer-lost")
      log.warn(
        { peer: event.memberId.toString() },
        "peer lost: it did not answer probes and did not refute the suspicion in time",
      );
    if (event.type === "converged") log.info({ live: event.live.map(String) }, "mesh converged");
    options.onEvent?.(event);
    options.onChange();
    cadence.stir();
    wake();
  });
  const offCustody = custody.onChange(() => options.onChange());
  heartbeat.start(signal);

  const loop = async () => {
    const tickMs = Math.min(config.pollIntervalMs, 1000);
    /** Ticks in a row that said awaiting-attestation. */
    let awaiting = 0;
    while (!signal.aborted) {
      let action: TickAction | undefined;
      try {
        action = await manager.tick();
      } catch (err) {
        log.warn({ err }, "CSK step failed; retrying");
      }
      options.onChange();
      // Peers are judging this node's attestation (a newcomer): ask again soon rather than a tick later,
      // for a while; a peer that never judges it (its PCCS down) must not keep this loop at 4 Hz.
      awaiting = action === "awaiting-attestation" ? awaiting + 1 : 0;
      const pause =
        awaiting > 0 && awaiting <= CSK_NOT_ATTESTED_RETRIES
          ? CSK_NOT_ATTESTED_RETRY_MS
          : cadence.interval(tickMs);
      await new Promise<void>((resolve) => {
        woken = resolve;
        void sleepToBeat(pause, signal).then(resolve);
      });
      woken = undefined;
    }
  };
  const stopped = loop().finally(async () => {
    unsubscribe();
    offCustody();
    await socket.close();
    key.destroy();
  });
  return {
    heartbeat,
    manager,
    wake,
    stopped: stopped.then(() => reattest?.stopped),
    reattestation: reattest?.reattestation,
  };
}

/** What the CSK manager hears of its peers: the liveness service's live set and reports. */
export function heardPeersOf(heartbeat: LivenessService, timeoutMs: number): HeardPeers {
  return {
    live: () => heartbeat.live(),
    report: (id) => heartbeat.report(id),
    startedAt: () => heartbeat.startedAt(),
    timeoutMs,
  };
}
