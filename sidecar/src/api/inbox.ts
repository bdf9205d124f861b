// The application's inbox: every received message is stored here before the message watcher moves its
// cursor past it, and stays until the application acknowledges it. Delivery to the application is
// therefore at-least-once across sidecar crashes: a message is on the stream again after a restart
// until the application acks its sequence number (or a later one), and is then pruned.
//
// SQLite (node:sqlite) in ATTESTMESH_STATE_DIR, one file per cluster, held with an exclusive lock so
// two sidecars can never share (and both drain) one inbox. Each write is one transaction with
// `synchronous = FULL`: a message `store` returned for, or an ack that was answered, survives SIGKILL
// and power loss. What is at rest is exactly what the application receives on the stream (payload,
// sender, envelope id, block, transaction): no key, no ciphertext, never the CSK.
//
// Sequence numbers belong to a *sequence space*: a random id made when the file is created. Inside one
// space they only grow, are never reused (pruned ones included), and an envelope (sender, recipient,
// envelope id) gets at most one of them: the keys of the newest SEEN_KEPT stored envelopes, and of every
// unacknowledged one, are kept after the payloads are pruned, so a log the watcher reads again (a crash
// between storing and saving its cursor, a reorg, a rewound cursor) is not stored twice. A new file (no
// state directory, or one deleted by hand) is a new space; the stream's hello line names it.
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync, immediateTransaction } from "@attestmesh/shared/service/sqlite.ts";
import { type Address, getAddress, type Hex } from "viem";
import { fatalError, isAttestmeshError, retryableError } from "../errors.ts";
import { envelopeKey } from "../messages/dedup.ts";
import type { ReceivedMessage } from "../messages/types.ts";

/** Written into every inbox file; a file without it is not ours. */
export const INBOX_FORMAT = "attestmesh-inbox";
export const INBOX_VERSION = 1;
/** Envelope keys kept after their messages were acknowledged and pruned, newest first. */
export const SEEN_KEPT = 65_536;

export interface StoredMessage {
  readonly seq: number;
  readonly message: ReceivedMessage;
}

export interface AckResult {
  /** The application's acknowledged sequence number after this ack. */
  readonly acked: number;
  /** Messages deleted by this ack. */
  readonly pruned: number;
}

export interface Inbox {
  /** The SQLite file; undefined for an in-memory inbox (no ATTESTMESH_STATE_DIR). */
  readonly path: string | undefined;
  /** The sequence space: a random id, fixed for the life of the file. */
  readonly space: string;
  /**
   * Stores a received message and returns its sequence number; undefined when this envelope was
   * stored before (nothing changes). Throws `InboxFull` (retryable) when `maxMessages` are waiting.
   */
  store(message: ReceivedMessage): number | undefined;
  /** Up to `limit` stored (unacknowledged) messages with a sequence number above `seq`, oldest first. */
  after(seq: number, limit: number): StoredMessage[];
  /** Acknowledges every message up to and including `seq` and prunes them; `seq` below the current ack is a no-op. */
  ack(seq: number): AckResult;
  /** The sequence number of the newest message ever stored (0 before the first). */
  lastSeq(): number;
  acked(): number;
  /** Messages stored and not acknowledged. */
  pending(): number;
  /** Calls `listener` after every message stored; returns the unsubscribe. */
  onStored(listener: () => void): () => void;
  close(): void;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY,
  envelope_id TEXT NOT NULL,
  sender_id TEXT NOT NULL,
  sender_app_id TEXT,
  recipient_id TEXT NOT NULL,
  payload BLOB NOT NULL,
  block TEXT NOT NULL,
  tx_hash TEXT NOT NULL,
  log_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
  envelope_key TEXT PRIMARY KEY,
  seq INTEGER NOT NULL UNIQUE
) WITHOUT ROWID;
`;

/** The inbox file of a cluster inside the state directory. */
export function inboxFileName(cluster: Address): string {
  return `inbox-${cluster.toLowerCase()}.sqlite`;
}

function sqliteCode(error: unknown): number | undefined {
  const code = (error as { errcode?: unknown }).errcode;
  return typeof code === "number" ? code & 0xff : undefined;
}

const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_CANTOPEN = 14;
const SQLITE_CORRUPT = 11;
const SQLITE_NOTADB = 26;

const RESTORE =
  "stop the sidecar and move the file aside (a new, empty inbox starts a new sequence space: messages not yet acknowledged in the old one are not delivered again), or restore the right file";

function corrupt(path: string, problem: string, cause?: unknown): Error {
  return fatalError("InboxCorrupt", `the message inbox ${path} ${problem}; ${RESTORE}`, {
    cause,
    details: { path },
  });
}

function foreign(path: string, problem: string): Error {
  return fatalError(
    "InboxForeign",
    `${path} ${problem}: it is not this sidecar's message inbox; ${RESTORE}`,
    {
      details: { path },
    },
  );
}

