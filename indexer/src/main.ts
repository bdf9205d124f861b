// The indexer daemon: derive the signing key in the TEE, check the chain, follow every configured
// cluster on one timer (and at once on every new head, when a WebSocket URL is set; the timer then
// slows to a safety poll while the subscription is up), and serve subscribers. `startIndexer` wires one
// instance (tests run several in one process); `main` is the `attestmesh-indexer` process.
import { randomBytes } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { MESSAGE_SENT_TOPIC } from "@attestmesh/shared/contracts/events.ts";
import { toHex } from "@attestmesh/shared/indexer/envelope.ts";
import { type BackoffOptions, backoffDelay } from "@attestmesh/shared/service/backoff.ts";
import { checkChainId } from "@attestmesh/shared/service/chainId.ts";
import { loggableConfig } from "@attestmesh/shared/service/log.ts";
import { createShutdown, exitOnSignals } from "@attestmesh/shared/service/shutdown.ts";
import { createPublicClient, type Hex, http, type Transport } from "viem";
import { createAuthenticator } from "./auth.ts";
import { type Env, type IndexerConfig, parseConfig } from "./config.ts";
import { AttestmeshError } from "./errors.ts";
import { createClusterFollower } from "./follower.ts";
import { type HeadWatcher, watchHeads } from "./heads.ts";
import { createDstackKeySource, deriveIndexerKeys, type IndexerKeySource, type IndexerKeys } from "./keys.ts";
import { createLogger, type Logger } from "./log.ts";
import { createSuppressor, type LyingMode, parseLyingMode } from "./lying.ts";
import { createMetrics, type IndexerMetrics } from "./metrics.ts";
import { startPushServer } from "./server.ts";
import { type ClusterStream, createClusterStream } from "./stream.ts";

export interface IndexerDeps {
  readonly logger?: Logger;
  readonly keySource?: IndexerKeySource;
  readonly transport?: Transport;
  /** How the new-heads subscription redials (tests shorten it). */
  readonly headBackoff?: BackoffOptions;
  /** TEST ONLY (`lying.ts`): drop every log naming these app ids. */
  readonly lying?: LyingMode;
}

export interface Indexer {
  /** ws://host:port */
  readonly url: string;
  readonly port: number;
  readonly keys: IndexerKeys;
  readonly metrics: IndexerMetrics;
  readonly streams: ReadonlyMap<string, ClusterStream>;
  /**
   * Runs one follow step for every cluster, starting after the one running (if any); calls made while
   * one is already waiting share it.
   */
  tick(): Promise<void>;
  subscriberCount(): number;
  stop(): Promise<void>;
}

