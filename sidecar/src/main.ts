// The sidecar daemon: derive keys in the TEE, check the chain, register (or find the registration),
// then keep WireGuard equal to the chain's membership until shutdown. `startSidecar` wires one
// instance from a config and optional dependencies (tests run several in one process); `main` is the
// process entry point behind `attestmesh-sidecar`.
import { pccsCollateral } from "@attestmesh/shared/attestation/collateral.ts";
import type { MemberClaims } from "@attestmesh/shared/attestation/document.ts";
import { createDstackEvidenceSource, type EvidenceSource } from "@attestmesh/shared/service/dstack.ts";
import { scrubUrls } from "@attestmesh/shared/service/log.ts";
import {
  type PinnedSettings,
  type PinnedTrust,
  refuseEnvironmentOverride,
  requireTrustPins,
} from "@attestmesh/shared/service/pinned.ts";
import { majority, resolveRpcProviders } from "@attestmesh/shared/service/rpcProviders.ts";
import { bytesToHex, type Transport } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { type AppApi, startAppApi } from "./api/app.ts";
import type { PeerLiveness } from "./api/providers.ts";
import { createAttestationHandler } from "./attestation.ts";
import { type BackoffOptions, retryWithBackoff } from "./backoff.ts";
import { createMemberCertifier, type MemberCertifier } from "./certs/certifier.ts";
import { createCertifiedFollower } from "./certs/follower.ts";
import { checkOwnCertificate } from "./certs/own.ts";
import { createChainCertificateSource, createMemberAppSalts } from "./certs/source.ts";
import { connectChain } from "./chain/client.ts";
import { createClusterReader } from "./chain/cluster.ts";
import { createMembershipFollower } from "./chain/follower.ts";
import { jsonRpcHttp } from "./chain/http.ts";
import { readIndexerRecords } from "./chain/indexerRecord.ts";
import type { RpcEndpoint } from "./chain/reads.ts";
import { selectClusterWriter } from "./chain/selectWriter.ts";
import { countingTransport } from "./chain/transport.ts";
import { describeConfig, type Env, parseConfig, type SidecarConfig } from "./config.ts";
import type { CskHolder } from "./csk/holder.ts";
import type { CskServePolicy } from "./csk/server.ts";
import { AttestmeshError, fatalError } from "./errors.ts";
import { startHealthServer } from "./health.ts";
import type { PeerTable } from "./heartbeat/service.ts";
import { EVERY_CONCERN, wakeFor } from "./intake/concerns.ts";
import { startIntake } from "./intake/intake.ts";
import { createIndexerQuoteCheck } from "./intake/quote.ts";
import { createDstackKeySource, deriveNodeKeys, type KeySource, readPinnedFromGuestAgent } from "./keys.ts";
import { createLogger, type Logger } from "./log.ts";
import { createMembershipCycle } from "./membership.ts";
import { createMeshLayer } from "./mesh/layer.ts";
import { createMeshMetrics } from "./mesh/metrics.ts";
import { sodiumReady, x25519FromEd25519Seed } from "./messages/sealedBox.ts";
import { startMessaging } from "./messages/service.ts";
import { createMetrics, type SidecarMetrics } from "./metrics.ts";
import type { Member } from "./model/member.ts";
import { createAttestedFollower } from "./reattest/follower.ts";
import { createReattestMetrics } from "./reattest/metrics.ts";
import { agreedAttestationPolicy } from "./reattest/policy.ts";
import { createEndpointsFile } from "./reconcile/endpoints.ts";
import { initiatesFirst } from "./reconcile/initiator.ts";
import { createReconcileLoop } from "./reconcile/loop.ts";
import { createReconciler } from "./reconcile/reconciler.ts";
import { ensureRegistered, readRuntimeClaims } from "./register.ts";
import { createShutdown, exitOnSignals, type Shutdown } from "./shutdown.ts";
import { createPollCadence } from "./sleep.ts";
import { createStatusStore, type SidecarStatus } from "./status.ts";
import { startTransport } from "./transport/start.ts";
import type { WireGuardBackend } from "./wireguard/backend.ts";
import { createMemoryBackend } from "./wireguard/memory.ts";
import { createWgBackend } from "./wireguard/wg.ts";

