// One cluster's envelope stream: numbers each follower event (seq, within this run's epoch), signs it
// once, keeps the last `history` envelopes for resuming subscribers, and tells the sessions to pull.
// Sessions read from this shared history at their own pace, so a subscriber costs a cursor, not a copy.
import { type Envelope, signEnvelope, unsignedLogEnvelope } from "@attestmesh/shared/indexer/envelope.ts";
import type { Address, Hex } from "viem";
import type { FollowerEvent } from "./follower.ts";

export interface StoredEnvelope {
  readonly envelope: Envelope;
  /** The JSON frame sent to subscribers, serialised once. */
  readonly frame: string;
  readonly seq: bigint;
  /** The recipient of a MessageSent log: only that member receives it. */
  readonly recipient: bigint | undefined;
}

export interface ClusterStream {
  readonly cluster: Address;
  readonly epoch: Hex;
  /** The newest seq issued (0 before any). */
  lastSeq(): bigint;
  /** The oldest seq still kept. */
  firstSeq(): bigint;
  get(seq: bigint): StoredEnvelope | undefined;
  publish(events: readonly FollowerEvent[]): number;
  /** The confirmed head the follower last reached. */
  head(): { number: bigint; hash: Hex } | undefined;
  setHead(number: bigint, hash: Hex): void;
  /** Called after every publish; returns an unsubscribe function. */
  onPublish(listener: () => void): () => void;
}

export function createClusterStream(options: {
  readonly cluster: Address;
  readonly chainId: number;
  readonly epoch: Hex;
  readonly secretKey: Uint8Array;
  readonly history: number;
  /** topic0 of MessageSent, whose topic1 is the recipient member id. */
  readonly messageSentTopic: Hex;
}): ClusterStream {
  const cluster = options.cluster.toLowerCase() as Address;
  let seq = 0n;
  const kept: StoredEnvelope[] = [];
  let head: { number: bigint; hash: Hex } | undefined;
  const listeners = new Set<() => void>();

  function recipientOf(topics: readonly Hex[]): bigint | undefined {
    if (topics[0]?.toLowerCase() !== options.messageSentTopic.toLowerCase() || topics[1] === undefined) {
      return undefined;
    }
    return BigInt(topics[1]);
  }

  return {
    cluster: options.cluster,
    epoch: options.epoch,
    lastSeq: () => seq,
    firstSeq: () => kept[0]?.seq ?? seq + 1n,
    get(at) {
      const first = kept[0];
      if (first === undefined || at < first.seq) return undefined;
      return kept[Number(at - first.seq)];
    },
    publish(events) {
      for (const { log, removed } of events) {
        seq += 1n;
        const unsigned = unsignedLogEnvelope(
          { chainId: options.chainId, cluster, epoch: options.epoch, seq },
          log,
          removed,
        );
        const envelope = signEnvelope(unsigned, options.secretKey);
        kept.push({
          envelope,
          frame: JSON.stringify({ type: "envelope", envelope }),
          seq,
          recipient: recipientOf(log.topics),
        });
      }
      if (kept.length > options.history) kept.splice(0, kept.length - options.history);
      if (events.length > 0) for (const listener of listeners) listener();
      return events.length;
    },
    head: () => head,
    setHead(number, hash) {
      head = { number, hash };
    },
    onPublish(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
