// What the sidecar knows about itself right now, as plain data: its phase and the facts /healthz
// reports. Phase changes are logged here, once each, so every transition leaves one log line.
//
// Phases, in order (DESIGN.md):
//   booting         deriving keys through dstack, checking the chain and the cluster
//   registering     not an active member yet: registering, or waiting for the owner to allow it
//   waiting-peers   registered; waiting for the confirmed membership (head − confirmations) to list it
//   wg-configuring  interface up and peers applied; waiting for a handshake with every desired peer
//   pulling-csk     every desired peer has completed a handshake (a lone member: its interface is up);
//                   waiting for the CSK of the chain's current epoch (committing it, or pulling it)
//   heartbeating    the CSK is held; waiting for the mesh to converge (every live member reports the
//                   same live set)
//   healthy         registered, mesh configured, current-epoch CSK held, converged. A lone member is
//                   healthy once its interface is up and it committed the CSK: a one-node cluster is valid.
import type { Address } from "viem";
import type { Logger } from "./log.ts";
import type { DroppedRecord } from "./model/peer.ts";
import type { PeerTransportReport } from "./transport/peers.ts";

export const PHASES = [
  "booting",
  "registering",
  "waiting-peers",
  "wg-configuring",
  "pulling-csk",
  "heartbeating",
  "healthy",
] as const;
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
  /** The address this node's writes come from: its member account (sponsored) or its gas key. */
  readonly account: Address | undefined;
  readonly memberId: bigint | undefined;
  readonly meshIp: string | undefined;
  readonly wireguardPublicKey: string | undefined;
  readonly interfaceUp: boolean;
  readonly peers: readonly PeerReport[];
  readonly droppedRecords: readonly DroppedRecord[];
  readonly lastReconcileBlock: bigint | undefined;
  readonly lastReconcileAt: number | undefined;
  readonly lastError: { readonly code: string; readonly message: string; readonly at: number } | undefined;
  /** Epoch of the CSK held, if any. */
  readonly cskEpoch: bigint | undefined;
  /** keccak256 of the CSK held (public: it is the on-chain commitment). */
  readonly cskCommitment: string | undefined;
  /** The CSK of the chain's current epoch is held. */
  readonly cskAcquired: boolean;
  /** The chain's current CSK epoch, as last read. */
  readonly chainCskEpoch: bigint | undefined;
  /** Heartbeats per active peer. */
  readonly meshPeers: readonly MeshPeerReport[];
  readonly converged: boolean;
  /** True only while a verified indexer subscription is up. */
  readonly indexerSubscribed: boolean;
  /** The block of the last indexer push that passed verification. */
  readonly lastVerifiedPushBlock: bigint | undefined;
}

export interface MeshPeerReport {
  readonly memberId: bigint;
  readonly live: boolean;
  /** Wall-clock ms of the last counted heartbeat. */
  readonly lastHeartbeat: number | undefined;
  /** That heartbeat as sent: the CSK epoch it named, whether it held it, counter, sender's time, heard set. */
  readonly heartbeat?: {
    readonly epoch: bigint;
    readonly holdsCsk: boolean;
    readonly counter: bigint;
    readonly sentAtMs: bigint;
    readonly heard: readonly bigint[];
  };
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
    account: undefined,
    memberId: undefined,
    meshIp: undefined,
    wireguardPublicKey: undefined,
    interfaceUp: false,
    peers: [],
    droppedRecords: [],
    lastReconcileBlock: undefined,
    lastReconcileAt: undefined,
    lastError: undefined,
    cskEpoch: undefined,
    cskCommitment: undefined,
    cskAcquired: false,
    chainCskEpoch: undefined,
    meshPeers: [],
    converged: false,
    indexerSubscribed: false,
    lastVerifiedPushBlock: undefined,
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
