// The deploy journal: a JSON file that records, per contract, the transaction sent and the address it
// produced, plus the cluster parameters and chain it is for. `attestmesh deploy` re-run with the same
// journal resumes where it stopped; with other parameters or on another chain it refuses.
// Written atomically (temp file + rename) after every step. It holds no secret.

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { Address, Hex } from "viem";
import type { DeployJournal, JournalEntry } from "../deploy/cluster.ts";

export interface JournalParams {
  readonly chainId: number;
  readonly owner: Address;
  readonly meshCidr: string;
  readonly kmsRoots: readonly Address[];
}

interface JournalFile {
  readonly version: 1;
  readonly params: JournalParams;
  readonly contracts: Record<string, { transactionHash?: Hex; address?: Address; blockNumber?: string }>;
}

const sameParams = (a: JournalParams, b: JournalParams) =>
  a.chainId === b.chainId &&
  a.owner.toLowerCase() === b.owner.toLowerCase() &&
  a.meshCidr === b.meshCidr &&
  a.kmsRoots.map((r) => r.toLowerCase()).join() === b.kmsRoots.map((r) => r.toLowerCase()).join();

export interface FileJournal extends DeployJournal {
  readonly path: string;
  /** True when the file existed: this run resumes. */
  readonly resumed: boolean;
}

export function openJournal(path: string, params: JournalParams): FileJournal {
  let file: JournalFile = { version: 1, params, contracts: {} };
  const resumed = existsSync(path);
  if (resumed) {
    try {
      file = JSON.parse(readFileSync(path, "utf8")) as JournalFile;
    } catch (cause) {
      throw new AttestmeshError(`deploy journal ${path} is not valid JSON; move it away to start afresh`, {
        code: "JournalUnreadable",
        cause,
      });
    }
    if (file.version !== 1 || !sameParams(file.params, params)) {
      throw new AttestmeshError(
        `deploy journal ${path} is for another deployment (${JSON.stringify(file.params)}); pass the same parameters to resume, or another --journal`,
        { code: "JournalMismatch", details: { journal: file.params, given: params } },
      );
    }
  }
  const save = () => {
    const temp = `${path}.${process.pid}.tmp`;
    try {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(temp, `${JSON.stringify(file, null, 2)}\n`);
      renameSync(temp, path);
    } catch (cause) {
      // A failed write (a full disk, the path taken by a directory) leaves the journal as it was and no temp file.
      try {
        rmSync(temp, { force: true });
      } catch {
        // Not a file of ours (a directory by that name): left alone.
      }
      throw new AttestmeshError(
        `cannot write the deploy journal ${path}; free space or pass another --journal, then re-run to resume`,
        { code: "JournalUnwritable", cause, details: { path } },
      );
    }
  };
  return {
    path,
    resumed,
    get(name: string): JournalEntry | undefined {
      const entry = file.contracts[name];
      if (!entry) return undefined;
      return {
        ...(entry.transactionHash ? { transactionHash: entry.transactionHash } : {}),
        ...(entry.address ? { address: entry.address } : {}),
        ...(entry.blockNumber !== undefined ? { blockNumber: BigInt(entry.blockNumber) } : {}),
      };
    },
    async record(name: string, entry: JournalEntry): Promise<void> {
      file.contracts[name] = {
        ...(entry.transactionHash ? { transactionHash: entry.transactionHash } : {}),
        ...(entry.address ? { address: entry.address } : {}),
        ...(entry.blockNumber !== undefined ? { blockNumber: entry.blockNumber.toString() } : {}),
      };
      save();
    },
  };
}
