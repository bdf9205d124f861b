// The envelopes delivered most recently, so a log seen twice (an overlapping re-read after a crash, a
// shallow reorg) is delivered once. Bounded: the oldest ids are forgotten first. The ids are public
// (they are event topics), so the set is persisted with the log cursor.

export interface RecentEnvelopes {
  /** True when `key` was not seen yet; it is remembered from now on. */
  add(key: string): boolean;
  has(key: string): boolean;
  /** Oldest first, as `restore` expects. */
  toArray(): string[];
  readonly size: number;
}

/**
 * The dedup key of an envelope: the chain delivers each (sender, recipient, envelope id) once, so two
 * senders may use the same id for one recipient and both messages count.
 */
export function envelopeKey(senderId: bigint, recipientId: bigint, envelopeId: string): string {
  return `${senderId}:${recipientId}:${envelopeId.toLowerCase()}`;
}

export function createRecentEnvelopes(capacity: number, restore: readonly string[] = []): RecentEnvelopes {
  if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`capacity ${capacity} < 1`);
  // A Set iterates in insertion order: the first entry is always the oldest.
  const seen = new Set<string>();
  const add = (key: string): boolean => {
    if (seen.has(key)) return false;
    seen.add(key);
    while (seen.size > capacity) {
      const oldest = seen.values().next().value;
      if (oldest === undefined) break;
      seen.delete(oldest);
    }
    return true;
  };
  for (const key of restore) add(key);
  return {
    add,
    has: (key) => seen.has(key),
    toArray: () => [...seen],
    get size() {
      return seen.size;
    },
  };
}