export async function startIndexer(config: IndexerConfig, deps: IndexerDeps = {}): Promise<Indexer> {
  const logger = deps.logger ?? createLogger({ level: config.logLevel });
  logger.info({ config: loggableConfig(config) }, "attestmesh indexer starting");
  const metrics = createMetrics();
  const client = createPublicClient({
    transport: deps.transport ?? http(config.rpcUrl, { timeout: 15_000, retryCount: 2 }),
    cacheTime: 0,
  });
  const suppress = deps.lying === undefined ? undefined : createSuppressor(deps.lying);
  if (deps.lying !== undefined) {
    logger.warn(
      { testOnlyLyingMode: true, suppressedAppIds: deps.lying.suppressAppIds },
      "TEST-ONLY LYING MODE: this indexer silently drops every log naming these app ids. Never run it outside tests.",
    );
  }
  const keys = await deriveIndexerKeys(deps.keySource ?? createDstackKeySource(config.dstackEndpoint));
  logger.info(
    {
      signingKey: keys.publicKeyHex,
      appId: keys.appId,
      composeHash: keys.composeHash,
      kmsRoot: keys.kmsRoot,
    },
    "signing key derived in the TEE; its dstack chain verifies",
  );
  const chainId = await checkChainId({
    getChainId: () => client.getChainId(),
    expected: config.chainId,
    rpcVariable: "ATTESTMESH_INDEXER_RPC_URL",
    chainIdVariable: "ATTESTMESH_INDEXER_CHAIN_ID",
  });

  const epoch = toHex(randomBytes(16)) as Hex;
  const clusters = config.clusters.map((cluster) => ({
    cluster,
    follower: createClusterFollower({
      client,
      cluster,
      startBlock: config.startBlock,
      confirmations: config.confirmations,
      batchBlocks: config.batchBlocks,
      logger,
    }),
    stream: createClusterStream({
      cluster,
      chainId,
      epoch,
      secretKey: keys.secretKey.reveal(),
      history: config.history,
      messageSentTopic: MESSAGE_SENT_TOPIC,
    }),
    lastHead: undefined as bigint | undefined,
    processed: undefined as bigint | undefined,
    healthyAt: 0,
  }));
  const streams = new Map(clusters.map((c) => [c.cluster.toLowerCase(), c.stream]));

  /** Follows one cluster; false when the step failed (the next poll comes at the full cadence). */
  async function followOne(c: (typeof clusters)[number]): Promise<boolean> {
    try {
      const started = Date.now();
      const ticked = await c.follower.tick();
      if (ticked.events.length > 0)
        logger.trace(
          { head: ticked.head, events: ticked.events.length, ms: Date.now() - started },
          "follow step read logs",
        );
      const kept = suppress === undefined ? ticked.events : suppress(ticked.events);
      if (kept.length !== ticked.events.length) {
        logger.warn(
          { cluster: c.cluster, dropped: ticked.events.length - kept.length },
          "TEST-ONLY LYING MODE: logs suppressed",
        );
      }
      const result = { ...ticked, events: kept };
      c.lastHead = result.head;
      c.processed = result.processed;
      c.healthyAt = Date.now();
      if (result.processed !== undefined && result.processedHash !== undefined) {
        c.stream.setHead(result.processed, result.processedHash);
      }
      if (result.reorg !== undefined) metrics.reorgs.inc({ cluster: c.cluster });
      for (const e of result.events)
        metrics.envelopes.inc({ cluster: c.cluster, removed: String(e.removed) });
      metrics.lagBlocks.set({ cluster: c.cluster }, Number(result.head - (result.processed ?? result.head)));
      c.stream.publish(result.events);
      return true;
    } catch (err) {
      metrics.followErrors.inc({ cluster: c.cluster });
      logger.warn({ err, cluster: c.cluster }, "follow step failed; retrying on the next tick");
      return false;
    }
  }

  // At most one step runs and one waits: a wake-up (poll, head, test) while one waits joins it, so
  // heads arriving faster than steps finish cannot grow the chain.
  let ticking: Promise<void> = Promise.resolve();
  let waiting: Promise<void> | undefined;
  let lastStepOk = true;
  const tick = () => {
    if (waiting !== undefined) return waiting;
    const next = ticking.then(() => {
      waiting = undefined;
      return Promise.all(clusters.map(followOne)).then((ok) => {
        lastStepOk = ok.every(Boolean);
      });
    });
    waiting = next;
    ticking = next;
    return next;
  };
  await tick();

  let heads: HeadWatcher | undefined;
  const subscribedPollMs = Math.max(config.subscribedPollIntervalMs, config.pollIntervalMs);
  const server = await startPushServer({
    host: config.host,
    port: config.port,
    chainId,
    streams,
    auth: createAuthenticator({ client, chainId, clusters: config.clusters, signingKey: keys.publicKeyHex }),
    secretKey: keys.secretKey.reveal(),
    signingKey: keys.publicKeyHex,
    quote: keys.quote,
    limits: { window: config.window, ackTimeoutMs: config.ackTimeoutMs, maxBufferedBytes: 8 * 1024 * 1024 },
    authTimeoutMs: config.authTimeoutMs,
    metrics,
    logger,
    health: () => {
      const staleAfter = Math.max(30_000, config.pollIntervalMs * 10, subscribedPollMs * 3);
      const rows = clusters.map((c) => ({
        cluster: c.cluster,
        head: c.lastHead?.toString() ?? null,
        processed: c.processed?.toString() ?? null,
        lastSeq: c.stream.lastSeq().toString(),
        following: Date.now() - c.healthyAt < staleAfter,
      }));
      return {
        ok: rows.every((r) => r.following),
        signingKey: keys.publicKeyHex,
        appId: keys.appId,
        chainId,
        epoch,
        subscribers: server?.subscriberCount() ?? 0,
        // Informational: polling follows while it is down, so it never makes the indexer unhealthy.
        headSubscription: heads === undefined ? "off" : heads.subscribed() ? "up" : "down",
        clusters: rows,
        // Public: the proof file of `attestmesh indexer set --proof` (the endpoint is the owner's to name).
        registration: { ...keys.proof, signingKey: keys.publicKeyHex, codeId: keys.composeHash },
      };
    },
  });
  logger.info({ url: server.url, clusters: config.clusters }, "indexer listening");

  // The poll: every poll interval, or every subscribed interval while new heads wake the steps and the
  // last step succeeded. Each head wakes a step of its own, so the slower poll only catches a head the
  // socket lost: such a block is pushed within the subscribed interval and the step reading it. When the subscription drops,
  // a poll runs at once (a dying socket may have lost heads before it was noticed) and the full cadence
  // resumes. `timer` is set only while a poll waits; while one runs, it schedules the next itself.
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const pollInterval = () =>
    heads?.subscribed() === true && lastStepOk ? subscribedPollMs : config.pollIntervalMs;
  const schedulePoll = (ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      metrics.polls.inc();
      void tick().finally(() => {
        if (!stopped) schedulePoll(pollInterval());
      });
    }, ms);
  };
  heads =
    config.wsUrl === undefined
      ? undefined
      : watchHeads({
          url: config.wsUrl,
          onHead: () => {
            if (!stopped) void tick();
          },
          onSubscription: (up) => {
            if (!up && !stopped && timer !== undefined) schedulePoll(0);
          },
          logger,
          metrics,
          ...(deps.headBackoff === undefined ? {} : { backoff: deps.headBackoff }),
        });
  schedulePoll(pollInterval());

  return {
    url: server.url,
    port: server.port,
    keys,
    metrics,
    streams,
    tick,
    subscriberCount: () => server.subscriberCount(),
    async stop() {
      if (stopped) return;
      stopped = true;
      clearTimeout(timer);
      await heads?.stop();
      await server.close();
      await ticking.catch(() => {});
      logger.info("indexer stopped");
    },
  };
}

