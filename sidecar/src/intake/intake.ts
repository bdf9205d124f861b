// The sidecar's side of the indexer: find the indexer in the registry (again before every connection),
// subscribe with a member-key signature over the server's challenge, verify every envelope, and turn
// each verified push into a wake-up of the reconcile loop. The payload is never stored: the reconcile
// pass reads the chain itself. An envelope that fails verification, or whose sampled repro stub does not
// reproduce, tears the subscription down and is logged as adversarial; reconnection backs off. Chain
// polling runs underneath all along, so an indexer that lies, lags or disappears only costs latency.
import { MESSAGE_SENT_TOPIC } from "@attestmesh/shared/contracts/events.ts";
// The protocol's steps are protocol.ts; this file carries them out on a WebSocket.
import type { SignedLogEnvelope } from "@attestmesh/shared/indexer/envelope.ts";
import { Counter, Gauge, type Registry } from "prom-client";
import type { Address, Chain, LocalAccount, PublicClient, Transport } from "viem";
import WebSocket from "ws";
import { type BackoffOptions, backoffDelay } from "../backoff.ts";
import type { Logger } from "../log.ts";
import { sleep } from "../sleep.ts";
import { createLagDetector } from "./lag.ts";
import { createSubscriptionProtocol } from "./protocol.ts";
import type { IndexerQuoteCheck } from "./quote.ts";
import type { IndexerRecord, ReadIndexerRecord } from "./registry.ts";
import { runRepro } from "./repro.ts";
import type { Position } from "./verifier.ts";

export interface IntakeStatus {
  /** True only while a subscription whose hello verified is up. */
  readonly indexerSubscribed: boolean;
  readonly lastVerifiedPushBlock: bigint | undefined;
}

export interface IntakeOptions {
  /** For the repro checks (a sample of pushes re-run; they decide nothing but a teardown). */
  readonly client: PublicClient<Transport, Chain | undefined>;
  /** The indexer record, as the chain layer's quorum read. */
  readonly readIndexerRecord: ReadIndexerRecord;
  readonly cluster: Address;
  readonly chainId: number;
  /** The member id to subscribe as; undefined while not a member (the intake waits). */
  readonly memberId: () => bigint | undefined;
  /** The member key: signs the subscription. */
  readonly account: LocalAccount;
  readonly wake: (reason: string) => Promise<void>;
  readonly onStatus: (status: IntakeStatus) => void;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  readonly registry?: Registry;
  /** Share of log envelopes whose repro stub is run before the wake-up, 0..1. */
  readonly reproSampleRate: number;
  /** A log seen by polling but not pushed within this long flags the indexer as lagging. */
  readonly lagThresholdMs: number;
  readonly confirmations: number;
  readonly backoff: BackoffOptions;
  /** How long to wait before reading the registry again when no indexer is set. */
  readonly registryRetryMs: number;
  /** Verifies the indexer's quote on the hello of every session (quote.ts). */
  readonly indexerQuote: IndexerQuoteCheck;
  readonly random?: () => number;
}

export interface Intake {
  status(): IntakeStatus;
  /** Resolves when the intake loop has ended (after the signal aborted). */
  readonly stopped: Promise<void>;
}

function intakeMetrics(registry: Registry | undefined) {
  const registers = registry === undefined ? [] : [registry];
  return {
    verified: new Counter({
      name: "attestmesh_indexer_pushes_verified_total",
      help: "Indexer envelopes that passed verification (each one a wake-up).",
      registers,
    }),
    rejected: new Counter({
      name: "attestmesh_indexer_pushes_rejected_total",
      help: "Indexer envelopes rejected as adversarial, by reason; each tore the subscription down.",
      labelNames: ["reason"] as const,
      registers,
    }),
    repro: new Counter({
      name: "attestmesh_indexer_repro_checks_total",
      help: "Sampled repro stubs run against our own RPC, by outcome.",
      labelNames: ["outcome"] as const,
      registers,
    }),
    lagging: new Counter({
      name: "attestmesh_indexer_lagging_logs_total",
      help: "Logs seen by polling that no verified push named within the lag threshold.",
      registers,
    }),
    subscribed: new Gauge({
      name: "attestmesh_indexer_subscribed",
      help: "1 while a verified indexer subscription is up.",
      registers,
    }),
  };
}

