// What the sidecar knows about itself right now, as plain data: its phase and the facts /healthz
// reports. Phase changes are logged here, once each, so every transition leaves one log line.
// The phase is not set by anyone: it is `phaseOf` (phase.ts) of the facts here, recomputed on every
// update.
import type { Address } from "viem";
import type { Logger } from "./log.ts";
import type { PeerAttestation } from "./model/attestation.ts";
import type { DroppedRecord } from "./model/peer.ts";
import { type Phase, type PhaseFacts, phaseOf, type WireGuardState } from "./phase.ts";
import type { PeerTransportReport } from "./transport/peers.ts";

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
  /** Keys derived and the chain checked: registration under way or done. */
  readonly booted: boolean;
  /** down until the confirmed membership lists this node; configured once its peers are applied. */
  readonly wireguard: WireGuardState;
  readonly interfaceUp: boolean;
  readonly peers: readonly PeerReport[];
  readonly droppedRecords: readonly DroppedRecord[];
  readonly lastReconcileBlock: bigint | undefined;
  readonly lastReconcileAt: number | undefined;
  readonly lastError: { readonly code: string; readonly message: string; readonly at: number } | undefined;
  /**
   * The interface went away by itself and is being brought back (reconcile/restarts.ts), until it has
   * stayed up for a while: why it last went, the failures in a row, and while a repeat backs off, the
   * time (ms since the epoch) before which no new attempt runs.
   */
  readonly wireguardRestart: WireGuardRestartReport | undefined;
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
  /** The mesh socket of this membership is open. */
  readonly meshRunning: boolean;
  /** Each peer's re-attestation (reattest/scheduler.ts), refused ones included. */
  readonly peerAttestations: readonly PeerAttestation[];
  /** True only while a verified indexer subscription is up. */
  readonly indexerSubscribed: boolean;
  /** The block of the last indexer push that passed verification. */
  readonly lastVerifiedPushBlock: bigint | undefined;
  /** Each indexer subscribed to: whether it is up, its last verified push, its lag. */
  readonly indexers: readonly IndexerLinkReport[];
}

export interface WireGuardRestartReport {
  /**
   * daemon-exited or interface-gone (attestmesh_wireguard_restarts_total's reasons), restart-failed, or
   * start-failed (the interface never came up: wireguard-go missing or dying at start).
   */
  readonly reason: string;
  /** Losses, and attempts that did not bring the interface up, since it last stayed up. */
  readonly failures: number;
  readonly nextAttemptAt: number | undefined;
}

/** One indexer subscription, as the intake reports it. */
export interface IndexerLinkReport {
  readonly endpoint: string;
  readonly signingKey: string;
  readonly subscribed: boolean;
  readonly lastVerifiedPushBlock: bigint | undefined;
  readonly lateLogs: number;
  readonly lagging: boolean;
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
  /** Merges `patch`, then moves to the phase its facts now give (logging the transition with its reason). */
  update(patch: StatusPatch): void;
}

/** The facts `phaseOf` reads, as the status holds them. */
export function phaseFacts(status: SidecarStatus): PhaseFacts {
  return {
    booted: status.booted,
    registered: status.memberId !== undefined,
    wireguard: status.wireguard,
    peers: status.peers.length,
    handshaken: status.peers.filter((p) => p.latestHandshake > 0).length,
    meshRunning: status.meshRunning,
    cskHeld: status.cskAcquired,
    chainCskEpoch: status.chainCskEpoch,
    converged: status.converged,
  };
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
    booted: false,
    wireguard: "down",
    interfaceUp: false,
    peers: [],
    droppedRecords: [],
    lastReconcileBlock: undefined,
    lastReconcileAt: undefined,
    lastError: undefined,
    wireguardRestart: undefined,
    cskEpoch: undefined,
    cskCommitment: undefined,
    cskAcquired: false,
    chainCskEpoch: undefined,
    meshPeers: [],
    peerAttestations: [],
    converged: false,
    meshRunning: false,
    indexerSubscribed: false,
    lastVerifiedPushBlock: undefined,
    indexers: [],
  };
  options.onPhase?.(status.phase);
  return {
    get: () => status,
    update(patch) {
      status = { ...status, ...patch };
      const { phase, reason } = phaseOf(phaseFacts(status));
      if (status.phase === phase) return;
      options.logger.info({ from: status.phase, to: phase, reason }, `phase ${status.phase} -> ${phase}`);
      status = { ...status, phase, phaseSince: now() };
      options.onPhase?.(phase);
    },
  };
}
