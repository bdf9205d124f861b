// Sealed messages as the sidecar runs them: the cursor store, the watcher polling MessageSent logs for
// this member, and the sender. `start` loads (or begins) the cursor and must run before registering,
// so no message addressed to the new member id can fall before the cursor.
import type { Registry } from "prom-client";
import type { ChainContext } from "../chain/client.ts";
import type { ClusterReader } from "../chain/cluster.ts";
import { isAttestmeshError } from "../errors.ts";
import type { NodeKeys } from "../keys.ts";
import type { Logger } from "../log.ts";
import type { Member } from "../model/member.ts";
import { sleepToBeat } from "../sleep.ts";
import { type CursorStore, createFileCursorStore, createMemoryCursorStore } from "./cursor.ts";
import { createMessageMetrics } from "./metrics.ts";
import { x25519FromEd25519Seed } from "./sealedBox.ts";
import { createMessageSender, type MessageSender } from "./sender.ts";
import type { ReceivedMessage } from "./types.ts";
import { createMessageWatcher, type MessageWatcher } from "./watcher.ts";

export interface Messaging {
  readonly sender: MessageSender;
  readonly watcher: MessageWatcher;
  /** Resolves when the polling loop has stopped (after the signal aborted). */
  readonly stopped: Promise<void>;
  /** Reads the chain now (a verified push may name a message) instead of at the next poll. */
  wake(): void;
}

export async function startMessaging(options: {
  readonly chain: ChainContext;
  readonly reader: ClusterReader;
  readonly keys: Pick<NodeKeys, "member" | "identity" | "appId">;
  readonly stateDir: string | undefined;
  readonly startBlock: number | undefined;
  readonly confirmations: number;
  readonly pollIntervalMs: number;
  /** The interval to poll at now (the pollers' cadence); default `pollIntervalMs`. */
  readonly pollInterval?: () => number;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly signal: AbortSignal;
  readonly memberId: () => bigint | undefined;
  readonly knownMember: (memberId: bigint) => Member | undefined;
  /** A record read outside the known view, if its certificate verified (else undefined). */
  readonly certified?: (record: Member | undefined) => Promise<Member | undefined>;
  /** Whether re-attestation refuses messages of a sender mined in a block (reattest/scheduler.ts). */
  readonly senderRefused?: (senderId: bigint, blockNumber: bigint) => boolean;
  readonly deliver: (message: ReceivedMessage) => void;
}): Promise<Messaging> {
  const { chain, logger, signal } = options;
  const metrics = createMessageMetrics(options.registry);
  const scope = { chainId: chain.chainId, cluster: chain.cluster, appId: options.keys.appId };
  const store =
    options.stateDir === undefined
      ? createMemoryCursorStore()
      : createFileCursorStore(options.stateDir, scope);
  const watcherWith = (store: CursorStore) =>
    createMessageWatcher({
      reads: chain.reads,
      chainId: chain.chainId,
      cluster: chain.cluster,
      reader: options.reader,
      store,
      keyPair: x25519FromEd25519Seed(options.keys.identity.secret.reveal()),
      confirmations: options.confirmations,
      logger,
      metrics,
      memberId: options.memberId,
      knownMember: options.knownMember,
      ...(options.certified === undefined ? {} : { certified: options.certified }),
      ...(options.senderRefused === undefined ? {} : { senderRefused: options.senderRefused }),
      deliver: options.deliver,
      startBlock: options.startBlock === undefined ? undefined : BigInt(options.startBlock),
    });
  let watcher = watcherWith(store);
  try {
    await watcher.init();
  } catch (error) {
    // A state directory that cannot be used must not keep the node out of the mesh: say so, and keep
    // the cursor in memory (messages sent while the node is down are then not replayed).
    if (!isAttestmeshError(error, "CursorUnwritable") && !isAttestmeshError(error, "CursorUnreadable"))
      throw error;
    logger.error(
      { err: error, cursor: store.path },
      "the message cursor cannot be kept in ATTESTMESH_STATE_DIR; keeping it in memory (fix the directory and restart to replay missed messages)",
    );
    watcher = watcherWith(createMemoryCursorStore());
    await watcher.init();
  }
  const sender = createMessageSender({
    chain,
    reader: options.reader,
    keys: options.keys,
    logger,
    metrics,
    memberId: options.memberId,
    knownMember: options.knownMember,
  });
  const interval = options.pollInterval ?? (() => options.pollIntervalMs);
  let woken: (() => void) | undefined;
  const stopped = (async () => {
    while (!signal.aborted) {
      try {
        await watcher.pass();
      } catch (err) {
        logger.warn({ err }, "reading sealed messages failed; retrying at the next poll");
      }
      await new Promise<void>((resolve) => {
        woken = resolve;
        void sleepToBeat(interval(), signal).then(resolve);
      });
      woken = undefined;
    }
  })();
  return { sender, watcher, stopped, wake: () => woken?.() };
}
