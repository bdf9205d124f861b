// One authenticated subscriber: a cursor into its cluster's shared history, a window of envelopes
// sent but not acknowledged, and the member filter (a MessageSent log reaches its recipient only).
// Memory per subscriber is bounded: nothing is copied per subscriber beyond the window, and a
// subscriber whose window stays full for `ackTimeoutMs`, whose socket holds more than
// `maxBufferedBytes`, or whose cursor fell out of the retained history is cut off (close 4008).
import { CLOSE } from "@attestmesh/shared/indexer/protocol.ts";
import type { WebSocket } from "ws";
import type { ClusterStream } from "./stream.ts";

export interface SessionLimits {
  readonly window: number;
  readonly ackTimeoutMs: number;
  readonly maxBufferedBytes: number;
}

export interface Session {
  readonly memberId: bigint;
  readonly stream: ClusterStream;
  /** Sends what the window allows; cuts the subscriber off when it is too far behind. */
  pump(): void;
  ack(seq: bigint): void;
  /** The socket closed: stop timers. */
  close(): void;
  /** The seq delivery continues after. */
  position(): bigint;
}

export function createSession(options: {
  readonly ws: WebSocket;
  readonly stream: ClusterStream;
  readonly memberId: bigint;
  /** Deliver envelopes with seq greater than this. */
  readonly after: bigint;
  readonly limits: SessionLimits;
  readonly onSent: (count: number) => void;
  readonly onCutOff: (reason: string) => void;
}): Session {
  const { ws, stream, memberId, limits } = options;
  let next = options.after + 1n;
  /** Seqs sent and not yet acknowledged, ascending. */
  const unacked: bigint[] = [];
  let closed = false;
  /** Runs while the window is full; an acknowledgement stops it. */
  let stallTimer: NodeJS.Timeout | undefined;

  function cutOff(reason: string): void {
    if (closed) return;
    closed = true;
    clearTimeout(stallTimer);
    options.onCutOff(reason);
    ws.close(CLOSE.tooSlow, reason);
    // A stalled peer may never complete the closing handshake; do not wait for it.
    setTimeout(() => ws.terminate(), 2000).unref();
  }

  const session: Session = {
    memberId,
    stream,
    position: () => next - 1n,
    pump() {
      if (closed || ws.readyState !== ws.OPEN) return;
      let sent = 0;
      while (unacked.length < limits.window && next <= stream.lastSeq()) {
        const stored = stream.get(next);
        if (stored === undefined) {
          cutOff("fell behind the retained history");
          return;
        }
        next += 1n;
        if (stored.recipient !== undefined && stored.recipient !== memberId) continue;
        ws.send(stored.frame);
        unacked.push(stored.seq);
        sent += 1;
      }
      if (sent > 0) options.onSent(sent);
      if (ws.bufferedAmount > limits.maxBufferedBytes) {
        cutOff("socket buffer limit reached");
      } else if (unacked.length >= limits.window && stallTimer === undefined) {
        stallTimer = setTimeout(() => cutOff("window full, no acknowledgement in time"), limits.ackTimeoutMs);
        stallTimer.unref();
      }
    },
    ack(seq) {
      const before = unacked.length;
      while (unacked.length > 0 && unacked[0]! <= seq) unacked.shift();
      if (unacked.length < before) {
        clearTimeout(stallTimer);
        stallTimer = undefined;
      }
      session.pump();
    },
    close() {
      closed = true;
      clearTimeout(stallTimer);
    },
  };
  return session;
}
