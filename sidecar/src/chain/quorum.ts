// Agreement across RPC providers: a value counts only when at least `quorum` providers returned it,
// byte for byte. The first `quorum` providers in preference order are asked; a failure (down, timeout,
// rate-limited, "block not found") moves on to the next one; a disagreement is reported and every
// provider is then asked, and a value still needs `quorum` matching answers. Nothing else is ever
// returned: with fewer than `quorum` matching answers the read fails, retryable, and the caller
// retries it later. Since the quorum is a strict majority (or more), two different values can never
// both reach it.
//
// A provider that failed is asked last for a while (`cooldownMs`), so a provider that is down costs
// one failed request, not one per read.

/** What one provider answered, keyed for comparison. */
export interface Answer<T> {
  readonly provider: number;
  readonly value: T;
  readonly key: string;
}

export interface Disagreement {
  /** Which read (e.g. "eth_call members", "eth_getLogs", "block hash"). */
  readonly read: string;
  /** Each answering provider with a short digest of its answer (never the answer itself). */
  readonly answers: readonly { readonly provider: number; readonly digest: string }[];
  /** The providers whose answer lost, once a value reached the quorum; every answering one otherwise. */
  readonly outvoted: readonly number[];
  /** Whether a value still reached the quorum after every provider was asked. */
  readonly resolved: boolean;
}

export interface AgreementOptions<T> {
  readonly read: string;
  /** Asks provider `i`; a throw or an undefined answer counts as no answer. */
  readonly ask: (provider: number) => Promise<T | undefined>;
  /** The comparison key of an answer (canonical bytes; two answers agree iff their keys are equal). */
  readonly key: (value: T) => string;
  /** Only these providers may be asked (default: all). */
  readonly among?: readonly number[];
}

export interface Agreement {
  readonly providers: number;
  readonly quorum: number;
  /** The value `quorum` providers agree on; rejects with QuorumNotReached otherwise. */
  agree<T>(options: AgreementOptions<T>): Promise<Answer<T> & { readonly agreeing: readonly number[] }>;
  /** Provider order for the next read: healthy ones first, rotating so the load spreads. */
  order(among?: readonly number[]): number[];
  /** Marks a provider as failing (asked last until the cooldown passes). */
  failed(provider: number): void;
  /** Whether a provider failed within the cooldown. */
  cooling(provider: number): boolean;
}

/** Thrown when no value reached the quorum; `disagreed` tells a lie from mere unavailability. */
export class QuorumNotReached extends Error {
  readonly read: string;
  readonly answered: number;
  readonly disagreed: boolean;
  constructor(read: string, answered: number, quorum: number, disagreed: boolean) {
    super(
      disagreed
        ? `${read}: the RPC providers disagree and no answer has ${quorum} matching providers; not acting on it, will retry`
        : `${read}: only ${answered} RPC provider(s) answered, ${quorum} must agree; will retry`,
    );
    this.name = "QuorumNotReached";
    this.read = read;
    this.answered = answered;
    this.disagreed = disagreed;
  }
}

export function createAgreement(options: {
  readonly providers: number;
  readonly quorum: number;
  readonly onDisagreement: (disagreement: Disagreement) => void;
  readonly onFailure?: (provider: number, read: string, error: unknown) => void;
  /** How long a failed provider is asked last; default 30 s. */
  readonly cooldownMs?: number;
  readonly now?: () => number;
}): Agreement {
  const { providers, quorum } = options;
  if (!Number.isInteger(quorum) || quorum < 1 || quorum > providers) {
    throw new RangeError(`quorum ${quorum} must be between 1 and the ${providers} providers`);
  }
  const cooldownMs = options.cooldownMs ?? 30_000;
  const now = options.now ?? Date.now;
  const failedAt = new Array<number>(providers).fill(Number.NEGATIVE_INFINITY);
  let rotation = 0;

  const all = Array.from({ length: providers }, (_, i) => i);

  function order(among: readonly number[] = all): number[] {
    const start = rotation++;
    const rotated = among.map((_, i) => among[(start + i) % among.length]!);
    const t = now();
    const healthy = rotated.filter((p) => t - failedAt[p]! >= cooldownMs);
    const cooling = rotated
      .filter((p) => t - failedAt[p]! < cooldownMs)
      .sort((a, b) => failedAt[a]! - failedAt[b]!);
    return [...healthy, ...cooling];
  }

  function failed(provider: number): void {
    failedAt[provider] = now();
  }

  async function agree<T>(read: AgreementOptions<T>) {
    const candidates = order(read.among);
    const answers: Answer<T>[] = [];
    let next = 0;

    const askOne = async (provider: number): Promise<void> => {
      let value: T | undefined;
      try {
        value = await read.ask(provider);
      } catch (error) {
        failed(provider);
        options.onFailure?.(provider, read.read, error);
        return;
      }
      if (value === undefined) return;
      answers.push({ provider, value, key: read.key(value) });
    };
    const distinct = () => new Set(answers.map((a) => a.key)).size;
    const winner = () => {
      const votes = new Map<string, number>();
      for (const a of answers) votes.set(a.key, (votes.get(a.key) ?? 0) + 1);
      for (const [key, n] of votes) if (n >= quorum) return key;
      return undefined;
    };

    // Phase 1: the first `quorum` providers, replacing each that does not answer, while all agree.
    while (answers.length < quorum && next < candidates.length && distinct() <= 1) {
      const batch = candidates.slice(next, next + (quorum - answers.length));
      next += batch.length;
      await Promise.all(batch.map(askOne));
    }
    const disagreed = distinct() > 1;
    // Phase 2 (a disagreement): every provider not asked yet, so the honest quorum can still be found.
    if (disagreed && next < candidates.length) {
      await Promise.all(candidates.slice(next).map(askOne));
      next = candidates.length;
    }
    const key = winner();
    if (disagreed) {
      options.onDisagreement({
        read: read.read,
        answers: answers.map((a) => ({ provider: a.provider, digest: digest(a.key) })),
        outvoted: answers.filter((a) => a.key !== key).map((a) => a.provider),
        resolved: key !== undefined,
      });
    }
    if (key === undefined) throw new QuorumNotReached(read.read, answers.length, quorum, disagreed);
    const agreeing = answers.filter((a) => a.key === key);
    return { ...agreeing[0]!, agreeing: agreeing.map((a) => a.provider) };
  }

  const cooling = (provider: number) => now() - failedAt[provider]! < cooldownMs;

  return { providers, quorum, agree, order, failed, cooling };
}

/** A short, stable digest of an answer key for logs (FNV-1a, 32 bits): enough to tell answers apart. */
export function digest(key: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}