/** GET /attestation answers at most this many requests a minute (each one is a fresh quote). */
const ATTESTATIONS_PER_MINUTE = 10;
/**
 * GET /attestation over the mesh: only peers reach it, each asking once per period and when it first
 * peers with this node, so a whole cluster joining at once fits; more gets 429 and is retried.
 */
const MESH_ATTESTATIONS_PER_MINUTE = 120;

/** Everything `startSidecar` would otherwise build from the config; tests pass fakes or shared instances. */
export interface SidecarDeps {
  readonly logger?: Logger;
  /** dstack GetKey/Info; default the dstack SDK client on `config.dstackEndpoint`. */
  readonly keySource?: KeySource;
  /** Quotes for GET /attestation; default the guest agent on the pinned guest API. */
  readonly evidenceSource?: EvidenceSource;
  /** Default from `config.wgMode`: the in-memory backend for "memory", else wg(8). */
  readonly backend?: WireGuardBackend;
  /**
   * One JSON-RPC transport instead of the pinned providers (tests with a single chain): a quorum of one.
   * Every call through it is counted in metrics.
   */
  readonly transport?: Transport;
  /** RPC providers instead of the pinned ones (tests: a lying proxy beside honest ones); counted too. */
  readonly providers?: readonly RpcEndpoint[];
  /** The values pinned in the attested compose; default read from the guest agent's Info. */
  readonly pinned?: PinnedSettings;
  /** The shutdown registry to join; default a new one (`stop()` runs it). */
  readonly shutdown?: Shutdown;
  /** Random source for backoff jitter, in [0, 1). */
  readonly random?: () => number;
  /** First retry delay for registration and boot steps; default 1,000 ms. */
  readonly initialBackoffMs?: number;
  /** Peer liveness for the application API; default the heartbeat peer table. */
  readonly peerLiveness?: PeerLiveness;
  /** The cluster shared key for the application API; default the key this sidecar holds. */
  readonly csk?: CskHolder;
  /** Which key a CSK request is answered with; default the held key (tests play a malicious member). */
  readonly cskServePolicy?: CskServePolicy;
  /** The trust values pinned in the attested compose; default read from the guest agent's Info. */
  readonly trust?: PinnedTrust;
}

export interface Sidecar {
  /** The health server's base URL (`/healthz`, `/metrics`). */
  readonly healthUrl: string;
  /** The application API's socket path; undefined when the API is off. */
  readonly apiSocket: string | undefined;
  /** The application API's hubs (received messages, peer events). */
  readonly api: AppApi;
  readonly metrics: SidecarMetrics;
  status(): SidecarStatus;
  /** The Cluster Shared Key held, and its changes (for the application API). */
  readonly csk: CskHolder;
  /** Heartbeat liveness of every peer, convergence, and peer events (for the application API). */
  readonly peers: PeerTable;
  /** Member certificates verified so far (undefined until the chain is connected). */
  certifier(): MemberCertifier | undefined;
  /** Reconcile now (e.g. on an indexer push); resolves when a pass that started after the call finished. */
  wake(reason?: string): Promise<void>;
  /** Shuts down (loops, health server, WireGuard interface); resolves true when everything closed in time. */
  stop(reason?: string): Promise<boolean>;
  /** Resolves when the sidecar stopped by shutdown; rejects with the fatal error that stopped it. */
  readonly done: Promise<void>;
}

