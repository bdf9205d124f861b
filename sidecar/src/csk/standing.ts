// Whether a member may hold a CSK epoch, read at the chain head rather than at the follower's confirmed
// height (head − confirmations). The review's race (issue 12 C): an eviction is visible at the head a few
// blocks before the confirmed view shows it, and the new epoch is committed within a second of it, so a
// server that asked only its follower sealed the new key to the member just evicted.
//
// A member may have epoch e when, at one block B at the head, it is active and the current epoch at B is
// at least e. Why that suffices: a member's departure (leaving or eviction) is final for its id and
// opens the next epoch in the same transaction, so a member active at a block whose epoch is ≥ e did
// not open any epoch ≤ e by departing. Both answers are final for one (epoch, member) and are cached:
// "active" stays true for e (a later departure opens e+1 or beyond), "departed" stays true forever. A
// head whose current epoch is below e (the requester read a newer head than this server) is not cached:
// the request is refused and the next one reads again.
//
// The reads go through `HeadReads`, the chain-read interface the sidecar uses today (viem at the head);
// the quorum reader (issue 12 B) replaces it without touching this module.
import type { Member } from "../model/member.ts";

export interface HeadReads<Block = unknown> {
  /** The head block (one the chain-read interface agrees on). */
  head(): Promise<Block>;
  /** The member record at `block`, undefined for an empty slot. */
  member(memberId: bigint, block: Block): Promise<Member | undefined>;
  /** The current CSK epoch at `block`. */
  epoch(block: Block): Promise<bigint>;
}

/** active: may have the epoch; departed: left or evicted at the head; behind: the head has not opened it. */
export type Standing = "active" | "departed" | "behind";

export interface StandingCheck {
  /** The member's standing for `epoch` at the head; throws when the chain does not answer. */
  of(memberId: bigint, epoch: bigint): Promise<Standing>;
}

/** Cached answers kept, oldest epochs forgotten first. */
export const STANDING_CACHE_ENTRIES = 4096;

export function createStandingCheck<Block>(
  reads: HeadReads<Block>,
  maxEntries = STANDING_CACHE_ENTRIES,
): StandingCheck {
  const cache = new Map<string, Standing>();
  /** Requests for the same (epoch, member) arriving together share one read. */
  const inflight = new Map<string, Promise<Standing>>();

  async function read(memberId: bigint, epoch: bigint): Promise<Standing> {
    const block = await reads.head();
    const [record, current] = await Promise.all([reads.member(memberId, block), reads.epoch(block)]);
    if (record === undefined || record.status !== "active") return "departed";
    return current >= epoch ? "active" : "behind";
  }

  return {
    of(memberId, epoch) {
      const key = `${epoch}:${memberId}`;
      const cached = cache.get(key);
      if (cached !== undefined) return Promise.resolve(cached);
      const running = inflight.get(key);
      if (running !== undefined) return running;
      const promise = read(memberId, epoch)
        .then((standing) => {
          if (standing !== "behind") {
            cache.set(key, standing);
            for (const k of cache.keys()) {
              if (cache.size <= maxEntries) break;
              cache.delete(k);
            }
          }
          return standing;
        })
        .finally(() => inflight.delete(key));
      inflight.set(key, promise);
      return promise;
    },
  };
}
