// Per-source token buckets for the mesh port: each source address gets `burst` tokens, refilled at
// `perSecond`; a datagram that finds its bucket empty is dropped before it is parsed. The table of
// sources is bounded (the oldest source is forgotten first), so a flood of addresses costs memory once.
// Behind the nftables rule only WireGuard peers reach the port, each from its own mesh IP, so one
// source is one member.

export interface RateLimitOptions {
  readonly perSecond: number;
  readonly burst: number;
  /** Most sources tracked at once; default 4,096. */
  readonly maxSources?: number;
  readonly now?: () => number;
}

export interface RateLimiter {
  /** Takes one token from `source`'s bucket; false when it is empty (drop the datagram). */
  take(source: string): boolean;
}

export function createRateLimiter(options: RateLimitOptions): RateLimiter {
  const { perSecond, burst } = options;
  if (!(perSecond > 0) || !(burst >= 1)) throw new Error("a rate limit needs perSecond > 0 and burst >= 1");
  const maxSources = options.maxSources ?? 4096;
  const now = options.now ?? (() => performance.now());
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    take(source) {
      const t = now();
      let bucket = buckets.get(source);
      if (bucket === undefined) {
        if (buckets.size >= maxSources) {
          const oldest = buckets.keys().next().value;
          if (oldest !== undefined) buckets.delete(oldest);
        }
        bucket = { tokens: burst, at: t };
        buckets.set(source, bucket);
      } else {
        bucket.tokens = Math.min(burst, bucket.tokens + ((t - bucket.at) / 1000) * perSecond);
        bucket.at = t;
      }
      if (bucket.tokens < 1) return false;
      bucket.tokens -= 1;
      return true;
    },
  };
}

/**
 * Logs one line per reason at most every `everyMs`, with how many were suppressed since the last, so
 * a flood of bad datagrams cannot flood the log.
 */
export function createLogThrottle(everyMs: number, now: () => number = () => performance.now()) {
  const last = new Map<string, { at: number; suppressed: number }>();
  return {
    /** Calls `log(suppressed)` if this reason may log now; otherwise counts it. */
    maybe(reason: string, log: (suppressed: number) => void): void {
      const t = now();
      const entry = last.get(reason);
      if (entry !== undefined && t - entry.at < everyMs) {
        entry.suppressed += 1;
        return;
      }
      last.set(reason, { at: t, suppressed: 0 });
      log(entry?.suppressed ?? 0);
    },
  };
}
