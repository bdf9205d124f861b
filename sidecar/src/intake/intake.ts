// The sidecar's side of the indexers: find them in the registry (again before every connection and on
// every registry poll), subscribe to the first `subscriptions` of them at once, each with a member-key
// signature over its server's challenge, verify every envelope, and turn each verified push, from any of
// them, into a wake-up of the pollers its log concerns (concerns.ts; once per block, poller and
// subscription: a transaction's later logs wake nothing more). Each subscription slot has its own
// verifier position, backoff and lag detector, so one indexer that dies, lags or lies costs nothing while another keeps
// pushing; an indexer the owner adds or removes is picked up or dropped at the slot's next reconnect. The payload is never stored: the reconcile
// pass reads the chain itself. An envelope that fails verification, or whose sampled repro stub does not
// reproduce, tears the subscription down and is logged as adversarial; reconnection backs off. Chain
// polling runs underneath all along, so an indexer that lies, lags or disappears only costs latency.
import { MESSAGE_SENT_TOPIC } from "@attestmesh/shared/contracts/events.ts";
// The protocol's steps are protocol.ts; this file carries them out on a WebSocket.
import type { SignedLogEnvelope } from "@attestmesh/shared/indexer/envelope.ts";
import { metricsOn } from "@attestmesh/shared/service/metrics.ts";
import type { Registry } from "prom-client";
import type { Address, Chain, Hex, LocalAccount, PublicClient, Transport } from "viem";
import WebSocket from "ws";
import { type BackoffOptions, backoffDelay } from "../backoff.ts";
import type { Logger } from "../log.ts";
import { sleep } from "../sleep.ts";
import { type Concern, changedMember, concernsOf, EVERY_CONCERN } from "./concerns.ts";
import { createLagDetector } from "./lag.ts";
import { createSubscriptionProtocol } from "./protocol.ts";
import type { IndexerQuoteCheck } from "./quote.ts";
import type { IndexerRecord, ReadIndexerRecords } from "./registry.ts";
import { runRepro } from "./repro.ts";
import type { Position } from "./verifier.ts";

/** One indexer this sidecar subscribes to. */
export interface IndexerLinkStatus {
  readonly endpoint: string;
  readonly signingKey: Hex;
  /** True only while this indexer's subscription is up and its hello verified. */
  readonly subscribed: boolean;
  /** The block of the last push from this indexer that passed verification. */
  readonly lastVerifiedPushBlock: bigint | undefined;
  /** Logs polling saw that this indexer did not push within the lag threshold, since the sidecar started. */
  readonly lateLogs: number;
  /** The last lag check of this indexer found late logs. */
  readonly lagging: boolean;
}

export interface IntakeStatus {
  /** True only while at least one subscription whose hello verified is up. */
  readonly indexerSubscribed: boolean;
  /** The newest block any indexer's verified push named. */
  readonly lastVerifiedPushBlock: bigint | undefined;
  /** Each indexer subscribed to (or being connected), in registry order. */
  readonly indexers: readonly IndexerLinkStatus[];
}

export interface IntakeOptions {
  /** For the repro checks (a sample of pushes re-run; they decide nothing but a teardown). */
  readonly client: PublicClient<Transport, Chain | undefined>;
  /** The registered indexers, oldest first, as the chain layer's quorum read. */
  readonly readIndexerRecords: ReadIndexerRecords;
  readonly cluster: Address;
  readonly chainId: number;
  /** The member id to subscribe as; undefined while not a member (the intake waits). */
  readonly memberId: () => bigint | undefined;
  /** The member key: signs the subscription. */
  readonly account: LocalAccount;
  /** Wakes the pollers in `concerns` (every poller but for a push whose log says otherwise). */
  readonly wake: (reason: string, concerns: ReadonlySet<Concern>) => Promise<void>;
  /**
   * A verified push of a log that changes a member's record (member id, block), before the wake-up it
   * brings: a hint only.
   */
  readonly onMemberChanged?: (memberId: bigint, block: bigint) => void;
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
  /** How often the registry is read again for added and removed indexers. */
  readonly registryRetryMs: number;
  /** Verifies the indexer's quote on the hello of every session (quote.ts). */
  readonly indexerQuote: IndexerQuoteCheck;
  /** How many registered indexers to subscribe to at once (the oldest registered first); default 2. */
  readonly subscriptions?: number;
  readonly random?: () => number;
}

