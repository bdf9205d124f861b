// node:sqlite (the sponsor's cap ledger, the sidecar's message inbox), loaded without its one-time
// ExperimentalWarning. The toolchain's Node 22 ships SQLite built in (no native addon to compile:
// better-sqlite3 needs an install-time build against Node 22 headers, which this project's
// no-install-scripts rule and closed network do not allow). On load it prints one plain-text warning to
// stderr, which would be the only line of the daemon's output that is not a pino JSON record; that
// warning, and only it, is dropped here.
import { createRequire } from "node:module";

type Sqlite = typeof import("node:sqlite");

function load(): Sqlite {
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === "string" ? warning : warning.message;
    const type = typeof rest[0] === "string" ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
    if (type === "ExperimentalWarning" && /SQLite/.test(text)) return;
    (emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    return createRequire(import.meta.url)("node:sqlite") as Sqlite;
  } finally {
    process.emitWarning = emitWarning;
  }
}

export const { DatabaseSync } = load();

/** Runs `body` in one `BEGIN IMMEDIATE` transaction on `db`: committed when it returns, rolled back when it throws. */
export function immediateTransaction<T>(db: InstanceType<typeof DatabaseSync>, body: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  try {
    const result = body();
    db.exec("COMMIT");
    return result;
  } catch (error) {
    db.exec("ROLLBACK");
    throw error;
  }
}
