// New heads as wake-ups: an `eth_subscribe("newHeads")` over the chain's WebSocket JSON-RPC, and
// `onHead()` for every notification of that subscription. A head is never read: the follow step it
// wakes reads the head, the logs and their hashes through the HTTP client as a poll would, so a lying
// or flooding socket can cause extra follow steps (the caller coalesces them), never a wrong push.
// The socket is redialled with backoff whenever it fails, closes, refuses the subscription or stops
// answering pings; each outage is logged at warn once and counted, and polling covers it.
//
// Hand-written on `ws` rather than viem's webSocket transport: viem's socket client gives up after a
// fixed number of redials, keeps a dead client in a process-wide cache, and reports redial failures on
// console.error, past the log redaction the URL's credential needs.
import { type BackoffOptions, backoffDelay } from "@attestmesh/shared/service/backoff.ts";
import { redactUrl } from "@attestmesh/shared/service/log.ts";
import WebSocket from "ws";
import type { Logger } from "./log.ts";
import type { IndexerMetrics } from "./metrics.ts";

export interface HeadWatcher {
  /** True while the subscription is confirmed and its socket open. */
  subscribed(): boolean;
  stop(): Promise<void>;
}

export interface HeadWatcherOptions {
  /** ws:// or wss:// JSON-RPC endpoint; may carry a provider credential, so never logged whole. */
  readonly url: string;
  readonly onHead: () => void;
  /** Called each time the subscription comes up (true) or goes down (false); never after stop(). */
  readonly onSubscription?: (up: boolean) => void;
  readonly logger: Logger;
  readonly metrics: Pick<IndexerMetrics, "heads" | "headOutages" | "headSubscribed">;
  readonly backoff?: BackoffOptions;
  /** Ping period; a socket that has not answered the previous ping by the next is dropped. */
  readonly keepAliveMs?: number;
  /** How long the dial and the subscribe answer may take. */
  readonly timeoutMs?: number;
}

const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, jitter: 0.2 };
/** A newHeads notification is a block header, a few KiB; nothing honest comes near this. */
const MAX_MESSAGE_BYTES = 1024 * 1024;
const SUBSCRIBE_ID = 1;

export function watchHeads(options: HeadWatcherOptions): HeadWatcher {
  const { url, onHead, logger, metrics } = options;
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const endpoint = redactUrl(url);
  let socket: WebSocket | undefined;
  let subscription: string | undefined;
  let attempt = 0;
  /** When the current outage began (undefined while subscribed or before the first failure). */
  let downSince: number | undefined;
  let redial: NodeJS.Timeout | undefined;
  let stopped = false;
  let closed: Promise<void> = Promise.resolve();

  function setSubscribed(id: string | undefined): void {
    const changed = (subscription === undefined) !== (id === undefined);
    subscription = id;
    metrics.headSubscribed.set(id === undefined ? 0 : 1);
    if (changed && !stopped) options.onSubscription?.(id !== undefined);
  }

  function failed(reason: string, err?: unknown): void {
    if (stopped) return;
    setSubscribed(undefined);
    if (downSince === undefined) {
      downSince = Date.now();
      metrics.headOutages.inc();
      logger.warn(
        { endpoint, reason, ...(err === undefined ? {} : { err }) },
        "new-heads subscription down; following by polling alone until it is back",
      );
    }
    const retryInMs = backoffDelay(attempt, backoff);
    attempt += 1;
    clearTimeout(redial);
    redial = setTimeout(dial, retryInMs);
  }

  function dial(): void {
    if (stopped) return;
    const ws = new WebSocket(url, { handshakeTimeout: timeoutMs, maxPayload: MAX_MESSAGE_BYTES });
    socket = ws;
    let reported = false;
    const fail = (reason: string, err?: unknown) => {
      if (reported) return;
      reported = true;
      ws.terminate();
      failed(reason, err);
    };
    let answered = true;
    let keepAlive: NodeJS.Timeout | undefined;
    const subscribeTimer = setTimeout(() => fail("no answer to eth_subscribe in time"), timeoutMs);
    closed = new Promise((resolve) => {
      ws.once("close", () => {
        clearTimeout(subscribeTimer);
        clearInterval(keepAlive);
        resolve();
        fail("the socket closed");
      });
    });
    ws.on("error", (err) => fail("the socket failed", err));
    ws.on("pong", () => {
      answered = true;
    });
    ws.once("open", () => {
      ws.send(
        JSON.stringify({ jsonrpc: "2.0", id: SUBSCRIBE_ID, method: "eth_subscribe", params: ["newHeads"] }),
      );
      keepAlive = setInterval(() => {
        if (!answered) return fail("no pong in time");
        answered = false;
        ws.ping();
      }, keepAliveMs);
    });
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      let message: { id?: unknown; result?: unknown; error?: unknown; method?: unknown; params?: unknown };
      try {
        message = JSON.parse(data.toString());
      } catch {
        return;
      }
      if (message === null || typeof message !== "object") return;
      if (message.id === SUBSCRIBE_ID && subscription === undefined) {
        clearTimeout(subscribeTimer);
        if (typeof message.result !== "string") return fail("eth_subscribe refused");
        setSubscribed(message.result);
        attempt = 0;
        if (downSince !== undefined) {
          logger.info({ endpoint, downMs: Date.now() - downSince }, "new-heads subscription back");
        } else logger.info({ endpoint }, "new-heads subscription up");
        downSince = undefined;
        return;
      }
      const params = message.params as { subscription?: unknown } | null | undefined;
      if (
        message.method === "eth_subscription" &&
        subscription !== undefined &&
        typeof params === "object" &&
        params !== null &&
        params.subscription === subscription
      ) {
        metrics.heads.inc();
        onHead();
      }
    });
  }

  metrics.headSubscribed.set(0);
  dial();

  return {
    subscribed: () => subscription !== undefined,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearTimeout(redial);
      setSubscribed(undefined);
      socket?.terminate();
      await closed;
    },
  };
}
