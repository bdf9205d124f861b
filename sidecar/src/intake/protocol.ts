// The subscriber's side of the indexer protocol as a state machine over frames, with no socket and no
// I/O: the first frame must be the server's challenge naming the registered key (answered by a signed
// subscribe), then every frame must be an envelope that the verifier accepts, the hello first. Each frame
// gives one step for intake.ts to carry out; a rejected frame changes nothing.
import type { Envelope, HelloEnvelope, SignedLogEnvelope } from "@attestmesh/shared/indexer/envelope.ts";
import { fromHex } from "@attestmesh/shared/indexer/envelope.ts";
import {
  formatCursor,
  parseFrame,
  type SubscribeMessage,
  subscribeTypedData,
} from "@attestmesh/shared/indexer/protocol.ts";
import type { Address, Hex } from "viem";
import { createEnvelopeVerifier, type EnvelopeVerifier, type Position } from "./verifier.ts";

export type ProtocolStep =
  /** Tear the subscription down: the indexer sent what the protocol or verification does not allow. */
  | { readonly kind: "reject"; readonly reason: string; readonly details: Record<string, unknown> }
  /** Sign `typedData` with the member key and send `message(signature)`. */
  | {
      readonly kind: "subscribe";
      readonly typedData: ReturnType<typeof subscribeTypedData>;
      readonly message: (signature: Hex) => SubscribeMessage;
    }
  /** The indexer refused the subscription (it closes the connection itself). */
  | { readonly kind: "refused"; readonly code: unknown; readonly message: unknown }
  /** A verified hello: the subscription is up; accept it. */
  | { readonly kind: "hello"; readonly envelope: HelloEnvelope & { readonly sig: string } }
  /** A verified log: accept it (after any repro sample) and wake the reconcile loop. */
  | { readonly kind: "log"; readonly envelope: SignedLogEnvelope };

export interface SubscriptionProtocol {
  /** The step for the next frame from the indexer. */
  receive(frame: unknown): ProtocolStep;
  /** Records a verified envelope as accepted; returns where delivery now stands. */
  accept(envelope: Envelope): Position | undefined;
}

export function createSubscriptionProtocol(options: {
  /** The registry's signing key for the indexer, 0x-hex. */
  readonly signingKey: Hex;
  readonly chainId: number;
  readonly cluster: Address;
  readonly memberId: bigint;
  readonly messageSentTopic: string;
  /** Where an earlier session with the same key left off. */
  readonly position: Position | undefined;
}): SubscriptionProtocol {
  const cluster = options.cluster.toLowerCase();
  let verifier: EnvelopeVerifier | undefined;
  const reject = (reason: string, details: Record<string, unknown> = {}): ProtocolStep => ({
    kind: "reject",
    reason,
    details,
  });

  function challenged(message: Record<string, unknown>): ProtocolStep {
    if (message.type !== "challenge" || typeof message.challenge !== "string") return reject("NoChallenge");
    if (!/^0x[0-9a-f]{64}$/.test(message.challenge)) return reject("BadChallenge");
    if (message.signingKey !== options.signingKey)
      return reject("NotTheRegisteredKey", { offered: String(message.signingKey) });
    const { position } = options;
    const cursor = position === undefined ? "" : formatCursor(position.epoch, position.seq.toString());
    verifier = createEnvelopeVerifier({
      signingKey: fromHex(options.signingKey),
      chainId: options.chainId,
      cluster,
      memberId: options.memberId,
      challenge: message.challenge,
      messageSentTopic: options.messageSentTopic,
      position,
    });
    return {
      kind: "subscribe",
      typedData: subscribeTypedData({
        chainId: options.chainId,
        cluster: options.cluster,
        memberId: options.memberId,
        challenge: message.challenge as Hex,
        signingKey: options.signingKey,
        cursor,
      }),
      message: (signature) => ({
        type: "subscribe",
        cluster,
        memberId: options.memberId.toString(),
        ...(cursor === "" ? {} : { cursor }),
        signature,
      }),
    };
  }

  return {
    receive(frame) {
      const message = parseFrame(frame);
      if (message === undefined) return reject("NotJson");
      if (verifier === undefined) return challenged(message);
      if (message.type === "error") return { kind: "refused", code: message.code, message: message.message };
      if (message.type !== "envelope") return reject("UnexpectedMessage", { type: String(message.type) });
      const verdict = verifier.check(message.envelope);
      if (!verdict.ok)
        return reject(verdict.reason, { seq: String((message.envelope as { seq?: unknown })?.seq) });
      const envelope = verdict.envelope;
      return envelope.kind === "hello" ? { kind: "hello", envelope } : { kind: "log", envelope };
    },
    accept(envelope) {
      if (verifier === undefined) return options.position;
      verifier.commit(envelope);
      return verifier.position();
    },
  };
}
