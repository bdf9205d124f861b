// Per-member daily caps, charged on what the paymaster actually paid. An approval only *reserves* its
// maximum cost, keyed by (account, nonce): at most one operation per account nonce can ever be paid,
// so asking again for the same nonce replaces the reservation instead of adding one. A reservation
// ends when the EntryPoint's UserOperationEvent for that (account, nonce) is confirmed (it becomes a
// spend of the event's actualGasCost), or when a confirmed block is later than the approval's
// validUntil (the operation can no longer be included; nothing was paid). Usage for a member key and
// a UTC day = confirmed spends + live reservations.
//
// Kept in SQLite (node:sqlite, built into the toolchain's Node 22) so caps and spend history survive a
// restart. Every check-then-record runs in one `BEGIN IMMEDIATE` transaction on a synchronous
// connection: no other decision (in this process or another on the same file) interleaves with it.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, immediateTransaction } from "@attestmesh/shared/service/sqlite.ts";

export interface DailyCaps {
  readonly maxOps: number;
  readonly maxWei: bigint;
}

export interface CapUsage {
  readonly ops: number;
  readonly wei: bigint;
}

/** An approval about to be signed: what it may cost at most, until when it is valid. */
export interface Reservation {
  readonly owner: string;
  readonly sender: string;
  readonly nonce: bigint;
  readonly maxCost: bigint;
  /** Unix seconds: the approval's validUntil. */
  readonly validUntil: number;
}

/** One confirmed UserOperationEvent this paymaster paid for. */
export interface PaidOperation {
  readonly userOpHash: string;
  readonly sender: string;
  readonly nonce: bigint;
  readonly success: boolean;
  readonly actualGasCost: bigint;
  readonly blockNumber: bigint;
  readonly blockTimestamp: number;
  readonly txHash: string;
  /** The member key the account belongs to, when no reservation names it. */
  readonly owner?: string;
}

export interface RecordedSpend {
  readonly userOpHash: string;
  readonly owner: string;
  readonly day: string;
  readonly actualGasCost: bigint;
  readonly success: boolean;
  readonly blockNumber: bigint;
}

export interface ChainCursor {
  /** The last confirmed block whose events are recorded. */
  readonly block: bigint;
  readonly timestamp: number;
}

export interface CapLedger {
  /** What `owner` has used on `now`'s UTC day: confirmed spends plus live reservations. */
  usage(owner: string, now?: Date): CapUsage;
  /** Whether one more operation costing at most `maxCost` fits today's caps (records nothing). */
  fits(owner: string, maxCost: bigint, now?: Date): boolean;
  /** Checks the caps and records the reservation in one transaction; refuses with the usage when over. */
  reserve(
    reservation: Reservation,
    now?: Date,
  ): { readonly ok: true } | { readonly ok: false; readonly usage: CapUsage };
  /** The member key a live or pending reservation for (sender, nonce) names. */
  reservedOwner(sender: string, nonce: bigint): string | undefined;
  /** Records confirmed paid operations and advances the cursor, in one transaction; idempotent. */
  settle(paid: readonly PaidOperation[], cursor: ChainCursor): void;
  cursor(): ChainCursor | undefined;
  spend(userOpHash: string): RecordedSpend | undefined;
  close(): void;
}

/** A reservation also ends this long after its validUntil even if no confirmed block passed it yet
 * (a stalled chain or watcher must not hold a member's caps forever). */
