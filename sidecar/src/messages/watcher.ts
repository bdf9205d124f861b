// Follows MessageSent logs addressed to this member at the confirmed height (head − confirmations), each
// range ending at a block hash a quorum of providers agrees on and its logs compared across the quorum
// (chain/reads.ts), so a log one provider forged or hid is never delivered or skipped:
// opens each ciphertext with the identity key's X25519 form, checks the sealed header against the
// event, attributes the sender as the chain resolved it, drops duplicates, and hands the message on.
// Progress is a cursor (cursor.ts) saved after every delivery and every range, so a restarted node
// replays what it missed; `deliver` must have stored a message durably before the cursor passes it. Undecryptable or malformed ciphertexts are logged and dropped.
//
// Whose messages are delivered: a sender that is an active member whose certificate verified, in good
// standing at the range's agreed block (no revocation of its device, compose hash or KMS root reached
// it), and that this node's re-attestation does not refuse for the message's block (`senderRefused`:
// refused now, or mined before a refusal of it ended). Any other sender's message is logged, counted by
// reason, remembered as handled and never delivered, whenever it is read again: the sender picks its
// messages and their timing, so nothing it sent while refused waits for a later verdict.
import { rename } from "node:fs/promises";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { MESSAGE_SENT_EVENT } from "@attestmesh/shared/contracts/events.ts";
import { type Address, type Hex, hexToBytes } from "viem";
import type { ClusterReader } from "../chain/cluster.ts";
import type { AgreedBlock, ChainReads } from "../chain/reads.ts";
import { AttestmeshError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { isStale, MEMBER_STANDINGS, type Member, type MemberStanding } from "../model/member.ts";
import type { CursorStore } from "./cursor.ts";
import { createRecentEnvelopes, envelopeKey, type RecentEnvelopes } from "./dedup.ts";
import { openMessage } from "./envelope.ts";
import type { MessageMetrics } from "./metrics.ts";
import type { X25519KeyPair } from "./sealedBox.ts";
import type { DropReason, ReceivedMessage } from "./types.ts";

/** Envelope ids remembered for dedup (and persisted with the cursor). */
export const RECENT_ENVELOPES = 1024;

export interface MessageWatcherOptions {
  readonly reads: ChainReads;
  readonly chainId: number;
  readonly cluster: Address;
  readonly reader: ClusterReader;
  readonly store: CursorStore;
  readonly keyPair: X25519KeyPair;
  readonly confirmations: number;
  readonly logger: Logger;
  readonly metrics?: MessageMetrics;
  /** This node's member id; undefined while it is not registered (nothing is read then). */
  readonly memberId: () => bigint | undefined;
  /** A member record already known (e.g. the membership follower's view), to save a read. */
  readonly knownMember?: (memberId: bigint) => Member | undefined;
  /** A record read outside the known view, if its certificate verified; absent: every record counts. */
  readonly certified?: (record: Member | undefined) => Promise<Member | undefined>;
  /**
   * Whether this node's re-attestation refuses messages of `senderId` mined in `blockNumber`
   * (reattest/scheduler.ts `messagesRefused`); absent while no re-attestation runs.
   */
  readonly senderRefused?: (senderId: bigint, blockNumber: bigint) => boolean;
  /** Where opened messages go: stores durably or throws (the pass then stops before this message). */
  readonly deliver: (message: ReceivedMessage) => unknown;
  /** First block to read when there is no cursor; default the confirmed head at `init()`. */
  readonly startBlock?: bigint | undefined;
  /** Widest eth_getLogs range; default 1,000 blocks. */
  readonly maxLogRange?: bigint;
}

export interface MessageWatcher {
  /** Loads the cursor (or starts one at the confirmed head); call before registering. */
  init(): Promise<void>;
  /** Reads every MessageSent log for this member up to the confirmed head. */
  pass(): Promise<void>;
  /** The last fully handled block, once initialised. */
  cursorBlock(): bigint | undefined;
}

export function createMessageWatcher(options: MessageWatcherOptions): MessageWatcher {
  const { reads, store, logger } = options;
  const maxLogRange = options.maxLogRange ?? 1000n;
  let block: bigint | undefined;
  let recent: RecentEnvelopes = createRecentEnvelopes(RECENT_ENVELOPES);

  const confirmedHead = () => reads.agreedBlock(options.confirmations);
  const save = () => store.save({ block: block ?? 0n, recent: recent.toArray() });

  async function startFresh(reason: string): Promise<void> {
    block = options.startBlock === undefined ? (await confirmedHead()).number : options.startBlock - 1n;
    if (block < 0n) block = 0n;
    recent = createRecentEnvelopes(RECENT_ENVELOPES);
    await save();
    logger.info({ block, cursor: store.path ?? "memory", reason }, "message cursor started");
  }

  function drop(reason: DropReason, fields: Record<string, unknown>, message: string): void {
    options.metrics?.dropped.inc({ reason });
    if (reason === "duplicate") logger.debug(fields, message);
    else logger.warn({ ...fields, reason }, message);
  }

  /** The sender's record, only if its certificate verified (the known view is certified already). */
  async function senderRecord(senderId: bigint, at: AgreedBlock): Promise<Member | undefined> {
    const known = options.knownMember?.(senderId);
    if (known !== undefined) return known;
    try {
      const record = await options.reader.member(senderId, at);
      if (record === undefined) return undefined;
      return options.certified === undefined ? record : await options.certified(record);
    } catch (err) {
      logger.warn({ err, senderId: senderId.toString() }, "could not read the sender's member record");
      return undefined;
    }
  }

  /** The sender's standing at `at` (a quorum read; throws when the providers do not answer). */
  async function standingAt(senderId: bigint, at: AgreedBlock): Promise<MemberStanding> {
    const index = await reads.readContract({
      address: options.cluster,
      abi: clusterAbi,
      functionName: "memberStanding",
      args: [senderId],
      at,
    });
    return MEMBER_STANDINGS[index] ?? "not-active";
  }

  /** Drops a message for good: remembered as handled, so a replay does not deliver it either. */
  async function refuse(key: string, reason: DropReason, fields: Record<string, unknown>, message: string) {
    recent.add(key);
    await save();
    drop(reason, fields, message);
  }

  async function handleRange(memberId: bigint, from: bigint, to: AgreedBlock): Promise<void> {
    /** Standings read in this range, one read per sender. */
    const standings = new Map<bigint, MemberStanding>();
    // Sorted in chain order by the read.
    const logs = await reads.getLogs({
      address: options.cluster,
      events: [MESSAGE_SENT_EVENT],
      args: { recipientId: memberId },
      fromBlock: from,
      to,
    });
    for (const log of logs) {
      const { recipientId, senderId, envelopeId, ciphertext } = log.args as {
        recipientId?: bigint;
        senderId?: bigint;
        envelopeId?: Hex;
        ciphertext?: Hex;
      };
      const where = { txHash: log.transactionHash, block: log.blockNumber, logIndex: log.logIndex };
      if (
        recipientId !== memberId ||
        senderId === undefined ||
        envelopeId === undefined ||
        ciphertext === undefined
      ) {
        logger.warn(where, "a MessageSent log that does not decode for this member; ignored");
        continue;
      }
      const fields = { ...where, senderId: senderId.toString(), envelopeId };
      const key = envelopeKey(senderId, recipientId, envelopeId);
      if (recent.has(key)) {
        drop("duplicate", fields, "duplicate message dropped");
        continue;
      }
      const sender = await senderRecord(senderId, to);
      if (sender === undefined) {
        // Not remembered: a sender whose certificate could not be checked yet may verify later.
        drop(
          "SenderNotVerified",
          fields,
          "message dropped: its sender is not a member whose certificate verified",
        );
        continue;
      }
      if (options.senderRefused?.(senderId, log.blockNumber) === true) {
        await refuse(
          key,
          "SenderRefused",
          fields,
          "message dropped: this node's re-attestation refused its sender (it is not delivered later either)",
        );
        continue;
      }
      let standing = sender.standing;
      if (!isStale(standing)) {
        // At the range's agreed block, which is at or above the message's: a revocation mined before
        // the message reached it. A failed read throws: the cursor stays, nothing is lost.
        standing = standings.get(senderId) ?? (await standingAt(senderId, to));
        standings.set(senderId, standing);
      }
      if (isStale(standing) || standing === "not-active") {
        await refuse(
          key,
          "SenderNotStanding",
          { ...fields, standing },
          "message dropped: its sender is not in good standing (a revocation reached it); it is not delivered later either",
        );
        continue;
      }
      let payload: Uint8Array;
      try {
        payload = openMessage(
          hexToBytes(ciphertext),
          options.keyPair,
          { chainId: BigInt(options.chainId), cluster: options.cluster, senderId, recipientId, envelopeId },
          sender.identityKey,
        );
      } catch (error) {
        if (!(error instanceof AttestmeshError)) throw error;
        await refuse(
          key,
          error.code as DropReason,
          { ...fields, problem: error.message },
          "message dropped: it does not open for this member",
        );
        continue;
      }
      const message: ReceivedMessage = {
        envelopeId,
        senderId,
        senderAppId: sender.appId,
        recipientId,
        payload,
        blockNumber: log.blockNumber,
        txHash: log.transactionHash,
        logIndex: log.logIndex,
      };
      // Hand on before remembering: `deliver` stores the message durably (the application's inbox,
      // which ignores an envelope it already holds) or throws, so the cursor never moves past a
      // message that was not stored, and a crash between the two repeats it into the inbox instead of
      // losing it.
      options.deliver(message);
      // Counted as it is handed on, so whoever sees it delivered also sees it counted.
      options.metrics?.received.inc();
      recent.add(key);
      await save();
      logger.info({ ...fields, bytes: payload.length }, "message received");
    }
  }

  return {
    async init() {
      let cursor: Awaited<ReturnType<CursorStore["load"]>>;
      try {
        cursor = await store.load();
      } catch (error) {
        if (!(error instanceof AttestmeshError) || error.code !== "CursorCorrupt") throw error;
        const aside = store.path === undefined ? undefined : `${store.path}.corrupt-${Date.now()}`;
        if (store.path !== undefined && aside !== undefined) await rename(store.path, aside).catch(() => {});
        logger.error(
          { err: error, cursor: store.path, keptAs: aside },
          "the message cursor is corrupt; kept it aside and started a new one at the current block (messages sent before may be missed)",
        );
        await startFresh("the old cursor was corrupt");
        return;
      }
      if (cursor === undefined) {
        await startFresh(
          store.path === undefined
            ? "no ATTESTMESH_STATE_DIR: messages sent while this node is down will not be replayed"
            : "no cursor yet",
        );
        return;
      }
      block = cursor.block;
      recent = createRecentEnvelopes(RECENT_ENVELOPES, cursor.recent);
      const head = (await confirmedHead()).number;
      if (block > head) {
        // A cursor ahead of the chain belongs to another history of it (a reset devnet or testnet):
        // read it from the start; the remembered envelope ids still drop anything seen before.
        const rewound =
          options.startBlock === undefined || options.startBlock < 1n ? 0n : options.startBlock - 1n;
        logger.warn(
          { cursorBlock: block, head, rewoundTo: rewound },
          "the message cursor is ahead of the chain (was the chain reset?); reading from the start",
        );
        block = rewound;
        await save();
      }
      logger.info(
        { block, cursor: store.path, recent: recent.size },
        "message cursor loaded; replaying from it",
      );
    },
    async pass() {
      const memberId = options.memberId();
      if (block === undefined) throw new Error("message watcher used before init()");
      if (memberId === undefined) return;
      // Each range ends at an agreed block: the last at the confirmed head, earlier ones (a node that
      // was down) at blocks agreed on the way, so every range is checked against an agreed hash.
      const to = await confirmedHead();
      let done: bigint = block;
      while (done < to.number) {
        const from: bigint = done + 1n;
        const end = to.number - from + 1n > maxLogRange ? await reads.blockAt(from + maxLogRange - 1n) : to;
        await handleRange(memberId, from, end);
        done = end.number;
        block = end.number;
        await save();
      }
    },
    cursorBlock: () => block,
  };
}
