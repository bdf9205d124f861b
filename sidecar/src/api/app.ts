// The application API as the sidecar wires it: the message inbox (inbox.ts), the peer-event hub and
// poller and, when ATTESTMESH_API_SOCKET is set, the socket server. Parts that exist only later in the
// boot (keys, the message sender) are attached when they are ready; until then the API answers with
// what it has (and 503 for sending). Without a socket no application can read or acknowledge
// messages, so none are stored.
import type { Address } from "viem";
import { isAttestmeshError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { MessageSender } from "../messages/sender.ts";
import type { ReceivedMessage } from "../messages/types.ts";
import type { SidecarStatus } from "../status.ts";
import { createHub, type Hub } from "./hub.ts";
import { type Inbox, openInbox } from "./inbox.ts";
import { type PeerEvent, watchPeerEvents } from "./peerEvents.ts";
import { type CskReader, handshakeLiveness, type PeerLiveness } from "./providers.ts";
import { type ApiServer, type SelfKeys, startApiServer } from "./server.ts";
import { resolveGroup } from "./socket.ts";

/** Peer events kept for subscribers that reconnect. */
export const RETAINED_PEER_EVENTS = 256;

export interface AppApi {
  /** Received messages until the application acknowledges them; undefined when the API is off. */
  readonly inbox: Inbox | undefined;
  readonly peerEvents: Hub<PeerEvent>;
  /** The socket path, when the API listens. */
  readonly socketPath: string | undefined;
  setSelfKeys(keys: SelfKeys): void;
  /** Replaces the liveness source (the heartbeat module, once it runs). */
  setPeerLiveness(liveness: PeerLiveness): void;
  /** Attaches the cluster shared key holder (the CSK module, once it runs). */
  setCskHolder(holder: CskReader): void;
  setSender(sender: MessageSender): void;
  /**
   * Stores a received message in the inbox (durably, before returning) and wakes the message streams;
   * its sequence number, or undefined for an envelope stored before or when the API is off. Throws
   * `InboxFull` / `InboxUnwritable` (retryable): the caller must not move past the message then.
   */
  deliver(message: ReceivedMessage): number | undefined;
  close(): Promise<void>;
}

export async function startAppApi(options: {
  readonly socketPath: string | undefined;
  readonly socketGroup: string | undefined;
  readonly queueLength: number;
  /** Where the inbox lives (ATTESTMESH_STATE_DIR); undefined keeps it in memory. */
  readonly stateDir: string | undefined;
  readonly cluster: Address;
  readonly inboxMaxMessages: number;
  readonly status: () => SidecarStatus;
  readonly liveness?: PeerLiveness | undefined;
  readonly csk?: CskReader | undefined;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** How often peer liveness is compared for peer events; default 1,000 ms. */
  readonly peerEventIntervalMs?: number;
}): Promise<AppApi> {
  const { logger } = options;
  const inbox = options.socketPath === undefined ? undefined : openAppInbox(options);
  const peerEvents = createHub<PeerEvent>({ retain: RETAINED_PEER_EVENTS, queueLength: options.queueLength });
  let liveness = options.liveness ?? handshakeLiveness(options.status);
  let csk = options.csk;
  let selfKeys: SelfKeys | undefined;
  let sender: MessageSender | undefined;
  const poller = watchPeerEvents({
    liveness: () => liveness,
    intervalMs: options.peerEventIntervalMs ?? 1000,
    signal: options.signal,
    logger,
    publish: (event) => peerEvents.publish(event),
  });
  let server: ApiServer | undefined;
  if (options.socketPath !== undefined && inbox !== undefined) {
    try {
      server = await startApiServer({
        path: options.socketPath,
        gid: options.socketGroup === undefined ? undefined : resolveGroup(options.socketGroup),
        deps: {
          status: options.status,
          selfKeys: () => selfKeys,
          liveness: () => liveness,
          csk: () => csk,
          sender: () => sender,
          inbox,
          peerEvents,
          logger,
        },
      });
    } catch (error) {
      inbox.close();
      throw error;
    }
  } else {
    logger.info("ATTESTMESH_API_SOCKET is not set: the application API is off");
  }
  return {
    inbox,
    peerEvents,
    socketPath: server?.path,
    setSelfKeys(keys) {
      selfKeys = keys;
    },
    setPeerLiveness(value) {
      liveness = value;
      poller.check();
    },
    setCskHolder(value) {
      csk = value;
    },
    setSender(value) {
      sender = value;
    },
    deliver(message) {
      return inbox?.store(message);
    },
    async close() {
      poller.check();
      await server?.close();
      inbox?.close();
    },
  };
}

/**
 * The inbox in the state directory. A directory that cannot be used at all falls back to memory (the
 * node must not stay out of the mesh over it; delivery then survives no restart), while a file that
 * is corrupt, another cluster's or in use is refused: it may hold messages the application has not
 * acknowledged, and only the operator can decide what becomes of them.
 */
function openAppInbox(options: {
  readonly stateDir: string | undefined;
  readonly cluster: Address;
  readonly inboxMaxMessages: number;
  readonly logger: Logger;
}): Inbox {
  const { logger } = options;
  const open = (stateDir: string | undefined) =>
    openInbox({ stateDir, cluster: options.cluster, maxMessages: options.inboxMaxMessages });
  let inbox: Inbox;
  try {
    inbox = open(options.stateDir);
  } catch (error) {
    if (!isAttestmeshError(error, "InboxUnusable")) throw error;
    logger.error(
      { err: error },
      "the message inbox cannot be kept in ATTESTMESH_STATE_DIR; keeping it in memory (messages the application has not acknowledged are lost if the sidecar stops; fix the directory and restart)",
    );
    inbox = open(undefined);
  }
  logger.info(
    {
      inbox: inbox.path ?? "memory",
      space: inbox.space,
      lastSeq: inbox.lastSeq(),
      acked: inbox.acked(),
      pending: inbox.pending(),
    },
    "message inbox open",
  );
  return inbox;
}
