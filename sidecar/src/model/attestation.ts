// A peer's re-attestation state (reattest/scheduler.ts), as the status, /healthz, the application API,
// metrics and the devnet table read it.

export type AttestationStatus = "pending" | "passed" | "failed" | "unreachable";

/** One peer's re-attestation state, as /healthz, the app API, metrics and the devnet table show it. */
export interface PeerAttestation {
  readonly memberId: bigint;
  readonly status: AttestationStatus;
  /** "simulated" evidence is labelled wherever it is shown. */
  readonly kind?: "tdx" | "simulated";
  readonly reason?: string;
  readonly detail?: string;
  readonly composeHash?: string;
  readonly deviceId?: string;
  readonly tcbStatus?: string;
  /** Wall ms of the last verification (a fetched quote judged). */
  readonly verifiedAt?: number;
  /** Wall ms of the next scheduled check. */
  readonly nextAt: number;
  /** Verifications (quotes judged) so far. */
  readonly verifications: number;
}
