// What a verified push is about, so that it wakes only the pollers whose reads it can change: a member's
// registration concerns the membership (the reconcile loop), a sealed message its recipient's message
// poller; anything else, and any event this list does not know, wakes every poller, as every push used to.
// A push names its log's topics, which the indexer signs but the sidecar takes on trust until its own
// reads: a lying indexer can only wake a poller or fail to wake it, and polling runs underneath (at the
// full cadence after any push), so a wrong label costs latency, never a wrong state.
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { MESSAGE_SENT_TOPIC } from "@attestmesh/shared/contracts/events.ts";
import { getAbiItem, toEventSelector } from "viem";

/** A poller a push can wake: the reconcile loop, the CSK tick, the message poller. */
export type Concern = "membership" | "csk" | "messages";

export const EVERY_CONCERN: ReadonlySet<Concern> = new Set<Concern>(["membership", "csk", "messages"]);

const topicOf = (name: "MemberRegistered" | "MemberDeviceStated") =>
  toEventSelector(getAbiItem({ abi: clusterAbi, name })).toLowerCase();

/**
 * Events that change only what the reconcile loop reads. A registration's transaction emits these two
 * (and nothing else of the cluster): the CSK of an epoch does not change when a member joins (only a
 * leave, an eviction or the owner opens one, each with its own event), and the newcomer's key is served
 * on its request once its attestation passed, which the reconcile pass starts.
 */
const MEMBERSHIP_ONLY = new Set([topicOf("MemberRegistered"), topicOf("MemberDeviceStated")]);
const MEMBERSHIP: ReadonlySet<Concern> = new Set<Concern>(["membership"]);
const MESSAGES: ReadonlySet<Concern> = new Set<Concern>(["messages"]);

/** The pollers a log with `topics` concerns; every poller unless its first topic says otherwise. */
export function concernsOf(topics: readonly string[]): ReadonlySet<Concern> {
  const topic = topics[0]?.toLowerCase();
  if (topic === undefined) return EVERY_CONCERN;
  if (MEMBERSHIP_ONLY.has(topic)) return MEMBERSHIP;
  if (topic === MESSAGE_SENT_TOPIC.toLowerCase()) return MESSAGES;
  return EVERY_CONCERN;
}

/** The events that change one member's record, each naming its member id as its first indexed argument. */
const MEMBER_CHANGES: ReadonlySet<string> = new Set(
  (["MemberRegistered", "MemberEvicted", "MemberLeft"] as const).map((name) =>
    toEventSelector(getAbiItem({ abi: clusterAbi, name })).toLowerCase(),
  ),
);

/**
 * The member whose record a log changes (a registration, an eviction, a leave: its first indexed argument,
 * a uint64), or undefined for any other log or a malformed topic. The indexer's word, taken for a hint
 * only (chain/follower.ts `expect`).
 */
export function changedMember(topics: readonly string[]): bigint | undefined {
  if (!MEMBER_CHANGES.has(topics[0]?.toLowerCase() ?? "")) return undefined;
  const id = topics[1];
  if (id === undefined || !/^0x[0-9a-fA-F]{64}$/.test(id)) return undefined;
  const memberId = BigInt(id);
  return memberId < 2n ** 64n ? memberId : undefined;
}

/** The pollers a push can wake, and the cadence they all poll at. */
export interface Pollers {
  /** Runs a reconcile pass now. */
  readonly membership: (reason: string) => Promise<void>;
  /** Runs a CSK tick soon. */
  readonly csk: () => void;
  /** Polls for this member's messages soon. */
  readonly messages: () => void;
  /** Puts every poller at the full cadence for a while. */
  readonly stir: () => void;
}

/**
 * Wakes the pollers `concerns` names, and puts every poller at the full cadence: one that a push did not
 * wake (a push that said the wrong thing, or none) still reads the chain within its full interval.
 */
export function wakeFor(pollers: Pollers): (reason: string, concerns: ReadonlySet<Concern>) => Promise<void> {
  return (reason, concerns) => {
    pollers.stir();
    if (concerns.has("csk")) pollers.csk();
    if (concerns.has("messages")) pollers.messages();
    return concerns.has("membership") ? pollers.membership(reason) : Promise.resolve();
  };
}
