// Checks every envelope of one subscription before it may do anything: the shape, the Ed25519
// signature against the registry's key, the chain and cluster, the session binding of the hello (this
// connection's challenge, this member, a quote that binds the key), and, for logs, the epoch, a
// sequence number above every one accepted before (so nothing replays), that the log is the cluster's,
// that a MessageSent log is addressed to this member, and that the repro stub is exactly the log's.
// Pure: no I/O, and a rejected envelope changes nothing.
import {
  type Envelope,
  parseEnvelope,
  reproFor,
  type SignedLogEnvelope,
  verifyEnvelopeSignature,
} from "@attestmesh/shared/indexer/envelope.ts";
import { quoteBindsKey } from "@attestmesh/shared/indexer/protocol.ts";
import { isAttestmeshError } from "../errors.ts";

export type Verdict =
  | { readonly ok: true; readonly envelope: Envelope }
  | { readonly ok: false; readonly reason: string };

/** Where delivery stands: the epoch and the highest seq accepted in it. Kept across sessions. */
export interface Position {
  readonly epoch: string;
  readonly seq: bigint;
}

export interface EnvelopeVerifier {
  check(raw: unknown): Verdict;
  /** Records an envelope that passed every check (including any repro sample) as accepted. */
  commit(envelope: Envelope): void;
  position(): Position | undefined;
}

export function createEnvelopeVerifier(options: {
  readonly signingKey: Uint8Array;
  readonly chainId: number;
  /** lowercase */
  readonly cluster: string;
  readonly memberId: bigint;
  /** This connection's challenge, lowercase 0x-hex. */
  readonly challenge: string;
  readonly messageSentTopic: string;
  /** Carried over from earlier sessions with the same key. */
  readonly position: Position | undefined;
}): EnvelopeVerifier {
  let position = options.position;
  let helloSeen = false;

  function check(raw: unknown): Verdict {
    let envelope: Envelope;
    try {
      envelope = parseEnvelope(raw);
    } catch (error) {
      if (isAttestmeshError(error)) return { ok: false, reason: "Malformed" };
      throw error;
    }
    if (!verifyEnvelopeSignature(envelope, options.signingKey)) return { ok: false, reason: "BadSignature" };
    if (envelope.chainId !== options.chainId) return { ok: false, reason: "WrongChain" };
    if (envelope.cluster !== options.cluster) return { ok: false, reason: "WrongCluster" };
    if (!helloSeen) {
      if (envelope.kind !== "hello") return { ok: false, reason: "NoHello" };
      if (envelope.session !== options.challenge) return { ok: false, reason: "HelloForAnotherSession" };
      if (envelope.memberId !== options.memberId.toString())
        return { ok: false, reason: "HelloForAnotherMember" };
      if (!quoteBindsKey(envelope.quote, options.signingKey))
        return { ok: false, reason: "QuoteDoesNotBindKey" };
      return { ok: true, envelope };
    }
    if (envelope.kind !== "log") return { ok: false, reason: "SecondHello" };
    const seq = BigInt(envelope.seq);
    if (position !== undefined && envelope.epoch === position.epoch && seq <= position.seq) {
      return { ok: false, reason: "Replayed" };
    }
    if (position !== undefined && envelope.epoch !== position.epoch)
      return { ok: false, reason: "EpochChanged" };
    return checkLog(envelope);
  }

  function checkLog(envelope: SignedLogEnvelope): Verdict {
    if (envelope.log.address !== options.cluster) return { ok: false, reason: "NotTheClustersLog" };
    const topics = envelope.log.topics;
    if (
      topics[0] === options.messageSentTopic &&
      topics[1] !== undefined &&
      BigInt(topics[1]) !== options.memberId
    ) {
      return { ok: false, reason: "AnotherMembersMessage" };
    }
    const expected = reproFor(envelope.log, BigInt(envelope.blockNumber));
    if (JSON.stringify(expected) !== JSON.stringify(envelope.repro))
      return { ok: false, reason: "ReproNotTheLogs" };
    return { ok: true, envelope };
  }

  return {
    check,
    commit(envelope) {
      if (envelope.kind === "hello") {
        helloSeen = true;
        // The hello says where this session continues; it never moves an earlier position back.
        const seq = BigInt(envelope.seq);
        if (position === undefined || position.epoch !== envelope.epoch || seq > position.seq) {
          position = { epoch: envelope.epoch, seq };
        }
      } else {
        position = { epoch: envelope.epoch, seq: BigInt(envelope.seq) };
      }
    },
    position: () => position,
  };
}