/**
 * Opens the inbox of `cluster` in `stateDir` (creating it, mode 0600 in a 0700 directory), or an
 * in-memory one without a state directory. Throws `InboxCorrupt` for a file SQLite cannot read,
 * `InboxForeign` for a database that is not an attestmesh inbox or belongs to another cluster,
 * `InboxInUse` when another process holds it, `InboxUnusable` when it cannot be created at all.
 */
export function openInbox(options: {
  readonly stateDir: string | undefined;
  readonly cluster: Address;
  readonly maxMessages: number;
}): Inbox {
  const cluster = getAddress(options.cluster);
  const path = options.stateDir === undefined ? undefined : join(options.stateDir, inboxFileName(cluster));
  const where = path ?? ":memory:";
  let db: InstanceType<typeof DatabaseSync>;
  try {
    if (options.stateDir !== undefined) mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
    const previous = process.umask(0o077);
    try {
      db = new DatabaseSync(where);
    } finally {
      process.umask(previous);
    }
    // Exclusive locking: the locks taken are held until close, so a second sidecar on the same file
    // fails (within the busy timeout) instead of sharing the inbox.
    db.exec("PRAGMA busy_timeout = 1000; PRAGMA locking_mode = EXCLUSIVE;");
  } catch (error) {
    throw openError(where, error);
  }
  let space: string;
  try {
    // Identity first, by reading only: a file that is not ours is refused before anything is written.
    space = checkOrCreate(db, where, cluster);
  } catch (error) {
    db.close();
    throw error;
  }
  try {
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;");
    // A write takes the exclusive lock now, not at the first message.
    db.exec("UPDATE meta SET value = value WHERE key = 'format'");
  } catch (error) {
    db.close();
    throw openError(where, error);
  }

  const statements = {
    seen: db.prepare("SELECT seq FROM seen WHERE envelope_key = ?"),
    insert: db.prepare(
      "INSERT INTO messages (seq, envelope_id, sender_id, sender_app_id, recipient_id, payload, block, tx_hash, log_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    remember: db.prepare("INSERT INTO seen (envelope_key, seq) VALUES (?, ?)"),
    setMeta: db.prepare("UPDATE meta SET value = ? WHERE key = ?"),
    meta: db.prepare("SELECT value FROM meta WHERE key = ?"),
    after: db.prepare("SELECT * FROM messages WHERE seq > ? ORDER BY seq LIMIT ?"),
    pending: db.prepare("SELECT count(*) AS n FROM messages"),
    prune: db.prepare("DELETE FROM messages WHERE seq <= ?"),
    forget: db.prepare(
      "DELETE FROM seen WHERE seq <= ? AND seq <= (SELECT coalesce(max(seq), 0) FROM seen) - ?",
    ),
  };
  const metaNumber = (key: string): number => {
    const row = statements.meta.get(key) as { value: string } | undefined;
    return Number(row?.value ?? "0");
  };
  let lastSeq = metaNumber("last_seq");
  let acked = metaNumber("acked");
  let pending = Number((statements.pending.get() as { n: number }).n);
  const listeners = new Set<() => void>();

  function transaction<T>(body: () => T): T {
    return immediateTransaction(db, body);
  }

  function writeError(what: string, error: unknown): Error {
    return retryableError(
      "InboxUnwritable",
      `cannot ${what} the message inbox ${where}; check ATTESTMESH_STATE_DIR (disk full?)`,
      { cause: error, details: { path: where } },
    );
  }

  return {
    path,
    space,
    store(message) {
      const key = envelopeKey(message.senderId, message.recipientId, message.envelopeId);
      if (statements.seen.get(key) !== undefined) return undefined;
      if (pending >= options.maxMessages) {
        throw retryableError(
          "InboxFull",
          `the message inbox holds ${pending} messages the application has not acknowledged (ATTESTMESH_INBOX_MAX_MESSAGES); new messages wait on the chain until it acknowledges some`,
          { details: { pending } },
        );
      }
      const seq = lastSeq + 1;
      try {
        transaction(() => {
          statements.insert.run(
            seq,
            message.envelopeId,
            message.senderId.toString(),
            message.senderAppId ?? null,
            message.recipientId.toString(),
            message.payload,
            message.blockNumber.toString(),
            message.txHash,
            message.logIndex,
          );
          statements.remember.run(key, seq);
          statements.setMeta.run(String(seq), "last_seq");
        });
      } catch (error) {
        throw writeError("store a message in", error);
      }
      lastSeq = seq;
      pending++;
      for (const listener of [...listeners]) listener();
      return seq;
    },
    after(seq, limit) {
      const rows = statements.after.all(seq, limit) as unknown as Row[];
      return rows.map(fromRow);
    },
    ack(seq) {
      if (seq <= acked) return { acked, pruned: 0 };
      let pruned = 0;
      try {
        transaction(() => {
          pruned = Number(statements.prune.run(seq).changes);
          statements.forget.run(seq, SEEN_KEPT);
          statements.setMeta.run(String(seq), "acked");
        });
      } catch (error) {
        throw writeError("record an acknowledgement in", error);
      }
      acked = seq;
      pending -= pruned;
      return { acked, pruned };
    },
    lastSeq: () => lastSeq,
    acked: () => acked,
    pending: () => pending,
    onStored(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      listeners.clear();
      if (db.isOpen) db.close();
    },
  };
}

interface Row {
  seq: number;
  envelope_id: string;
  sender_id: string;
  sender_app_id: string | null;
  recipient_id: string;
  payload: Uint8Array;
  block: string;
  tx_hash: string;
  log_index: number;
}

function fromRow(row: Row): StoredMessage {
  return {
    seq: Number(row.seq),
    message: {
      envelopeId: row.envelope_id as Hex,
      senderId: BigInt(row.sender_id),
      senderAppId: row.sender_app_id === null ? undefined : (row.sender_app_id as Address),
      recipientId: BigInt(row.recipient_id),
      payload: new Uint8Array(row.payload),
      blockNumber: BigInt(row.block),
      txHash: row.tx_hash as Hex,
      logIndex: Number(row.log_index),
    },
  };
}

function openError(where: string, error: unknown): Error {
  const code = sqliteCode(error);
  if (code === SQLITE_NOTADB || code === SQLITE_CORRUPT) {
    return corrupt(where, "is not a readable SQLite database", error);
  }
  if (code === SQLITE_BUSY || code === SQLITE_LOCKED) {
    return fatalError(
      "InboxInUse",
      `the message inbox ${where} is held by another process (a second sidecar with the same ATTESTMESH_STATE_DIR and cluster?); give each sidecar its own state directory`,
      { cause: error, details: { path: where } },
    );
  }
  if (code === SQLITE_CANTOPEN || (error as NodeJS.ErrnoException).code !== undefined) {
    return retryableError(
      "InboxUnusable",
      `cannot create or open the message inbox ${where}; check that ATTESTMESH_STATE_DIR is a writable directory`,
      { cause: error, details: { path: where } },
    );
  }
  return corrupt(where, "cannot be opened", error);
}

/** Checks a file's identity and integrity, or writes the identity of a new one; returns its space. */
function checkOrCreate(db: InstanceType<typeof DatabaseSync>, where: string, cluster: Address): string {
  let tables: string[];
  try {
    const integrity = db.prepare("PRAGMA quick_check").all() as Array<Record<string, unknown>>;
    const problems = integrity.map((row) => String(Object.values(row)[0])).filter((v) => v !== "ok");
    if (problems.length > 0) throw corrupt(where, `fails SQLite's integrity check (${problems[0]})`);
    tables = (
      db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").all() as Array<{
        name: string;
      }>
    ).map((row) => row.name);
  } catch (error) {
    if (isAttestmeshError(error, "InboxCorrupt")) throw error;
    throw openError(where, error);
  }
  if (tables.length === 0) {
    const space = randomUUID();
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(SCHEMA);
      const put = db.prepare("INSERT INTO meta (key, value) VALUES (?, ?)");
      for (const [key, value] of [
        ["format", INBOX_FORMAT],
        ["version", String(INBOX_VERSION)],
        ["cluster", cluster],
        ["space", space],
        ["last_seq", "0"],
        ["acked", "0"],
      ] as const) {
        put.run(key, value);
      }
      db.exec("COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      throw openError(where, error);
    }
    return space;
  }
  if (!["meta", "messages", "seen"].every((t) => tables.includes(t))) {
    throw foreign(where, `is an SQLite database with tables ${tables.join(", ")}`);
  }
  let meta: Map<string, string>;
  try {
    meta = new Map(
      (db.prepare("SELECT key, value FROM meta").all() as Array<{ key: string; value: string }>).map(
        (row) => [row.key, row.value],
      ),
    );
  } catch (error) {
    throw foreign(where, `has a meta table this sidecar cannot read (${String(error)})`);
  }
  if (meta.get("format") !== INBOX_FORMAT) throw foreign(where, "is an SQLite database");
  if (meta.get("version") !== String(INBOX_VERSION)) {
    throw foreign(
      where,
      `is an inbox of format version ${meta.get("version")}, which this sidecar (version ${INBOX_VERSION}) does not read`,
    );
  }
  if (meta.get("cluster") !== cluster) {
    throw foreign(where, `is the inbox of cluster ${meta.get("cluster")}, not ${cluster}`);
  }
  const space = meta.get("space");
  const numeric = (key: string) => /^\d{1,15}$/.test(meta.get(key) ?? "");
  if (space === undefined || !/^[0-9a-f-]{36}$/.test(space) || !numeric("last_seq") || !numeric("acked")) {
    throw corrupt(where, "has a damaged meta table");
  }
  return space;
}
