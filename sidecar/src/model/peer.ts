// The peers this node should have, as plain data: computed by reconcile/desired.ts, read by transport/
// (which path each takes) and status.ts (what /healthz reports).
import type { Address } from "viem";
import type { PeerConfig } from "./wireguard.ts";

/** A desired peer with the member it stands for. */
export interface DesiredPeer {
  readonly memberId: bigint;
  readonly appId: Address;
  /** Dotted mesh address. */
  readonly meshIp: string;
  readonly config: PeerConfig;
}

export interface DroppedRecord {
  readonly memberId: bigint;
  readonly reason: string;
}