/** Starts a sidecar; resolves once its health server listens, while boot and registration go on. */
export async function startSidecar(config: SidecarConfig, deps: SidecarDeps = {}): Promise<Sidecar> {
  const logger = deps.logger ?? createLogger({ level: config.logLevel });
  const shutdown = deps.shutdown ?? createShutdown({ logger });
  const { signal } = shutdown;
  const metrics = createMetrics();
  const status = createStatusStore({ logger, onPhase: (phase) => metrics.setPhase(phase) });
  const backend = deps.backend ?? defaultBackend(config, logger);
  const keySource = deps.keySource ?? createDstackKeySource(config.dstackEndpoint);
  const counted = (transport: Transport) =>
    countingTransport(transport, (method) => metrics.rpcCalls.inc({ method }));
  const backoff = (maxMs: number): BackoffOptions => ({
    initialMs: Math.min(deps.initialBackoffMs ?? 1000, maxMs),
    maxMs,
  });
  /** Who this member is on chain, for GET /attestation; set once keys and a member id exist. */
  let attestationClaims: () => MemberClaims | undefined = () => undefined;
  const evidenceSource = deps.evidenceSource ?? createDstackEvidenceSource(config.dstackEndpoint);
  // One collateral cache for every quote this node verifies (the indexer's, its peers').
  const collateral = pccsCollateral({ url: config.pccsUrl });
  /** A verified, not lagging indexer subscription is up: the pollers may rest (sleep.ts). */
  let wakeUpsHealthy = false;
  const cadence = createPollCadence({ wakeUpsHealthy: () => wakeUpsHealthy });
  /** GET /attestation, answering at most `perMinute` requests a minute. */
  const attestationHandler = (perMinute: number) =>
    createAttestationHandler({
      source: evidenceSource,
      claims: () => attestationClaims(),
      limit: perMinute,
      windowMs: 60_000,
      logger,
    });
  const meshLayer = createMeshLayer({
    config,
    cadence,
    reattest: {
      handler: attestationHandler(MESH_ATTESTATIONS_PER_MINUTE),
      collateral,
      metrics: createReattestMetrics(metrics.registry),
    },
    keySource,
    status,
    metrics: createMeshMetrics(metrics.registry),
    logger,
    ...(deps.cskServePolicy === undefined ? {} : { servePolicy: deps.cskServePolicy }),
    guardPort: (meshIp, port) => backend.guardPort(meshIp, port),
  });
  logger.info({ config: describeConfig(config) }, "attestmesh sidecar starting");
  const health = await startHealthServer({
    host: config.healthHost,
    port: config.healthPort,
    status: status.get,
    registry: metrics.registry,
    logger,
    attestation: attestationHandler(ATTESTATIONS_PER_MINUTE),
  }).catch((cause: unknown) => {
    throw fatalError(
      "HealthServerFailed",
      `cannot listen on ${config.healthHost}:${config.healthPort} for /healthz; free the port or set ATTESTMESH_HEALTH_PORT.`,
      { cause },
    );
  });
  shutdown.add("health server", () => health.close());
  shutdown.add("wireguard interface", () => backend.down());
  shutdown.add("mesh socket factory started ahead", () => meshLayer.close());
  await sodiumReady();
  const api = await startAppApi({
    socketPath: config.apiSocket,
    socketGroup: config.apiSocketGroup,
    queueLength: config.apiQueueLength,
    stateDir: config.stateDir,
    cluster: config.cluster,
    inboxMaxMessages: config.inboxMaxMessages,
    status: status.get,
    liveness: deps.peerLiveness ?? meshLayer.peers,
    csk: deps.csk ?? meshLayer.csk,
    signal,
    logger,
  }).catch(async (cause: unknown) => {
    await shutdown.shutdown("application API failed");
    throw cause instanceof AttestmeshError
      ? cause
      : fatalError("ApiSocketFailed", `cannot listen on ATTESTMESH_API_SOCKET ${config.apiSocket}`, {
          cause,
        });
  });
  shutdown.add("application API", () => api.close());

  let wake: (reason?: string) => Promise<void> = async () => {};
  let certifier: MemberCertifier | undefined;

  async function run(): Promise<void> {
    const retry = <T>(what: string, fn: () => Promise<T>) =>
      retryWithBackoff({ what, fn, signal, logger, backoff: backoff(30_000), ...random(deps) });

    const keys = await retry("deriving keys through dstack", () => deriveNodeKeys(keySource));
    if (keys === undefined) return;
    const claims = await retry("reading the compose hash and device id from dstack Info", () =>
      readRuntimeClaims(keySource),
    );
    if (claims === undefined) return;
    status.update({ appId: keys.appId, wireguardPublicKey: keys.wireguard.publicKeyBase64 });
    api.setSelfKeys({
      memberAddress: keys.member.address,
      identityPublicKey: keys.identity.publicKey,
      x25519PublicKey: bytesToHex(x25519FromEd25519Seed(keys.identity.secret.reveal()).publicKey),
      wireguardPublicKey: keys.wireguard.publicKeyBase64,
    });
    logger.info(
      {
        appId: keys.appId,
        memberKey: keys.member.address,
        kmsRoot: keys.kmsSigner,
        wireguardPublicKey: keys.wireguard.publicKeyBase64,
      },
      "keys derived; every dstack key chain verified",
    );
    // The interface (wireguard-go starts in about a second) comes up while this node registers, so
    // peers can handshake the moment it has its address and its peers; `up` retries if this fails.
    backend
      .prepare?.({
        name: config.wgInterface,
        privateKey: keys.wireguard.privateKey.reveal(),
        listenPort: config.wgListenPort,
      })
      .catch((error: unknown) =>
        logger.warn({ err: error }, "cannot prepare the WireGuard interface ahead of registration"),
      );

    // Trust decisions rest on the values the attested compose pins, never on the environment. The
    // compose is read once: the trust values and the RPC providers both come from it.
    let compose: PinnedSettings | undefined;
    const pinnedSettings = async (): Promise<PinnedSettings> => {
      compose ??=
        deps.pinned ??
        (await keySource.pinned?.()) ??
        (await readPinnedFromGuestAgent(config.dstackEndpoint));
      return compose;
    };
    const pinned = await retry("reading the values pinned in the attested compose", async () => {
      const trust = deps.trust ?? requireTrustPins(await pinnedSettings());
      refuseEnvironmentOverride(trust, { chainId: config.chainId, cluster: config.cluster });
      return trust;
    });
    if (pinned === undefined) return;
    logger.info(
      {
        chainId: pinned.chainId,
        cluster: pinned.cluster,
        memberAppImplementation: pinned.memberAppImplementation,
        kmsRoots: pinned.kmsRoots,
      },
      "trust values pinned in the attested compose",
    );
    const rpc = await retry("resolving the pinned RPC providers", () =>
      rpcEndpoints(config, deps, counted, pinnedSettings),
    );
    if (rpc === undefined) return;
    logger.info(
      { providers: rpc.endpoints.map((e) => e.origin), quorum: rpc.quorum, chainId: rpc.chainId ?? null },
      "chain reads are cross-checked across the pinned RPC providers",
    );
    const connected = await retry("connecting to the chain", () =>
      connectChain({
        endpoints: rpc.endpoints,
        quorum: rpc.quorum,
        cluster: pinned.cluster,
        expectedChainId: pinned.chainId,
        gasKey: config.gasKey,
        pollingIntervalMs: Math.min(config.pollIntervalMs, 1000),
        logger,
        observer: {
          disagreement: (read) => metrics.rpcDisagreements.inc({ read }),
          providerFailure: (provider) => metrics.rpcProviderFailures.inc({ provider }),
        },
      }),
    );
    if (connected === undefined) return;
    const reader = createClusterReader(connected.reads, connected.cluster);
    const writer = await retry("setting up the write path", () =>
      selectClusterWriter({ config, chain: connected, keys, logger }),
    );
    if (signal.aborted) return;
    // Every write (registration, CSK commit, message send) goes through this one path.
    const chain = { ...connected, writer };
    logger.info(
      { mode: writer?.mode ?? "none", from: writer?.from ?? null },
      writer?.mode === "sponsored"
        ? "writes go out as sponsored UserOperations from the member account"
        : writer?.mode === "direct"
          ? "writes are paid by the gas key"
          : "no bundler and no gas key: this node cannot send transactions",
    );
    status.update({ account: writer?.from });
    const mesh = await retry("reading the mesh configuration", () => reader.meshConfig());
    if (mesh === undefined) return;
    logger.info(
      { chainId: chain.chainId, cluster: chain.cluster, prefixLength: mesh.cidr.prefixLength },
      "chain checked",
    );

    const cycle = createMembershipCycle({ status, logger, signal });
    attestationClaims = () => {
      const memberId = cycle.memberId();
      if (memberId === undefined) return undefined;
      return {
        chainId: chain.chainId,
        cluster: chain.cluster,
        memberId: memberId.toString(),
        memberKey: keys.member.address,
        wireguardKey: keys.wireguard.publicKey,
        identityKey: keys.identity.publicKey,
      };
    };
    const salts = createMemberAppSalts({
      client: chain.publicClient,
      cluster: chain.cluster,
      maxLogBlocks: BigInt(config.logsMaxBlocks),
      logger,
    });
    certifier = createMemberCertifier({
      pinned,
      source: createChainCertificateSource({
        client: chain.publicClient,
        reads: chain.reads,
        cluster: chain.cluster,
        salts,
        logger,
      }),
      logger,
      registry: metrics.registry,
    });
    // This node's own certificate, checked while it registers (its salt is the only chain read): until
    // it verified, and for good if it was refused, its own record is certified like any other.
    const ownCertificate = checkOwnCertificate({
      pinned,
      keys,
      claims,
      salt: async () => {
        const head = await chain.publicClient.getBlockNumber();
        return salts(keys.appId, head, async () => head);
      },
      logger,
    });
    const memberCertifier = certifier;
    // Every later stage sees only members whose certificate verified (certs/follower.ts) and whose live
    // attestation was not refused (reattest/follower.ts).
    const membership = createMembershipFollower({
      reads: chain.reads,
      cluster: chain.cluster,
      reader,
      confirmations: config.confirmations,
      logger,
    });
    const follower = createAttestedFollower(
      createCertifiedFollower(
        membership,
        memberCertifier,
        // This node's own record needs no fetch once its own certificate verified offline (certs/own.ts).
        // Still running (it is usually done well before the registration is), it is waited for: its one
        // read, the salt, is the one a fetch of the own certificate would wait for too.
        async () => {
          const memberId = cycle.memberId();
          if (memberId === undefined) return undefined;
          await ownCertificate.settled;
          return ownCertificate.record(memberId);
        },
      ),
      () => meshLayer.reattestation(),
      cycle.memberId,
    );
    /** A record read outside the view counts only once its certificate verified. */
    const certified = async (record: Member | undefined): Promise<Member | undefined> =>
      record !== undefined && record.status === "active" && (await memberCertifier.certify(record)).ok
        ? record
        : undefined;
    /**
     * The member id the registration receipt claims, until the read-back one is the cycle's: the
     * reconciler's claim, once it exists (it needs the transport, whose hellos ask for this first).
     */
    let claimedMemberId: () => bigint | undefined = () => undefined;
    const forgetClaim = () => reconciler.included(undefined);
    const peerTransport = await retry("starting the gateway bridge", () =>
      startTransport({
        config,
        identity: {
          chainId: chain.chainId,
          cluster: chain.cluster,
          identitySecret: keys.identity.secret,
          // Between its registration's inclusion and its member id read back, the hello names the id
          // the receipt claims: a wrong one only gets this node's own hellos refused.
          selfMemberId: () => cycle.memberId() ?? claimedMemberId(),
          // A hello must be signed by the identity key of an active member of the confirmed view.
          identityKey: (id) => {
            const member = follower.current()?.members.get(id);
            return member?.status === "active" ? member.identityKey : undefined;
          },
        },
        testsFirst: (peerKey) => initiatesFirst(keys.wireguard.publicKeyBase64, peerKey),
        registry: metrics.registry,
        logger,
      }),
    );
    if (peerTransport === undefined) return;
    shutdown.add("gateway bridge", () => peerTransport.close());
    const reconciler = createReconciler({
      follower,
      backend,
      endpoints: createEndpointsFile(config.endpointsFile, logger),
      status,
      metrics,
      logger,
      keys,
      mesh: mesh.cidr,
      interfaceName: config.wgInterface,
      listenPort: config.wgListenPort,
      keepaliveSeconds: config.wgKeepaliveSeconds,
      memberId: cycle.memberId,
      transport: peerTransport,
      onMembershipEnded: cycle.membershipEnded,
      wake: (reason) => void wake(reason),
      onInterfaceUp: (meshIp) => meshLayer.interfaceUp(meshIp),
    });
    claimedMemberId = reconciler.claimedMemberId;
    const messaging = await retry("starting sealed messages", () =>
      startMessaging({
        chain,
        reader,
        keys,
        stateDir: config.stateDir,
        startBlock: config.messagesStartBlock,
        confirmations: config.confirmations,
        pollIntervalMs: config.pollIntervalMs,
        pollInterval: () => cadence.interval(config.pollIntervalMs),
        registry: metrics.registry,
        logger,
        signal,
        memberId: cycle.memberId,
        knownMember: (id) => follower.current()?.members.get(id),
        certified,
        // The view above leaves refused peers out; a sender read outside it is held to the same verdict.
        senderRefused: (id, block) => meshLayer.reattestation()?.messagesRefused(id, block) === true,
        deliver: (message) => api.deliver(message),
      }),
    );
    if (messaging === undefined) return;
    api.setSender(messaging.sender);
    shutdown.add("message watcher", () => messaging.stopped);
    const loop = createReconcileLoop({
      pass: reconciler.pass,
      intervalMs: () => cadence.interval(config.pollIntervalMs),
      signal,
      logger,
      observe: (outcome, seconds) => {
        metrics.reconciles.inc({ outcome });
        metrics.reconcileSeconds.observe(seconds);
        // A pass may have just peered a newcomer: attest it now, as its CSK waits on that verdict.
        meshLayer.reattestation()?.wake();
      },
    });
    wake = (reason) => {
      cadence.stir();
      return loop.wake(reason);
    };
    /**
     * The pollers a push concerns now, and every poller at the full cadence: something happened on
     * chain. A registration's push wakes only the reconcile loop, so the CSK and message pollers' reads
     * do not queue ahead of its own at the providers while every node adds the newcomer (issue 15).
     */
    const wakeConcerned = wakeFor({
      // The loop's wake alone: wakeFor stirs the cadence for every push (`wake` would stir it again).
      membership: (reason) => loop.wake(reason),
      csk: () => meshLayer.wake(),
      messages: () => messaging.wake(),
      stir: () => cadence.stir(),
    });
    /** Every poller now, at the full cadence: the pushes stopped or lag. */
    const wakeAll = (reason: string) => wakeConcerned(reason, EVERY_CONCERN);
    shutdown.add("reconcile loop", () => loop.stopped);
    if (config.indexerPush) {
      // Wake-ups only: each verified push triggers this sidecar's own chain reads.
      const intake = startIntake({
        client: chain.publicClient,
        readIndexerRecords: () => readIndexerRecords(chain.reads, chain.cluster),
        cluster: chain.cluster,
        chainId: chain.chainId,
        memberId: cycle.memberId,
        account: privateKeyToAccount(keys.member.secret.reveal()),
        wake: wakeConcerned,
        // A pushed registration's, eviction's or leave's record is read beside the logs of the pass it wakes.
        onMemberChanged: (memberId, block) => membership.expect?.(memberId, block),
        onStatus: (s) => {
          status.update(s);
          const healthy = s.indexers.some((link) => link.subscribed && !link.lagging);
          const stopped = wakeUpsHealthy && !healthy;
          wakeUpsHealthy = healthy;
          if (stopped) void wakeAll("indexer subscription down or lagging: polling at the full cadence");
        },
        signal,
        logger,
        registry: metrics.registry,
        reproSampleRate: config.indexerReproPercent / 100,
        lagThresholdMs: config.indexerLagMs,
        confirmations: config.confirmations,
        backoff: backoff(30_000),
        registryRetryMs: Math.max(config.pollIntervalMs, 5_000),
        indexerQuote: createIndexerQuoteCheck({
          policy: agreedAttestationPolicy(chain.reads, chain.cluster),
          collateral,
        }),
        subscriptions: config.indexerSubscriptions,
        ...random(deps),
      });
      shutdown.add("indexer intake", () => intake.stopped);
    }

    status.update({ booted: true });
    // One pass while this node registers verifies the members' certificates, so the pass right after
    // its registration reads only what changed: a newcomer peers within a block, not a round of
    // certificates later (issue 15). Before registration a pass configures nothing.
    void loop.wake("verifying the members' certificates while registering");
    await cycle.run({
      register: () =>
        ensureRegistered({
          chain,
          reader,
          writer,
          keys,
          claims,
          confirmations: config.confirmations,
          logger,
          signal,
          backoff: backoff(config.registerMaxBackoffMs),
          ...random(deps),
          onAttempt: (outcome) => {
            metrics.registrationAttempts.inc({ outcome });
            // A failed attempt's claim goes; a successful one's when its member id is the cycle's.
            if (outcome !== "registered" && outcome !== "already-member") forgetClaim();
          },
          // The pass syncs (and certifies) the new record while the member id is read back, so the
          // pass `began` asks for finds this node in a view that is already current.
          // The links to the members open meanwhile too (the registration can no longer be refused).
          // The receipt's claim of this node's record lets that pass add the view's members at once,
          // before it syncs: its address and member id only, corrected by the view (reconciler.ts).
          // The links' sockets open while the registration is on its way (transport/ahead.ts), and so
          // does the membership's mesh socket factory.
          onSubmitting: () => {
            reconciler.connectAhead();
            meshLayer.prepare();
          },
          onIncluded: (claimed, block) => {
            // Only a node whose own certificate verified offline goes ahead of its view: every member
            // verifies it with the same pins. One refused, or not checked yet, waits for its view.
            const ahead =
              claimed !== undefined && ownCertificate.record(claimed.memberId) !== undefined
                ? claimed
                : undefined;
            reconciler.included(ahead === undefined ? undefined : { record: ahead, block });
            void loop.wake("registration included");
            reconciler
              .prepareLinks()
              .catch((err: unknown) => logger.debug({ err }, "bridge links not opened ahead of membership"));
          },
        }),
      began() {
        forgetClaim();
        loop.start();
        void loop.wake("registered");
      },
      runMesh: (memberId, membershipSignal) =>
        meshLayer.runMembership({
          memberId,
          chain,
          reader,
          follower,
          certified,
          keys,
          signal: membershipSignal,
          attested: follower,
          onRefusal: () => void wake("a peer's attestation was refused or admitted again"),
        }),
      ended: () => meshLayer.ended(),
    });
  }

  const done = run().then(
    async () => {
      await shutdown.finished;
    },
    async (error: unknown) => {
      const code = error instanceof AttestmeshError ? error.code : "Unexpected";
      logger.fatal({ err: error, code }, "sidecar stopped by a fatal error");
      status.update({
        lastError: {
          code,
          message: scrubUrls(error instanceof Error ? error.message : String(error)),
          at: Date.now(),
        },
      });
      await shutdown.shutdown(`fatal: ${code}`);
      throw error;
    },
  );
  // The caller owns `done`; this keeps an unobserved fatal error from crashing a test process.
  done.catch(() => {});

  return {
    healthUrl: health.url,
    apiSocket: api.socketPath,
    api,
    metrics,
    status: status.get,
    csk: meshLayer.csk,
    peers: meshLayer.peers,
    certifier: () => certifier,
    wake: (reason) => wake(reason),
    stop: (reason = "stop requested") => shutdown.shutdown(reason),
    done,
  };
}

