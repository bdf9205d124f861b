// The sidecar's phase as one pure function of the facts it knows. Every stage reports facts (the
// lifecycle: booted, registered; the reconciler: WireGuard and handshakes; the mesh layer: the CSK
// held and convergence); nobody sets a phase. The first unmet condition, in this order, names it:
//
//   booting         deriving keys through dstack, checking the chain and the cluster
//   registering     not an active member yet: registering, or waiting for the owner to allow it
//   waiting-peers   registered; waiting for the confirmed membership (head − confirmations) to list it
//   wg-configuring  bringing the interface up and applying peers; then waiting for a handshake with
//                   every desired peer
//   pulling-csk     every desired peer has completed a handshake (a lone member: its interface is up);
//                   waiting for the mesh socket, then the CSK of the chain's current epoch
//   heartbeating    the CSK is held; waiting for the mesh to converge (every live member reports the
//                   same live set)
//   healthy         registered, mesh configured, current-epoch CSK held, converged. A lone member is
//                   healthy once its interface is up and it holds the CSK: a one-node cluster is valid.

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

/** Where WireGuard stands for this membership. */
export type WireGuardState = "down" | "configuring" | "configured";

export interface PhaseFacts {
  /** Keys derived through dstack and the chain checked. */
  readonly booted: boolean;
  /** This node has a member id (its registration landed, or an active one was found). */
  readonly registered: boolean;
  /** down until the confirmed membership lists it; configured once the interface is up and peers applied. */
  readonly wireguard: WireGuardState;
  /** Desired peers, and how many of them completed a WireGuard handshake. */
  readonly peers: number;
  readonly handshaken: number;
  /** The mesh socket of this membership is open (heartbeats and CSK exchange run). */
  readonly meshRunning: boolean;
  /** The CSK of the chain's current epoch is held. */
  readonly cskHeld: boolean;
  /** The chain's current CSK epoch, as last read. */
  readonly chainCskEpoch: bigint | undefined;
  /** Every live member reports the same live set. */
  readonly converged: boolean;
}

export interface PhaseVerdict {
  readonly phase: Phase;
  /** Why, for the transition's log line. */
  readonly reason: string;
}

export function phaseOf(facts: PhaseFacts): PhaseVerdict {
  if (!facts.booted) return { phase: "booting", reason: "deriving keys and checking the chain" };
  if (!facts.registered) return { phase: "registering", reason: "not an active member yet" };
  if (facts.wireguard === "down")
    return { phase: "waiting-peers", reason: "registered; waiting for the confirmed membership" };
  if (facts.wireguard === "configuring")
    return { phase: "wg-configuring", reason: "bringing up the interface and applying peers" };
  if (facts.handshaken < facts.peers) {
    return {
      phase: "wg-configuring",
      reason: `${facts.peers - facts.handshaken} of ${facts.peers} peers have not completed a handshake`,
    };
  }
  if (!facts.meshRunning) return { phase: "pulling-csk", reason: "mesh socket not open yet" };
  if (!facts.cskHeld) {
    return {
      phase: "pulling-csk",
      reason:
        facts.chainCskEpoch === undefined
          ? "reading the CSK epoch"
          : `waiting for the CSK of epoch ${facts.chainCskEpoch}`,
    };
  }
  if (!facts.converged)
    return { phase: "heartbeating", reason: "live members do not agree on the live set yet" };
  return {
    phase: "healthy",
    reason:
      facts.peers === 0
        ? "no other members: a lone member is healthy"
        : "every peer handshook, the CSK is held and the mesh converged",
  };
}
