// What the liveness layer publishes (heartbeat/swim.ts implements it): changes in who is live, in who
// is a peer (the directory) and in convergence, as `HeartbeatEvent`s, in that order within one
// evaluation: joins, liveness, departures, convergence. The application API turns them into its
// `PeerEvent`s; it reads no view of its own.
import type { Address } from "viem";

export type HeartbeatEvent =
  /** A member became a peer of this node (it entered the directory, or the service started). */
  | { readonly type: "peer-joined"; readonly peer: LivePeer; readonly at: number }
  /** A member is no longer a peer (it left the directory, or the service stopped); `peer` is its last entry. */
  | { readonly type: "peer-left"; readonly peer: LivePeer; readonly at: number }
  | { readonly type: "peer-live"; readonly memberId: bigint; readonly at: number }
  | { readonly type: "peer-lost"; readonly memberId: bigint; readonly at: number }
  | { readonly type: "converged"; readonly live: readonly bigint[]; readonly at: number }
  | { readonly type: "diverged"; readonly at: number };

export interface LivePeer {
  readonly memberId: bigint;
  readonly appId: Address;
  readonly meshIp: string;
  readonly live: boolean;
  /** Wall-clock ms of the last datagram this node counted from it; undefined if none yet. */
  readonly lastHeartbeatMs: number | undefined;
  readonly epoch: bigint | undefined;
  readonly holdsCsk: boolean;
  /**
   * Its incarnation number as this node knows it (the liveness protocol's counter), the wall-clock ms
   * of its last counted datagram, and `heard`, always empty since the live set travels as a digest.
   */
  readonly counter: bigint | undefined;
  readonly sentAtMs: bigint | undefined;
  readonly heard: readonly bigint[];
}

/** The read side, for the status report and the application API. */
export interface PeerTable {
  /** Every active member but this node, ascending by id. */
  peers(): LivePeer[];
  /** Live peer ids, ascending. */
  live(): bigint[];
  converged(): boolean;
  onEvent(listener: (event: HeartbeatEvent) => void): () => void;
}

export interface Clock {
  wallMs(): number;
  monoMs(): number;
}

export const systemClock: Clock = { wallMs: () => Date.now(), monoMs: () => performance.now() };