export interface Intake {
  status(): IntakeStatus;
  /** Resolves when the intake loop has ended (after the signal aborted). */
  readonly stopped: Promise<void>;
}

function intakeMetrics(registry: Registry | undefined) {
  const { counter, gauge } = metricsOn(registry);
  return {
    verified: counter(
      "attestmesh_indexer_pushes_verified_total",
      "Indexer envelopes that passed verification (each one a wake-up).",
    ),
    rejected: counter(
      "attestmesh_indexer_pushes_rejected_total",
      "Indexer envelopes rejected as adversarial, by reason; each tore the subscription down.",
      ["reason"],
    ),
    repro: counter(
      "attestmesh_indexer_repro_checks_total",
      "Sampled repro stubs run against our own RPC, by outcome.",
      ["outcome"],
    ),
    lagging: counter(
      "attestmesh_indexer_lagging_logs_total",
      "Logs seen by polling that no verified push named within the lag threshold, by indexer signing key.",
      ["indexer"],
    ),
    subscribed: gauge(
      "attestmesh_indexer_subscribed",
      "Verified indexer subscriptions up (each indexer counts once).",
    ),
  };
}

export function startIntake(options: IntakeOptions): Intake {
  const { client, logger, signal } = options;
  const metrics = intakeMetrics(options.registry);
  const subscriptions = options.subscriptions ?? 2;
  /** The indexer each subscription slot follows. */
  const links = new Map<number, IndexerLinkStatus>();
  let status: IntakeStatus = { indexerSubscribed: false, lastVerifiedPushBlock: undefined, indexers: [] };
  const publish = () => {
    const indexers = [...links.entries()].sort(([a], [b]) => a - b).map(([, link]) => link);
    let last: bigint | undefined;
    for (const link of indexers) {
      const block = link.lastVerifiedPushBlock;
      if (block !== undefined && (last === undefined || block > last)) last = block;
    }
    const up = indexers.filter((l) => l.subscribed).length;
    status = {
      indexerSubscribed: up > 0,
      // Kept after an indexer is dropped: the newest verified push stays the newest.
      lastVerifiedPushBlock:
        last === undefined ||
        (status.lastVerifiedPushBlock !== undefined && status.lastVerifiedPushBlock > last)
          ? status.lastVerifiedPushBlock
          : last,
      indexers,
    };
    metrics.subscribed.set(up);
    options.onStatus(status);
  };
  const idOf = (record: Pick<IndexerRecord, "signingKey" | "endpoint">) =>
    `${record.signingKey} ${record.endpoint}`;
  /** Updates slot `key`'s status, if it still follows `record`. */
  const setLink = (key: number, record: IndexerRecord, patch: Partial<IndexerLinkStatus>) => {
    const link = links.get(key);
    if (link === undefined || idOf(link) !== idOf(record)) return;
    links.set(key, { ...link, ...patch });
    publish();
  };
  /** Delivery position per signing key, so a resumed session never re-accepts what was accepted. */
  const positions = new Map<string, Position | undefined>();
  const relevantTo = (memberId: bigint) => (topics: readonly string[]) =>
    !(
      topics[0]?.toLowerCase() === MESSAGE_SENT_TOPIC &&
      topics[1] !== undefined &&
      BigInt(topics[1]) !== memberId
    );

  /** One connection of slot `slot`; resolves when it closed. Returns whether any envelope verified. */
  function session(record: IndexerRecord, memberId: bigint, slot: number): Promise<{ verified: boolean }> {
    return new Promise((resolve) => {
      const protocol = createSubscriptionProtocol({
        signingKey: record.signingKey,
        chainId: options.chainId,
        cluster: options.cluster,
        memberId,
        messageSentTopic: MESSAGE_SENT_TOPIC,
        position: positions.get(record.signingKey),
      });
      const log = logger.child({ indexer: record.endpoint, signingKey: record.signingKey, slot });
      const lag = createLagDetector({
        client,
        cluster: options.cluster,
        confirmations: options.confirmations,
        thresholdMs: options.lagThresholdMs,
        relevant: relevantTo(memberId),
      });
      let verified = false;
      let done = false;
      /** The block of this session's last wake-up (undefined after a retraction), and whom it woke. */
      let wokenAt: bigint | undefined;
      let wokenFor = new Set<Concern>();
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
        setLink(slot, record, { subscribed: false });
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
                  const link = links.get(slot);
                  if (late === 0) {
                    if (link?.lagging) setLink(slot, record, { lagging: false });
                    return;
                  }
                  metrics.lagging.inc({ indexer: record.signingKey }, late);
                  setLink(slot, record, { lagging: true, lateLogs: (link?.lateLogs ?? 0) + late });
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
          setLink(slot, record, { subscribed: true });
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
          if (envelope.gap) void options.wake("indexer cursor gap", EVERY_CONCERN);
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
        const previous = links.get(slot)?.lastVerifiedPushBlock;
        if (previous === undefined || block > previous) {
          setLink(slot, record, { lastVerifiedPushBlock: block });
        }
        ws.send(JSON.stringify({ type: "ack", seq: envelope.seq }));
        // One wake-up per block and poller: the pass or tick it asks for starts after this push, so it
        // reads a head at or past this block, and a later log of the same block (a transaction's next
        // event) gives it nothing more to read; a second pass would only load the providers while a
        // join's every node reads (issue 15). A retraction wakes every poller, and whatever follows it
        // wakes what it concerns, whatever its block.
        if (envelope.removed || wokenAt === undefined || block > wokenAt) {
          wokenAt = envelope.removed ? undefined : block;
          wokenFor = new Set();
        }
        if (!envelope.removed) {
          const changed = changedMember(envelope.log.topics);
          if (changed !== undefined) options.onMemberChanged?.(changed, block);
        }
        const concerns = envelope.removed ? EVERY_CONCERN : concernsOf(envelope.log.topics);
        const waking = new Set([...concerns].filter((c) => !wokenFor.has(c)));
        for (const c of waking) wokenFor.add(c);
        if (waking.size > 0) {
          log.trace(
            { block, seq: envelope.seq.toString(), waking: [...waking] },
            "indexer push verified; waking",
          );
          void options.wake("indexer push", waking);
        } else {
          log.trace(
            { block, seq: envelope.seq.toString() },
            "indexer push verified; its block woke us already",
          );
        }
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

  /**
   * Subscription slot `slot`: reads the registry before every connection and follows its `slot`-th
   * indexer (oldest first), so an added indexer is picked up and a removed or moved one dropped at the
   * next reconnect, as a rotation always was. Slots never share an indexer.
   */
  async function slotLoop(slot: number): Promise<void> {
    let attempt = 0;
    while (!signal.aborted) {
      const memberId = options.memberId();
      if (memberId === undefined) {
        await sleep(500, signal);
        continue;
      }
      let records: IndexerRecord[];
      try {
        records = await options.readIndexerRecords();
      } catch (err) {
        logger.warn({ err, slot }, "could not read the indexer registry; retrying");
        await sleep(backoffDelay(attempt++, options.backoff, options.random), signal);
        continue;
      }
      const record = records[slot];
      const current = links.get(slot);
      if (record === undefined) {
        if (current !== undefined) {
          links.delete(slot);
          publish();
        }
        if (slot === 0) logger.debug("no indexer registered; polling only");
        await sleep(options.registryRetryMs, signal);
        continue;
      }
      if (current === undefined || idOf(record) !== idOf(current)) {
        links.set(slot, {
          endpoint: record.endpoint,
          signingKey: record.signingKey,
          subscribed: false,
          lastVerifiedPushBlock: undefined,
          lateLogs: 0,
          lagging: false,
        });
        publish();
      }
      // Aborted while the registry was read: a session opened now would never hear the abort, and
      // `stopped` would wait on its socket for ever.
      if (signal.aborted) break;
      const { verified } = await session(record, memberId, slot);
      if (verified) attempt = 0;
      await sleep(backoffDelay(attempt++, options.backoff, options.random), signal);
    }
  }

  async function loop(): Promise<void> {
    await Promise.all(Array.from({ length: subscriptions }, (_, slot) => slotLoop(slot)));
  }

  const stopped = loop().catch((err: unknown) => {
    logger.error({ err }, "indexer intake stopped unexpectedly; polling continues");
  });
  return { status: () => status, stopped };
}
