// Follows membership at the confirmed height (head − confirmations), read at one block hash a quorum of
// the pinned providers agree on (reads.ts). The first sync reads every record in pages; after that each
// sync costs one agreed block (every provider's eth_blockNumber, a quorum's block hash), one eth_getLogs
// for MemberRegistered / MemberEvicted / MemberLeft since the last processed block, and one `member(id)`
// per id those logs name — each of the last two asked of a quorum and compared. Where those logs
// registered a member, the snapshot also says where (block, transaction): the certificate source
// starts there instead of searching (certs/source.ts), and trusts none of it. Listeners hear of those
// registrations as soon as the logs are read, so the certificate's reads run beside the records'.
// A head that moved backwards (a reorg deeper than the confirmations, or providers that fell behind)
// or a gap wider than `maxLogRange` (the sidecar was stalled) triggers a full re-read instead, and so
// does a policy change that can change a member's standing (a device revoked, a compose hash or KMS
// root removed or added, the device allowlist switched): the full read carries every standing.
// A member whose registration, eviction or leave an indexer pushed (`expect`) has its record read beside
// the logs instead of after them, at the same agreed block and from the same quorum: on a join or an
// eviction that is one round trip to the providers less for every node (issue 15). The push only chooses
// what is read early: the record counts only when the logs name its id, so a lying push costs one read
// and changes nothing.
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { type Address, getAbiItem, type Hex } from "viem";
import type { Logger } from "../log.ts";
import type { Member } from "../model/member.ts";
import type { ClusterReader } from "./cluster.ts";
import type { AgreedBlock, ChainReads } from "./reads.ts";

export const MEMBERSHIP_EVENTS = [
  getAbiItem({ abi: clusterAbi, name: "MemberRegistered" }),
  getAbiItem({ abi: clusterAbi, name: "MemberEvicted" }),
  getAbiItem({ abi: clusterAbi, name: "MemberLeft" }),
] as const;

/** Policy events after which any member's standing may differ: the next sync reads everything. */
export const STANDING_EVENTS = [
  getAbiItem({ abi: clusterAbi, name: "ComposeHashAdded" }),
  getAbiItem({ abi: clusterAbi, name: "ComposeHashRemoved" }),
  getAbiItem({ abi: clusterAbi, name: "DeviceAdded" }),
  getAbiItem({ abi: clusterAbi, name: "DeviceRemoved" }),
  getAbiItem({ abi: clusterAbi, name: "DeviceRevokedAt" }),
  getAbiItem({ abi: clusterAbi, name: "KmsRootAdded" }),
  getAbiItem({ abi: clusterAbi, name: "KmsRootRemoved" }),
  getAbiItem({ abi: clusterAbi, name: "AllowAnyDeviceSet" }),
] as const;

const STANDING_EVENT_NAMES: ReadonlySet<string> = new Set(STANDING_EVENTS.map((e) => e.name));

export type SyncKind = "full" | "incremental" | "unchanged";

/** Where a MemberRegistered log was: a hint for finding the registration, never trusted. */
export interface RegistrationLocation {
  readonly blockNumber: bigint;
  readonly transactionHash: Hex;
}

/** A MemberRegistered log as an incremental sync read it (a quorum read): the member, its app, where. */
export interface RegistrationSeen {
  readonly memberId: bigint;
  readonly appId: Address;
  readonly location: RegistrationLocation;
}

export interface MembershipSnapshot {
  /** The block every record was read at. */
  readonly block: bigint;
  /** Its hash, as a quorum of providers agreed. */
  readonly blockHash: `0x${string}`;
  /** Every record with a status other than None, by member id. */
  readonly members: ReadonlyMap<bigint, Member>;
  /** The ids this sync re-read (every id after a full read). */
  readonly changed: readonly bigint[];
  readonly kind: SyncKind;
  /** For ids the incremental read behind this view saw registered: where their MemberRegistered log was. */
  readonly registrations?: ReadonlyMap<bigint, RegistrationLocation>;
}

export interface MembershipFollower {
  /** Brings the view up to the confirmed head. State only advances when every read succeeded. */
  sync(): Promise<MembershipSnapshot>;
  /** The last view, if any sync succeeded. */
  current(): MembershipSnapshot | undefined;
  /** Forces the next sync to re-read everything. */
  invalidate(reason: string): void;
  /**
   * Calls `listener` with the registrations a sync's logs name as soon as it read them, before it reads
   * those members' records (the certificate reads can start beside them: certs/follower.ts).
   */
  onRegistrations?(listener: (seen: readonly RegistrationSeen[]) => void): void;
  /**
   * An indexer pushed a change of `memberId`'s record in `block`: the sync that reaches that block reads
   * the record beside the logs. At most EXPECTED_MAX are kept (the oldest goes); one the logs do not name
   * is dropped unused.
   */
  expect?(memberId: bigint, block: bigint): void;
}

/** Changes expected from pushes, at most (a join or an eviction brings one; a burst a few per block). */
export const EXPECTED_MAX = 16;

