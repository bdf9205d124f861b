// The application API as the sidecar wires it: the two hubs (received messages, peer events), the
// peer-event poller and, when ATTESTMESH_API_SOCKET is set, the socket server. Parts that exist only
// later in the boot (keys, the message sender) are attached when they are ready; until then the API
// answers with what it has (and 503 for sending).
import type { Logger } from "../log.ts";
import type { MessageSender } from "../messages/sender.ts";
import type { ReceivedMessage } from "../messages/types.ts";
import type { SidecarStatus } from "../status.ts";
import { createHub, type Hub } from "./hub.ts";
import { type PeerEvent, watchPeerEvents } from "./peerEvents.ts";
import { type CskReader, handshakeLiveness, type PeerLiveness } from "./providers.ts";
import { type ApiServer, type SelfKeys, startApiServer } from "./server.ts";
import { resolveGroup } from "./socket.ts";

/** Received messages kept for subscribers that connect later (`?since=`). */
export const RETAINED_MESSAGES = 256;
/** Peer events kept for subscribers that reconnect. */
export const RETAINED_PEER_EVENTS = 256;

export interface AppApi {
  readonly messages: Hub<ReceivedMessage>;
  readonly peerEvents: Hub<PeerEvent>;
  /** The socket path, when the API listens. */
  readonly socketPath: string | undefined;
  setSelfKeys(keys: SelfKeys): void;
  /** Replaces the liveness source (the heartbeat module, once it runs). */
  setPeerLiveness(liveness: PeerLiveness): void;
  /** Attaches the cluster shared key holder (the CSK module, once it runs). */
  setCskHolder(holder: CskReader): void;
  setSender(sender: MessageSender): void;
  /** Publishes a received message to every messages stream. */
  deliver(message: ReceivedMessage): void;
  close(): Promise<void>;
}

export async function startAppApi(options: {
  readonly socketPath: string | undefined;
  readonly socketGroup: string | undefined;
  readonly queueLength: number;
  readonly status: () => SidecarStatus;
  readonly liveness?: PeerLiveness | undefined;
  readonly csk?: CskReader | undefined;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** How often peer liveness is compared for peer events; default 1,000 ms. */
  readonly peerEventIntervalMs?: number;
}): Promise<AppApi> {
  const { logger } = options;
  const messages = createHub<ReceivedMessage>({
    retain: RETAINED_MESSAGES,
    queueLength: options.queueLength,
  });
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
  if (options.socketPath !== undefined) {
    server = await startApiServer({
      path: options.socketPath,
      gid: options.socketGroup === undefined ? undefined : resolveGroup(options.socketGroup),
      deps: {
        status: options.status,
        selfKeys: () => selfKeys,
        liveness: () => liveness,
        csk: () => csk,
        sender: () => sender,
        messages,
        peerEvents,
        logger,
      },
    });
  } else {
    logger.info("ATTESTMESH_API_SOCKET is not set: the application API is off");
  }
  return {
    messages,
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
      messages.publish(message);
    },
    async close() {
      poller.check();
      await server?.close();
    },
  };
}
