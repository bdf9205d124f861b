// Application traffic for the soak: on every node, an application that reads its sidecar's message
// stream (`GET /v1/messages/stream`, which replays from the last acknowledged message) and acknowledges
// each message after it has recorded it (`POST /v1/messages/ack`), as a real application would; and a
// sender that has members send sealed messages to each other through `POST /v1/messages`.
// Exactly once, by envelope id: a message acknowledged and then delivered again is a duplicate; one
// delivered again before its acknowledgement went through is an at-least-once redelivery (allowed); one
// accepted by the sender's API and never delivered to a recipient that is still a member is lost.
import { request } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { DevnetNode } from "../orchestration/state.ts";
import type { Rng } from "../rng.ts";

interface Sent {
  readonly from: string;
  readonly to: string;
  readonly atMs: number;
}

interface Delivered {
  deliveries: number;
  acked: boolean;
  readonly firstAtMs: number;
}

export interface MessageStats {
  readonly sent: number;
  readonly sendFailures: number;
  readonly delivered: number;
  readonly redelivered: number;
  readonly duplicated: number;
  /** Accepted, recipient still a member, not delivered. */
  readonly lost: readonly string[];
  /** Accepted, but the recipient left the cluster before delivery (not counted as lost). */
  readonly toDeparted: number;
  /** Delivery latency from the send's acceptance, ms. */
  readonly latencyMs: { readonly median: number; readonly max: number };
}

const apiSocket = (node: DevnetNode) => join(node.logDir, "api.sock");

function postJson(socketPath: string, path: string, value: unknown, timeoutMs: number) {
  return new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
    const body = JSON.stringify(value);
    const req = request(
      { socketPath, method: "POST", path, headers: { "content-type": "application/json" } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          try {
            resolve({
              status: res.statusCode ?? 0,
              body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>,
            });
          } catch (error) {
            reject(error);
          }
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`POST ${path} timed out`)));
    req.end(body);
  });
}

/** Reads one stream connection until it ends, handing each line to `onLine` in order. */
function readStream(
  socketPath: string,
  onLine: (line: Record<string, unknown>) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  return new Promise((resolve) => {
    let chain = Promise.resolve();
    const req = request({ socketPath, method: "GET", path: "/v1/messages/stream", signal }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        resolve();
        return;
      }
      let partial = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        partial += chunk;
        for (let nl = partial.indexOf("\n"); nl >= 0; nl = partial.indexOf("\n")) {
          const text = partial.slice(0, nl);
          partial = partial.slice(nl + 1);
          if (text.trim() === "") continue;
          const line = JSON.parse(text) as Record<string, unknown>;
          chain = chain.then(() => onLine(line)).catch(() => {});
        }
      });
      res.on("close", () => void chain.then(resolve));
    });
    req.on("error", () => resolve());
    req.end();
  });
}

export function createMessaging(options: {
  readonly nodes: () => readonly DevnetNode[];
  /** Nodes that may send and receive now: active members reporting healthy, not leaving. */
  readonly ready: () => readonly { node: DevnetNode; memberId: bigint }[];
  /** Whether the node with this name is still an active member (for the loss check). */
  readonly isMember: (name: string) => boolean;
  readonly rng: Rng;
  readonly onDuplicate: (envelopeId: string, node: string) => void;
}) {
  const sent = new Map<string, Sent>();
  const delivered = new Map<string, Delivered>();
  const latencies: number[] = [];
  let sendFailures = 0;
  let redelivered = 0;
  let duplicated = 0;
  let counter = 0;
  const controller = new AbortController();
  const apps = new Map<string, Promise<void>>();

  async function onMessage(node: DevnetNode, space: string | undefined, line: Record<string, unknown>) {
    const envelopeId = String(line.envelopeId);
    if (typeof line.text !== "string" || !line.text.startsWith("soak ")) return;
    const seen = delivered.get(envelopeId);
    if (seen?.acked) {
      duplicated += 1;
      options.onDuplicate(envelopeId, node.name);
    } else if (seen) {
      seen.deliveries += 1;
      redelivered += 1;
    } else {
      delivered.set(envelopeId, { deliveries: 1, acked: false, firstAtMs: Date.now() });
      const s = sent.get(envelopeId);
      if (s) latencies.push(Date.now() - s.atMs);
    }
    try {
      const ack = await postJson(
        apiSocket(node),
        "/v1/messages/ack",
        { seq: line.seq, ...(space === undefined ? {} : { space }) },
        10_000,
      );
      if (ack.status === 200) delivered.get(envelopeId)!.acked = true;
    } catch {
      // The sidecar went away between delivery and acknowledgement: it delivers the message again.
    }
  }

  async function runApp(node: DevnetNode) {
    while (!controller.signal.aborted && options.nodes().some((n) => n.name === node.name)) {
      let space: string | undefined;
      await readStream(
        apiSocket(node),
        async (line) => {
          if (line.type === "hello") space = typeof line.space === "string" ? line.space : undefined;
          else if (line.type === "message") await onMessage(node, space, line);
        },
        controller.signal,
      );
      await sleep(500);
    }
  }

  async function sendOne() {
    const ready = options.ready();
    if (ready.length < 2) return;
    const from = options.rng.pick(ready);
    const to = options.rng.pick(ready.filter((r) => r !== from));
    const text = `soak ${++counter} ${from.node.name}->${to.node.name}`;
    try {
      const res = await postJson(
        apiSocket(from.node),
        "/v1/messages",
        { to: to.memberId.toString(), text },
        60_000,
      );
      if (res.status === 200 && typeof res.body.envelopeId === "string") {
        sent.set(res.body.envelopeId, { from: from.node.name, to: to.node.name, atMs: Date.now() });
      } else sendFailures += 1;
    } catch {
      sendFailures += 1;
    }
  }

  return {
    /** Starts an application on every node that has none (call again after a node joins). */
    attach() {
      for (const node of options.nodes()) {
        if (!apps.has(node.name))
          apps.set(
            node.name,
            runApp(node).finally(() => apps.delete(node.name)),
          );
      }
    },
    /** Sends one message every `intervalMs` (at most `inFlight` at once) until `signal` aborts. */
    async sendLoop(intervalMs: number, inFlight: number, signal: AbortSignal) {
      const pending = new Set<Promise<void>>();
      while (!signal.aborted) {
        if (pending.size < inFlight) {
          const p = sendOne().finally(() => pending.delete(p));
          pending.add(p);
        }
        await sleep(intervalMs);
      }
      await Promise.all(pending);
    },
    /** Undelivered messages whose recipient is still a member. */
    outstanding(): string[] {
      return [...sent.entries()]
        .filter(([id, s]) => !delivered.has(id) && options.isMember(s.to))
        .map(([id, s]) => `${id} ${s.from}->${s.to}`);
    },
    stop() {
      controller.abort();
    },
    stats(): MessageStats {
      const sorted = [...latencies].sort((a, b) => a - b);
      const undelivered = [...sent.entries()].filter(([id]) => !delivered.has(id));
      return {
        sent: sent.size,
        sendFailures,
        delivered: [...sent.keys()].filter((id) => delivered.has(id)).length,
        redelivered,
        duplicated,
        lost: undelivered
          .filter(([, s]) => options.isMember(s.to))
          .map(([id, s]) => `${id} ${s.from}->${s.to}`),
        toDeparted: undelivered.filter(([, s]) => !options.isMember(s.to)).length,
        latencyMs: {
          median: sorted[Math.floor(sorted.length / 2)] ?? 0,
          max: sorted.at(-1) ?? 0,
        },
      };
    },
  };
}