/**
 * The providers to read the chain from, the quorum and the expected chain id: the hosts and chain id
 * the attested compose pins, with the credentials the environment adds for them (an unpinned host is
 * fatal), unless a test injected its own.
 */
async function rpcEndpoints(
  config: SidecarConfig,
  deps: SidecarDeps,
  counted: (transport: Transport) => Transport,
  pinnedSettings: () => Promise<PinnedSettings>,
): Promise<{ endpoints: RpcEndpoint[]; quorum: number; chainId: number | undefined }> {
  let endpoints: RpcEndpoint[];
  let chainId = config.chainId;
  if (deps.providers !== undefined) {
    endpoints = deps.providers.map((p) => ({ origin: p.origin, transport: counted(p.transport) }));
  } else if (deps.transport !== undefined) {
    endpoints = [{ origin: "injected", transport: counted(deps.transport) }];
  } else {
    const pinned = await pinnedSettings();
    if (pinned.chainId !== undefined) {
      if (config.chainId !== undefined && config.chainId !== pinned.chainId) {
        throw fatalError(
          "ChainIdMismatch",
          `ATTESTMESH_CHAIN_ID is ${config.chainId} but the attested compose pins chain ${pinned.chainId} (x-attestmesh.chain_id); unset ATTESTMESH_CHAIN_ID.`,
          { details: { expectedChainId: pinned.chainId, rpcChainId: config.chainId } },
        );
      }
      chainId = pinned.chainId;
    }
    const credentials = [...(config.rpcUrl === undefined ? [] : [config.rpcUrl]), ...(config.rpcUrls ?? [])];
    endpoints = resolveRpcProviders(
      pinned.rpcProviders ?? [],
      credentials,
      "ATTESTMESH_RPC_URLS (or ATTESTMESH_RPC_URL)",
    ).map((p) => ({
      origin: p.origin,
      // No retries of its own: the quorum moves on to another provider instead. Node's HTTP client
      // rather than fetch: a fraction of the CPU per call (chain/http.ts).
      transport: counted(jsonRpcHttp(p.url, { timeoutMs: 10_000 })),
    }));
  }
  const n = endpoints.length;
  const quorum = config.rpcQuorum ?? majority(n);
  if (quorum < majority(n) || quorum > n) {
    throw fatalError(
      "InvalidConfig",
      `ATTESTMESH_RPC_QUORUM is ${quorum}, but with ${n} pinned RPC provider(s) it must be between ${majority(n)} (a majority, so two quorums cannot disagree) and ${n}.`,
      { details: { quorum, providers: n } },
    );
  }
  return { endpoints, quorum, chainId };
}