export function createMembershipFollower(options: {
  readonly reads: ChainReads;
  readonly cluster: Address;
  readonly reader: ClusterReader;
  readonly confirmations: number;
  readonly logger: Logger;
  /** Widest getLogs range before a full re-read is cheaper and safer; default 1,000 blocks. */
  readonly maxLogRange?: bigint;
}): MembershipFollower {
  const { reads, cluster, reader, logger } = options;
  const maxLogRange = options.maxLogRange ?? 1000n;
  let snapshot: MembershipSnapshot | undefined;
  let fullReason: string | undefined = "start";
  const listeners: Array<(seen: readonly RegistrationSeen[]) => void> = [];
  /** Pushed changes not read yet: member id → the block the push said. */
  const expected = new Map<bigint, bigint>();

  /**
   * Starts reading, at `at`, the records of the changes expected in (`after`, `at`]; those at or
   * before `after` are past and go, later ones wait for their sync. Each read's failure is kept for the
   * caller that uses it, and ignored when nobody does.
   */
  function readExpected(after: bigint, at: AgreedBlock): Map<bigint, Promise<Member | undefined>> {
    const early = new Map<bigint, Promise<Member | undefined>>();
    for (const [id, block] of expected) {
      if (block > at.number) continue;
      expected.delete(id);
      if (block <= after) continue;
      const read = reader.member(id, at);
      read.catch(() => {});
      early.set(id, read);
    }
    return early;
  }

  async function fullRead(at: AgreedBlock, reason: string): Promise<MembershipSnapshot> {
    const members = await reader.allMembers(at);
    logger.info({ block: at.number, members: members.size, reason }, "read every member record");
    return { block: at.number, blockHash: at.hash, members, changed: [...members.keys()], kind: "full" };
  }

  async function incremental(previous: MembershipSnapshot, at: AgreedBlock): Promise<MembershipSnapshot> {
    const block = at.number;
    const started = Date.now();
    const early = readExpected(previous.block, at);
    const logs = await reads.getLogs({
      address: cluster,
      events: [...MEMBERSHIP_EVENTS, ...STANDING_EVENTS],
      fromBlock: previous.block + 1n,
      to: at,
    });
    if (logs.some((log) => STANDING_EVENT_NAMES.has(log.eventName))) {
      return fullRead(at, "the policy changed: members' standing may have");
    }
    const ids = [
      ...new Set(
        logs
          .map((log) => ("memberId" in log.args ? log.args.memberId : undefined))
          .filter((id): id is bigint => typeof id === "bigint"),
      ),
    ];
    if (ids.length === 0) return { ...previous, block, blockHash: at.hash, changed: [], kind: "incremental" };
    const registrations = new Map<bigint, RegistrationLocation>();
    const seen: RegistrationSeen[] = [];
    for (const log of logs) {
      if (log.eventName === "MemberRegistered" && typeof log.args.memberId === "bigint") {
        const location = { blockNumber: log.blockNumber, transactionHash: log.transactionHash };
        registrations.set(log.args.memberId, location);
        if (typeof log.args.appId === "string") {
          seen.push({ memberId: log.args.memberId, appId: log.args.appId as Address, location });
        }
      }
    }
    if (seen.length > 0) for (const listener of listeners) listener(seen);
    const logsMs = Date.now() - started;
    // A record read early is the same quorum read at the same block; one that failed is read again.
    const records = await Promise.all(
      ids.map((id) => early.get(id)?.catch(() => reader.member(id, at)) ?? reader.member(id, at)),
    );
    const members = new Map(previous.members);
    ids.forEach((id, i) => {
      const record = records[i];
      if (record) members.set(id, record);
      else members.delete(id);
    });
    logger.debug(
      {
        block,
        changed: ids,
        logsMs,
        recordsMs: Date.now() - started - logsMs,
        readEarly: ids.filter((id) => early.has(id)).length,
      },
      "membership changed",
    );
    return { block, blockHash: at.hash, members, changed: ids, kind: "incremental", registrations };
  }

  return {
    async sync() {
      const headStarted = Date.now();
      const at = await reads.agreedBlock(options.confirmations);
      logger.trace({ block: at.number, ms: Date.now() - headStarted }, "confirmed block agreed");
      const block = at.number;
      const previous = snapshot;
      let next: MembershipSnapshot;
      if (previous === undefined || fullReason !== undefined) {
        next = await fullRead(at, fullReason ?? "start");
      } else if (block < previous.block) {
        logger.warn(
          { block, previous: previous.block },
          "the confirmed head moved backwards (deep reorg or lagging RPC providers); re-reading every member",
        );
        next = await fullRead(at, "head moved backwards");
      } else if (block - previous.block > maxLogRange) {
        next = await fullRead(at, `gap of ${block - previous.block} blocks`);
      } else if (block === previous.block) {
        if (at.hash.toLowerCase() !== previous.blockHash.toLowerCase()) {
          next = await fullRead(at, "the confirmed block was replaced (reorg)");
        } else {
          return { ...previous, changed: [], kind: "unchanged" };
        }
      } else {
        next = await incremental(previous, at);
      }
      snapshot = next;
      fullReason = undefined;
      return next;
    },
    current: () => snapshot,
    invalidate(reason) {
      fullReason = reason;
    },
    onRegistrations(listener) {
      listeners.push(listener);
    },
    expect(memberId, block) {
      expected.delete(memberId);
      expected.set(memberId, block);
      if (expected.size > EXPECTED_MAX) expected.delete(expected.keys().next().value!);
    },
  };
}
