// eth_getLogs over ranges a provider accepts. Providers cap how many blocks one call may span
// (10,000 is common, some 2,000 or fewer) or how many logs it may return, and refuse with an error
// whose wording varies; a scan here reads at most `blocks` blocks per call and halves that span when
// a provider refuses (down to `minBlocks`, then the refusal is thrown). The span it settled on is kept
// for the scanner's later reads, so a capped provider costs the halving only once.

/** The span one eth_getLogs call reads by default: what most providers accept. */
export const DEFAULT_LOG_BLOCKS = 10_000n;

/** JSON-RPC "limit exceeded" (EIP-1474): a too-wide range at some providers, a rate limit at others. */
const LIMIT_EXCEEDED = -32005;

/**
 * Wordings providers refuse a wide or heavy range with, e.g. "block range too large", "exceed maximum
 * block range: 10000", "query returned more than 10000 results", "Log response size exceeded",
 * "eth_getLogs is limited to a 10,000 range", "block range is too wide". Not a timeout or a rate
 * limit: narrowing would only multiply the calls to a provider that is down or throttling us.
 */
const RANGE_REFUSAL =
  /range|too (?:large|wide|big|many)|more than \d+ (?:results|logs)|exceed|response size/i;
const NOT_RANGE = /rate.?limit|too many requests|\b429\b|timed? ?out|took too long/i;

const refuses = (text: unknown): boolean =>
  typeof text === "string" && RANGE_REFUSAL.test(text) && !NOT_RANGE.test(text);

/** Whether `error` (or an error it wraps) reads like a provider refusing the range's width or weight. */
export function isLogRangeRefusal(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (typeof e !== "object") return refuses(e);
    const { code, message, details, cause } = e as {
      code?: unknown;
      message?: unknown;
      details?: unknown;
      cause?: unknown;
    };
    if (code === LIMIT_EXCEEDED && !NOT_RANGE.test(`${details ?? ""} ${message ?? ""}`)) return true;
    if (refuses(details)) return true;
    // viem's own messages name the request's arguments; only the innermost message is the provider's.
    if (cause === undefined && refuses(message)) return true;
    e = cause;
  }
  return false;
}

/** Reads the logs of blocks `from`..`to` (inclusive) in one call. */
export type LogRangeRead<T> = (from: bigint, to: bigint) => Promise<readonly T[]>;

export interface LogScanner {
  /** The span the next call will read. */
  readonly blocks: bigint;
  /** Every log of `from`..`to`, in chunks, first block first. */
  forward<T>(from: bigint, to: bigint, read: LogRangeRead<T>): Promise<T[]>;
  /**
   * The logs of the highest chunk of `from`..`to` that has any, reading down from `to`; at most
   * `maxCalls` successful reads (then `undefined`: not found yet). `[]` when none down to `from`.
   */
  backward<T>(from: bigint, to: bigint, read: LogRangeRead<T>, maxCalls?: number): Promise<T[] | undefined>;
}

export function createLogScanner(
  options: {
    /** The widest span one call reads; default DEFAULT_LOG_BLOCKS. */
    readonly maxBlocks?: bigint;
    /** The narrowest span before a refusal is thrown; default 1. */
    readonly minBlocks?: bigint;
    /** Which errors mean "narrow the range"; default isLogRangeRefusal. */
    readonly shrinkOn?: (error: unknown) => boolean;
    /** Told every time the span halves. */
    readonly onShrink?: (blocks: bigint, error: unknown) => void;
  } = {},
): LogScanner {
  let blocks = options.maxBlocks ?? DEFAULT_LOG_BLOCKS;
  const minBlocks = options.minBlocks ?? 1n;
  const shrinkOn = options.shrinkOn ?? isLogRangeRefusal;
  if (blocks < 1n || minBlocks < 1n) throw new RangeError("a log scan reads at least one block per call");

  /** One chunk, narrowed until the provider accepts it; `low` or `high` end is kept fixed. */
  async function chunk<T>(
    from: bigint,
    to: bigint,
    read: LogRangeRead<T>,
    keepHigh: boolean,
  ): Promise<{ logs: readonly T[]; low: bigint; high: bigint }> {
    for (;;) {
      const low = keepHigh ? (to - blocks + 1n > from ? to - blocks + 1n : from) : from;
      const high = keepHigh ? to : from + blocks - 1n < to ? from + blocks - 1n : to;
      try {
        return { logs: await read(low, high), low, high };
      } catch (error) {
        if (high - low + 1n <= minBlocks || !shrinkOn(error)) throw error;
        blocks = (high - low + 1n) / 2n > minBlocks ? (high - low + 1n) / 2n : minBlocks;
        options.onShrink?.(blocks, error);
      }
    }
  }

  return {
    get blocks() {
      return blocks;
    },
    async forward(from, to, read) {
      const logs = [];
      for (let start = from; start <= to; ) {
        const got = await chunk(start, to, read, false);
        logs.push(...got.logs);
        start = got.high + 1n;
      }
      return logs;
    },
    async backward(from, to, read, maxCalls = Number.POSITIVE_INFINITY) {
      let calls = 0;
      for (let end = to; end >= from; ) {
        if (calls >= maxCalls) return undefined;
        const got = await chunk(from, end, read, true);
        calls += 1;
        if (got.logs.length > 0) return [...got.logs];
        end = got.low - 1n;
      }
      return [];
    },
  };
}