/** Waits between start attempts: 1 s, doubling, at most 30 s. */
const START_BACKOFF = { initialMs: 1000, maxMs: 30_000, jitter: 0 } as const;

/** The `attestmesh-indexer` process: configuration from `env`; SIGTERM/SIGINT stop it cleanly. */
export async function main(env: Env = process.env): Promise<void> {
  let config: IndexerConfig;
  let lying: LyingMode | undefined;
  try {
    config = parseConfig(env);
    lying = parseLyingMode(env);
  } catch (error) {
    createLogger().fatal({ err: error }, error instanceof Error ? error.message : String(error));
    process.exitCode = 2;
    return;
  }
  const logger = createLogger({ level: config.logLevel });
  let indexer: Indexer | undefined;
  for (let attempt = 0; indexer === undefined; attempt++) {
    try {
      indexer = await startIndexer(config, lying === undefined ? { logger } : { logger, lying });
    } catch (error) {
      const retryable = error instanceof AttestmeshError && error.retryable;
      logger.error(
        { err: error, attempt },
        retryable ? "indexer could not start; retrying" : "indexer could not start",
      );
      if (!retryable) {
        process.exitCode = 1;
        return;
      }
      await delay(backoffDelay(attempt, START_BACKOFF));
    }
  }
  const running = indexer;
  const shutdown = createShutdown({ logger });
  shutdown.add("indexer", () => running.stop());
  exitOnSignals(shutdown, { logger });
}