function random(deps: SidecarDeps): { random?: () => number } {
  return deps.random === undefined ? {} : { random: deps.random };
}

function defaultBackend(config: SidecarConfig, logger: Logger): WireGuardBackend {
  if (config.wgMode === "memory") {
    logger.warn("ATTESTMESH_WG_MODE=memory: WireGuard is simulated in memory; no traffic flows (tests only)");
    return createMemoryBackend();
  }
  return createWgBackend({
    mode: config.wgMode,
    logger,
    ...(config.wgNetns === undefined ? {} : { netns: config.wgNetns }),
  });
}

/** The `attestmesh-sidecar` process: configuration from `env`, exit 0 after a clean shutdown. */
export async function main(
  env: Env = process.env,
  /** Tests only: a member that misbehaves (serves bogus keys, or quotes over other report data). */
  deps: Pick<SidecarDeps, "cskServePolicy" | "evidenceSource"> = {},
): Promise<void> {
  let config: SidecarConfig;
  try {
    config = parseConfig(env);
  } catch (error) {
    const logger = createLogger();
    logger.fatal({ err: error }, error instanceof Error ? error.message : String(error));
    process.exitCode = 2;
    return;
  }
  const logger = createLogger({ level: config.logLevel });
  process.on("unhandledRejection", (reason) => {
    logger.fatal({ err: reason }, "unhandled rejection");
    process.exit(1);
  });
  const shutdown = createShutdown({ logger });
  exitOnSignals(shutdown, { logger });
  let sidecar: Sidecar;
  try {
    sidecar = await startSidecar(config, { ...deps, logger, shutdown });
  } catch (error) {
    logger.fatal({ err: error }, "sidecar could not start");
    await shutdown.shutdown("start failed");
    process.exit(1);
  }
  try {
    await sidecar.done;
  } catch {
    process.exit(1);
  }
}
