// A minimal subscriber for the indexer tests: a real WebSocket, the challenge signed by a member key,
// every envelope kept, acknowledgements on or off.
import type { Envelope } from "@attestmesh/shared/indexer/envelope.ts";
import { parseFrame, subscribeTypedData } from "@attestmesh/shared/indexer/protocol.ts";
import type { Address, Hex, LocalAccount } from "viem";
import WebSocket from "ws";

export interface TestSubscriber {
  readonly envelopes: Envelope[];
  readonly errors: Array<{ code: string; message: string }>;
  /** Resolves with the close code once the server closed the connection. */
  readonly closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

export async function subscribe(options: {
  readonly url: string;
  readonly chainId: number;
  readonly cluster: Address;
  readonly memberId: bigint;
  readonly account: LocalAccount;
  readonly cursor?: string;
  /** Default true. */
  readonly ack?: boolean;
  /** Signs for this member id instead (a forgery attempt). */
  readonly signAsMemberId?: bigint;
}): Promise<TestSubscriber> {
  const ws = new WebSocket(options.url);
  const envelopes: Envelope[] = [];
  const errors: Array<{ code: string; message: string }> = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  ws.on("error", () => {});
  ws.on("message", (data) => {
    const message = parseFrame(data);
    if (message === undefined) return;
    if (message.type === "challenge") {
      const cursor = options.cursor ?? "";
      void options.account
        .signTypedData(
          subscribeTypedData({
            chainId: options.chainId,
            cluster: options.cluster,
            memberId: options.signAsMemberId ?? options.memberId,
            challenge: message.challenge as Hex,
            signingKey: message.signingKey as Hex,
            cursor,
          }),
        )
        .then((signature) => {
          ws.send(
            JSON.stringify({
              type: "subscribe",
              cluster: options.cluster,
              memberId: options.memberId.toString(),
              ...(options.cursor === undefined ? {} : { cursor }),
              signature,
            }),
          );
        });
    } else if (message.type === "envelope") {
      const envelope = message.envelope as Envelope;
      envelopes.push(envelope);
      if (options.ack !== false && envelope.kind === "log")
        ws.send(JSON.stringify({ type: "ack", seq: envelope.seq }));
    } else if (message.type === "error") {
      errors.push({ code: String(message.code), message: String(message.message) });
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  return { envelopes, errors, closed, close: () => ws.close() };
}
