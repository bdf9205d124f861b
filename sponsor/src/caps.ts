// Per-member daily caps: how many operations and how much maximum cost (wei) the operator approves for
// one member key in one UTC day, so a resend storm cannot drain the paymaster deposit. Kept in memory:
// a restart forgets the day's tally (the paymaster deposit is the hard ceiling).
export interface DailyCaps {
  readonly maxOps: number;
  readonly maxWei: bigint;
}

export interface CapUsage {
  readonly ops: number;
  readonly wei: bigint;
}

export interface CapLedger {
  /** What `owner` has used today. */
  usage(owner: string, now?: Date): CapUsage;
  /** Whether one more operation costing at most `maxCost` fits today's caps. */
  fits(owner: string, maxCost: bigint, now?: Date): boolean;
  /** Counts an approved operation. */
  record(owner: string, maxCost: bigint, now?: Date): void;
}

function day(now: Date): string {
  return now.toISOString().slice(0, 10);
}

export function createCapLedger(caps: DailyCaps): CapLedger {
  let currentDay = "";
  let tally = new Map<string, CapUsage>();
  const roll = (now: Date) => {
    const today = day(now);
    if (today !== currentDay) {
      currentDay = today;
      tally = new Map();
    }
  };
  const usage = (owner: string, now = new Date()): CapUsage => {
    roll(now);
    return tally.get(owner.toLowerCase()) ?? { ops: 0, wei: 0n };
  };
  return {
    usage,
    fits(owner, maxCost, now = new Date()) {
      const used = usage(owner, now);
      return used.ops + 1 <= caps.maxOps && used.wei + maxCost <= caps.maxWei;
    },
    record(owner, maxCost, now = new Date()) {
      const used = usage(owner, now);
      tally.set(owner.toLowerCase(), { ops: used.ops + 1, wei: used.wei + maxCost });
    },
  };
}