export function startIntake(options: IntakeOptions): Intake {
  const { client, logger, signal } = options;
  const metrics = intakeMetrics(options.registry);
  let status: IntakeStatus = { indexerSubscribed: false, lastVerifiedPushBlock: undefined };
  const setStatus = (patch: Partial<IntakeStatus>) => {
    status = { ...status, ...patch };
    metrics.subscribed.set(status.indexerSubscribed ? 1 : 0);
    options.onStatus(status);
  };
  /** Delivery position per signing key, so a resumed session never re-accepts what was accepted. */
  const positions = new Map<string, Position | undefined>();
  const relevantTo = (memberId: bigint) => (topics: readonly string[]) =>
    !(
      topics[0]?.toLowerCase() === MESSAGE_SENT_TOPIC &&
      topics[1] !== undefined &&
      BigInt(topics[1]) !== memberId
    );

  /** One connection; resolves when it closed. Returns whether any envelope verified. */
  function session(record: IndexerRecord, memberId: bigint): Promise<{ verified: boolean }> {
    return new Promise((resolve) => {
      const protocol = createSubscriptionProtocol({
        signingKey: record.signingKey,
        chainId: options.chainId,
        cluster: options.cluster,
        memberId,
        messageSentTopic: MESSAGE_SENT_TOPIC,
        position: positions.get(record.signingKey),
      });
      const log = logger.child({ indexer: record.endpoint, signingKey: record.signingKey });
      const lag = createLagDetector({
        client,
        cluster: options.cluster,
        confirmations: options.confirmations,
        thresholdMs: options.lagThresholdMs,
        relevant: relevantTo(memberId),
      });
      let verified = false;
      let done = false;
      let lagTimer: NodeJS.Timeout | undefined;
      let queue: Promise<void> = Promise.resolve();
      let ws: WebSocket;
      try {
        ws = new WebSocket(record.endpoint, { maxPayload: 1024 * 1024, handshakeTimeout: 10_000 });
      } catch (err) {
        log.warn(
          { err },
          "the registry's indexer endpoint is not a WebSocket URL; polling only until it changes",
        );
        resolve({ verified: false });
        return;
      }

      const finish = () => {
        if (done) return;
        done = true;
        clearInterval(lagTimer);
        signal.removeEventListener("abort", onAbort);
        if (status.indexerSubscribed) setStatus({ indexerSubscribed: false });
        resolve({ verified });
      };
      const onAbort = () => ws.close(1001, "sidecar shutting down");
      signal.addEventListener("abort", onAbort, { once: true });

      const reject = (reason: string, details: Record<string, unknown> = {}) => {
        if (done) return;
        metrics.rejected.inc({ reason });
        log.warn(
          { adversarial: true, reason, ...details },
          "indexer push rejected; tearing the subscription down",
        );
        ws.terminate();
      };

      async function handle(data: WebSocket.RawData): Promise<void> {
        if (done || ws.readyState !== WebSocket.OPEN) return;
        const step = protocol.receive(data);
        if (step.kind === "reject") return reject(step.reason, step.details);
        if (step.kind === "subscribe") {
          const signature = await options.account.signTypedData(step.typedData);
          ws.send(JSON.stringify(step.message(signature)));
          return;
        }
        if (step.kind === "refused") {
          log.warn({ code: step.code, message: step.message }, "indexer refused the subscription");
          return;
        }
        const envelope = step.envelope;
        if (envelope.kind === "hello") {
          const verdict = await options.indexerQuote(envelope.quote, record).then(
            (report) => report,
            (err: unknown) => {
              log.warn({ err }, "could not verify the indexer's quote (policy read failed); reconnecting");
              return undefined;
            },
          );
          if (done) return;
          if (verdict === undefined) return void ws.terminate();
          const failed = verdict.checks.find((c) => !c.ok);
          if (failed?.reason === "CollateralUnavailable") {
            // Not the indexer's doing: no collateral means no verdict, so no subscription until there is.
            log.warn({ detail: failed.detail }, "no collateral to verify the indexer's quote; reconnecting");
            return void ws.terminate();
          }
          if (!verdict.ok || failed !== undefined) {
            return reject(failed?.reason ?? "QuoteRejected", {
              check: failed?.name,
              detail: failed?.detail,
              quoteKind: verdict.kind,
            });
          }
          positions.set(record.signingKey, protocol.accept(envelope));
          verified = true;
          await lag.reset().catch((err: unknown) => log.debug({ err }, "lag detector could not start"));
          lagTimer = setInterval(
            () => {
              // Subscribed as a member id that is no longer ours (membership ended): start over.
              if (options.memberId() !== memberId) ws.close(1000, "membership changed");
              lag.check().then(
                (late) => {
                  if (late === 0) return;
                  metrics.lagging.inc(late);
                  log.warn(
                    { lateLogs: late, thresholdMs: options.lagThresholdMs },
                    "indexer lags: polling saw logs long before any push",
                  );
                },
                (err: unknown) => log.debug({ err }, "lag check failed"),
              );
            },
            Math.max(250, Math.floor(options.lagThresholdMs / 3)),
          );
          lagTimer.unref();
          setStatus({ indexerSubscribed: true });
          log.info(
            {
              epoch: envelope.epoch,
              after: envelope.seq,
              gap: envelope.gap,
              quote: verdict.kind === "simulated" ? "SIMULATED (the cluster allows the simulator)" : "tdx",
              tcbStatus: verdict.tcbStatus,
              composeHash: verdict.boundComposeHash,
            },
            "indexer subscription verified",
          );
          if (envelope.gap) void options.wake("indexer cursor gap");
          return;
        }
        if (!envelope.removed && (options.random ?? Math.random)() < options.reproSampleRate) {
          const outcome = await runRepro(client, envelope).catch((err: unknown) => {
            log.debug({ err }, "repro check could not run");
            return "unverifiable" as const;
          });
          metrics.repro.inc({ outcome });
          if (outcome === "not-reproduced") {
            return reject("ReproDoesNotReproduce", { seq: envelope.seq, txHash: envelope.txHash });
          }
        }
        if (done) return;
        accept(envelope);
      }

      function accept(envelope: SignedLogEnvelope): void {
        positions.set(record.signingKey, protocol.accept(envelope));
        verified = true;
        lag.pushed(envelope.txHash, envelope.logIndex);
        metrics.verified.inc();
        const block = BigInt(envelope.blockNumber);
        if (status.lastVerifiedPushBlock === undefined || block > status.lastVerifiedPushBlock) {
          setStatus({ lastVerifiedPushBlock: block });
        }
        ws.send(JSON.stringify({ type: "ack", seq: envelope.seq }));
        void options.wake("indexer push");
      }

      ws.on("message", (data) => {
        queue = queue
          .then(() => handle(data))
          .catch((err: unknown) => {
            log.warn({ err }, "handling an indexer message failed; reconnecting");
            ws.terminate();
          });
      });
      ws.on("error", (err) => log.debug({ err }, "indexer connection error"));
      ws.on("close", (code, reason) => {
        log.info({ code, reason: reason.toString() }, "indexer subscription closed");
        finish();
      });
    });
  }

  async function loop(): Promise<void> {
    let attempt = 0;
    while (!signal.aborted) {
      const memberId = options.memberId();
      if (memberId === undefined) {
        await sleep(500, signal);
        continue;
      }
      let record: IndexerRecord | undefined;
      try {
        record = await options.readIndexerRecord();
      } catch (err) {
        logger.warn({ err }, "could not read the indexer registry; retrying");
        await sleep(backoffDelay(attempt++, options.backoff, options.random), signal);
        continue;
      }
      if (record === undefined) {
        logger.debug("no indexer registered; polling only");
        await sleep(options.registryRetryMs, signal);
        continue;
      }
      const { verified } = await session(record, memberId);
      if (verified) attempt = 0;
      await sleep(backoffDelay(attempt++, options.backoff, options.random), signal);
    }
  }

  const stopped = loop().catch((err: unknown) => {
    logger.error({ err }, "indexer intake stopped unexpectedly; polling continues");
  });
  return { status: () => status, stopped };
}
