// What the sidecar knows about itself right now, as plain data: its phase and the facts /healthz
// reports. Phase changes are logged here, once each, so every transition leaves one log line.
//
// Phases, in order (DESIGN.md; pulling-csk and heartbeating come with later work):
//   booting         deriving keys through dstack, checking the chain and the cluster
//   registering     not an active member yet: registering, or waiting for the owner to allow it
//   waiting-peers   registered; waiting for the confirmed membership (head − confirmations) to list it
//   wg-configuring  interface up and peers applied; waiting for a handshake with every desired peer
//   healthy         every desired peer has completed a handshake. A lone member (no other active
//                   members) is healthy once its interface is up: a one-node cluster is valid.
import type { Address } from "viem";
import type { Logger } from "./log.ts";
import type { DroppedRecord } from "./reconcile/desired.ts";
import type { PeerTransportReport } from "./transport/peers.ts";

export const PHASES = ["booting", "registering", "waiting-peers", "wg-configuring", "healthy"] as const;
export type Phase = (typeof PHASES)[number];

export interface PeerReport {
  readonly memberId: bigint;
  readonly appId: Address;
  readonly meshIp: string;
  readonly publicKey: string;
  readonly endpoint: string | undefined;
  /** Unix seconds of the latest completed handshake, 0 if none. */
  readonly latestHandshake: number;
  /** The path its traffic takes (gateway bridge or direct UDP), when the transport layer runs. */
  readonly transport?: PeerTransportReport;
}

export interface SidecarStatus {
  readonly phase: Phase;
  /** When the current phase began (ms since the epoch). */
  readonly phaseSince: number;
  readonly appId: Address | undefined;
  readonly memberId: bigint | undefined;
  readonly meshIp: string | undefined;
  readonly wireguardPublicKey: string | undefined;
  readonly interfaceUp: boolean;
  readonly peers: readonly PeerReport[];
  readonly droppedRecords: readonly DroppedRecord[];
  readonly lastReconcileBlock: bigint | undefined;
  readonly lastReconcileAt: number | undefined;
  readonly lastError: { readonly code: string; readonly message: string; readonly at: number } | undefined;
}

export type StatusPatch = Partial<Omit<SidecarStatus, "phase" | "phaseSince">>;

export interface StatusStore {
  get(): SidecarStatus;
  update(patch: StatusPatch): void;
  /** Moves to `phase` (a no-op when already there) and logs the transition with its reason. */
  setPhase(phase: Phase, reason: string): void;
}

export function createStatusStore(options: {
  readonly logger: Logger;
  readonly onPhase?: (phase: Phase) => void;
  readonly now?: () => number;
}): StatusStore {
  const now = options.now ?? Date.now;
  let status: SidecarStatus = {
    phase: "booting",
    phaseSince: now(),
    appId: undefined,
    memberId: undefined,
    meshIp: undefined,
    wireguardPublicKey: undefined,
    interfaceUp: false,
    peers: [],
    droppedRecords: [],
    lastReconcileBlock: undefined,
    lastReconcileAt: undefined,
    lastError: undefined,
  };
  options.onPhase?.(status.phase);
  return {
    get: () => status,
    update(patch) {
      status = { ...status, ...patch };
    },
    setPhase(phase, reason) {
      if (status.phase === phase) return;
      options.logger.info({ from: status.phase, to: phase, reason }, `phase ${status.phase} -> ${phase}`);
      status = { ...status, phase, phaseSince: now() };
      options.onPhase?.(phase);
    },
  };
}