export const STALLED_RESERVATION_SECONDS = 900;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS reservations (
  sender TEXT NOT NULL,
  nonce TEXT NOT NULL,
  owner TEXT NOT NULL,
  day TEXT NOT NULL,
  max_cost TEXT NOT NULL,
  valid_until INTEGER NOT NULL,
  PRIMARY KEY (sender, nonce)
);
CREATE INDEX IF NOT EXISTS reservations_owner_day ON reservations (owner, day);
CREATE TABLE IF NOT EXISTS spends (
  user_op_hash TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  day TEXT NOT NULL,
  sender TEXT NOT NULL,
  nonce TEXT NOT NULL,
  actual_gas_cost TEXT NOT NULL,
  success INTEGER NOT NULL,
  block_number INTEGER NOT NULL,
  tx_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spends_owner_day ON spends (owner, day);
CREATE TABLE IF NOT EXISTS chain_cursor (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  block INTEGER NOT NULL,
  timestamp INTEGER NOT NULL
);
`;

function day(at: Date): string {
  return at.toISOString().slice(0, 10);
}

function seconds(at: Date): number {
  return Math.floor(at.getTime() / 1000);
}

/** Opens (creating if needed) the ledger at `path` (`:memory:` for a throwaway one). */
export function createCapLedger(caps: DailyCaps, path = ":memory:"): CapLedger {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path);
  // The busy timeout first: switching to WAL while another process opens the file must wait, not fail.
  db.exec("PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;");
  db.exec(SCHEMA);

  const statements = {
    cursor: db.prepare("SELECT block, timestamp FROM chain_cursor WHERE id = 1"),
    setCursor: db.prepare(
      "INSERT INTO chain_cursor (id, block, timestamp) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET block = excluded.block, timestamp = excluded.timestamp",
    ),
    spends: db.prepare("SELECT actual_gas_cost FROM spends WHERE owner = ? AND day = ?"),
    reservations: db.prepare(
      "SELECT sender, nonce, max_cost FROM reservations WHERE owner = ? AND day = ? AND valid_until >= ? AND valid_until > ?",
    ),
    release: db.prepare("DELETE FROM reservations WHERE valid_until < ? OR valid_until <= ?"),
    upsert: db.prepare(
      "INSERT INTO reservations (sender, nonce, owner, day, max_cost, valid_until) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sender, nonce) DO UPDATE SET owner = excluded.owner, day = excluded.day, max_cost = excluded.max_cost, valid_until = excluded.valid_until",
    ),
    reservation: db.prepare("SELECT owner, day FROM reservations WHERE sender = ? AND nonce = ?"),
    dropReservation: db.prepare("DELETE FROM reservations WHERE sender = ? AND nonce = ?"),
    addSpend: db.prepare(
      "INSERT OR IGNORE INTO spends (user_op_hash, owner, day, sender, nonce, actual_gas_cost, success, block_number, tx_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    spend: db.prepare(
      "SELECT user_op_hash, owner, day, actual_gas_cost, success, block_number FROM spends WHERE user_op_hash = ?",
    ),
  };

  function transaction<T>(body: () => T): T {
    return immediateTransaction(db, body);
  }

  function cursor(): ChainCursor | undefined {
    const row = statements.cursor.get() as { block: number; timestamp: number } | undefined;
    return row === undefined ? undefined : { block: BigInt(row.block), timestamp: row.timestamp };
  }

  /** A reservation is live while no confirmed block is later than its validUntil and it has not stalled. */
  function liveBounds(now: Date): [confirmedTime: number, stalledBefore: number] {
    return [cursor()?.timestamp ?? 0, seconds(now) - STALLED_RESERVATION_SECONDS];
  }

  function usageExcept(owner: string, now: Date, except?: { sender: string; nonce: bigint }): CapUsage {
    const key = owner.toLowerCase();
    const today = day(now);
    let ops = 0;
    let wei = 0n;
    for (const row of statements.spends.all(key, today) as Array<{ actual_gas_cost: string }>) {
      ops += 1;
      wei += BigInt(row.actual_gas_cost);
    }
    const [confirmedTime, stalledBefore] = liveBounds(now);
    const rows = statements.reservations.all(key, today, confirmedTime, stalledBefore) as Array<{
      sender: string;
      nonce: string;
      max_cost: string;
    }>;
    for (const row of rows) {
      if (except !== undefined && row.sender === except.sender && row.nonce === except.nonce.toString())
        continue;
      ops += 1;
      wei += BigInt(row.max_cost);
    }
    return { ops, wei };
  }

  const within = (used: CapUsage, maxCost: bigint) =>
    used.ops + 1 <= caps.maxOps && used.wei + maxCost <= caps.maxWei;

  return {
    usage: (owner, now = new Date()) => usageExcept(owner, now),
    fits: (owner, maxCost, now = new Date()) => within(usageExcept(owner, now), maxCost),
    reserve(reservation, now = new Date()) {
      const owner = reservation.owner.toLowerCase();
      const sender = reservation.sender.toLowerCase();
      return transaction(() => {
        const [confirmedTime, stalledBefore] = liveBounds(now);
        statements.release.run(confirmedTime, stalledBefore);
        // The same (account, nonce) asked again replaces its reservation: only one of them can be paid.
        const used = usageExcept(owner, now, { sender, nonce: reservation.nonce });
        if (!within(used, reservation.maxCost)) return { ok: false as const, usage: used };
        statements.upsert.run(
          sender,
          reservation.nonce.toString(),
          owner,
          day(now),
          reservation.maxCost.toString(),
          reservation.validUntil,
        );
        return { ok: true as const };
      });
    },
    reservedOwner(sender, nonce) {
      const row = statements.reservation.get(sender.toLowerCase(), nonce.toString()) as
        | { owner: string }
        | undefined;
      return row?.owner;
    },
    settle(paid, next) {
      transaction(() => {
        for (const op of paid) {
          const sender = op.sender.toLowerCase();
          const nonce = op.nonce.toString();
          const reserved = statements.reservation.get(sender, nonce) as
            | { owner: string; day: string }
            | undefined;
          const owner = reserved?.owner ?? op.owner?.toLowerCase();
          if (owner === undefined) continue;
          statements.addSpend.run(
            op.userOpHash.toLowerCase(),
            owner,
            reserved?.day ?? day(new Date(op.blockTimestamp * 1000)),
            sender,
            nonce,
            op.actualGasCost.toString(),
            op.success ? 1 : 0,
            op.blockNumber,
            op.txHash.toLowerCase(),
          );
          statements.dropReservation.run(sender, nonce);
        }
        statements.setCursor.run(next.block, next.timestamp);
      });
    },
    cursor,
    spend(userOpHash) {
      const row = statements.spend.get(userOpHash.toLowerCase()) as
        | {
            user_op_hash: string;
            owner: string;
            day: string;
            actual_gas_cost: string;
            success: number;
            block_number: number;
          }
        | undefined;
      if (row === undefined) return undefined;
      return {
        userOpHash: row.user_op_hash,
        owner: row.owner,
        day: row.day,
        actualGasCost: BigInt(row.actual_gas_cost),
        success: row.success === 1,
        blockNumber: BigInt(row.block_number),
      };
    },
    close: () => db.close(),
  };
}
