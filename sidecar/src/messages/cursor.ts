// Where the message watcher is in the chain: the last block whose MessageSent logs were all handled,
// and the envelope ids delivered most recently. Kept in a small JSON file in the state directory (no
// secret in it: block numbers and public envelope ids), written atomically (temp file, fsync, rename)
// so a crash leaves the old cursor or the new one, never half of one. One file per chain, cluster and
// app id, so several sidecars can share a state directory.
//
// File format, version 1:
//   {"version":1,"chainId":31337,"cluster":"0x…","appId":"0x…","block":"123","recent":["7:0x…", …]}
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { type Address, getAddress, isAddress } from "viem";
import { fatalError, retryableError } from "../errors.ts";

export const CURSOR_VERSION = 1;

export interface Cursor {
  /** Every MessageSent log up to and including this block was handled. */
  readonly block: bigint;
  /** Dedup keys (`envelopeKey`) delivered most recently, oldest first. */
  readonly recent: readonly string[];
}

export interface CursorScope {
  readonly chainId: number;
  readonly cluster: Address;
  readonly appId: Address;
}

export interface CursorStore {
  /** Where the cursor lives; undefined for the in-memory store. */
  readonly path: string | undefined;
  /** The saved cursor; undefined when there is none yet. Throws `CursorCorrupt` for an unreadable file. */
  load(): Promise<Cursor | undefined>;
  save(cursor: Cursor): Promise<void>;
}

export function cursorFileName(scope: CursorScope): string {
  return `messages-cursor-${scope.chainId}-${scope.cluster.toLowerCase()}-${scope.appId.toLowerCase()}.json`;
}

function corrupt(path: string, problem: string): Error {
  return fatalError(
    "CursorCorrupt",
    `the message cursor ${path} ${problem}; delete it to start from the current block (messages sent while this node was down are then not replayed), or restore it`,
    { details: { path } },
  );
}

/** Parses a cursor file's text for `scope`; throws `CursorCorrupt` naming what is wrong. */
export function parseCursor(text: string, scope: CursorScope, path: string): Cursor {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw corrupt(path, "is not JSON");
  }
  if (typeof data !== "object" || data === null || Array.isArray(data))
    throw corrupt(path, "is not an object");
  const record = data as Record<string, unknown>;
  if (record.version !== CURSOR_VERSION) throw corrupt(path, `has version ${String(record.version)}, not 1`);
  if (record.chainId !== scope.chainId) throw corrupt(path, `belongs to chain ${String(record.chainId)}`);
  const sameAddress = (value: unknown, want: Address) =>
    typeof value === "string" &&
    isAddress(value, { strict: false }) &&
    getAddress(value) === getAddress(want);
  if (!sameAddress(record.cluster, scope.cluster)) throw corrupt(path, "belongs to another cluster");
  if (!sameAddress(record.appId, scope.appId)) throw corrupt(path, "belongs to another app id");
  if (typeof record.block !== "string" || !/^\d{1,20}$/.test(record.block)) {
    throw corrupt(path, "has no decimal block number");
  }
  const recent = record.recent;
  // `sender:recipient:envelope` (dedup.ts); files written before delivery was keyed by sender hold
  // `recipient:envelope` entries, which still load and simply never match again.
  if (
    !Array.isArray(recent) ||
    !recent.every((k) => typeof k === "string" && /^(\d{1,20}:)?\d{1,20}:0x[0-9a-f]{64}$/.test(k))
  ) {
    throw corrupt(path, "has a malformed recent-envelope list");
  }
  return { block: BigInt(record.block), recent: recent as string[] };
}

/** A cursor file in `dir` (created 0700 if missing). */
export function createFileCursorStore(dir: string, scope: CursorScope): CursorStore {
  const path = join(dir, cursorFileName(scope));
  let writes = 0;
  return {
    path,
    async load() {
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw retryableError(
          "CursorUnreadable",
          `cannot read the message cursor ${path}; check ATTESTMESH_STATE_DIR`,
          {
            cause: error,
            details: { path },
          },
        );
      }
      return parseCursor(text, scope, path);
    },
    async save(cursor) {
      const body = `${JSON.stringify({
        version: CURSOR_VERSION,
        chainId: scope.chainId,
        cluster: scope.cluster,
        appId: scope.appId,
        block: cursor.block.toString(),
        recent: cursor.recent,
      })}\n`;
      const temp = `${path}.${process.pid}.${writes++}.tmp`;
      try {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        const file = await open(temp, "w", 0o600);
        try {
          await file.writeFile(body);
          await file.sync();
        } finally {
          await file.close();
        }
        await rename(temp, path);
      } catch (error) {
        await rm(temp, { force: true }).catch(() => {});
        throw retryableError(
          "CursorUnwritable",
          `cannot write the message cursor ${path}; check ATTESTMESH_STATE_DIR`,
          {
            cause: error,
            details: { path },
          },
        );
      }
    },
  };
}

/** A cursor that lives only as long as the process (no ATTESTMESH_STATE_DIR). */
export function createMemoryCursorStore(): CursorStore {
  let saved: Cursor | undefined;
  return {
    path: undefined,
    load: async () => saved,
    save: async (cursor) => {
      saved = { block: cursor.block, recent: [...cursor.recent] };
    },
  };
}
