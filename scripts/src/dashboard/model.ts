// What the dashboard's JSON API serves and its page draws: plain data, type imports only, so the page's
// bundle shares these types with the server. Big numbers (wei, blocks, epochs, ids) are decimal strings.

import type { MemberStanding } from "@attestmesh/shared/contracts/standing.ts";

/** A field the project cannot fill yet, with the reason the page shows instead of a value. */
export interface NotAvailable {
  readonly available: false;
  readonly reason: string;
}

export type LinkState = "handshaken" | "silent" | "missing" | "unknown";
export type LinkPath = "udp" | "gateway" | "unknown";

/** What a member's own /healthz said at the last poll (null fields: it did not say). */
export interface MemberHealth {
  readonly reachable: boolean;
  readonly phase: string;
  readonly account: string | null;
  readonly cskEpoch: string | null;
  readonly cskAcquired: boolean;
  readonly livePeers: number;
  readonly desiredPeers: number;
  readonly handshakenPeers: number;
  readonly converged: boolean;
  readonly indexerSubscribed: boolean;
  readonly lastError: string | null;
  readonly checkedAt: string;
}

/** Whether the policy would admit the member again now (IMemberStanding.Standing, `members` column). */
export type { MemberStanding };

/**
 * The last check of the member's own attestation (GET /attestation?nonce= on its health port, verified
 * the way `attestmesh attest` does). `verified`: every check passed; `refused`: a check failed (named in
 * `detail`); `unreachable`: no document came back; `unchecked`: no endpoint is known or none was asked yet.
 */
export interface AttestationStatus {
  readonly state: "verified" | "refused" | "unreachable" | "unchecked";
  /** "SIMULATED" evidence (the devnet's dstack simulator) proves nothing about hardware. */
  readonly evidence: "tdx" | "SIMULATED" | null;
  readonly detail: string | null;
  /** When it was last asked (ISO), and when a check last passed. */
  readonly checkedAt: string | null;
  readonly lastVerifiedAt: string | null;
}

export interface MemberCard {
  readonly memberId: string;
  readonly appId: string;
  readonly meshIp: string;
  readonly status: "none" | "active" | "left" | "evicted";
  readonly registeredAt: string;
  readonly endedAt: string | null;
  readonly endReason: number | null;
  readonly memberKey: string;
  readonly wireguardKey: string;
  readonly identityKey: string;
  /** The KMS root that admitted it (its MemberRegistered event), and whether the policy allows it now. */
  readonly kmsRoot: string | null;
  readonly kmsRootAllowed: boolean | null;
  /** What it stated at registration and the chain recorded (null: registered before claims were recorded). */
  readonly composeHash: string | null;
  readonly composeHashAllowed: boolean | null;
  /** The device id it stated (null when the chain keeps only its fingerprint and no log names it). */
  readonly deviceId: string | null;
  readonly deviceFingerprint: string | null;
  /** Whether the policy allows that device now (any device allowed counts), and its revocation (ISO). */
  readonly deviceAllowed: boolean | null;
  readonly deviceRevokedAt: string | null;
  /** The chain's own verdict: would the policy admit it again now. */
  readonly standing: MemberStanding;
  /** Whether its app id is allowlisted now; the revocation time (ISO) when revoked. */
  readonly appIdAllowed: boolean;
  readonly appIdRevokedAt: string | null;
  /** ERC-4337 account its sponsored writes come from (factory event or its /healthz). */
  readonly account: string | null;
  readonly spendWei: string | null;
  /** null: no /healthz URL is known for it. */
  readonly health: MemberHealth | null;
  readonly attestation: AttestationStatus;
}

export interface LinkView {
  /** Member ids, a < b numerically. */
  readonly a: string;
  readonly b: string;
  readonly state: LinkState;
  readonly path: LinkPath;
  /** Member ids whose /healthz described this link. */
  readonly reportedBy: readonly string[];
}

export interface LinkSummary {
  readonly pairs: number;
  readonly handshaken: number;
  readonly silent: number;
  readonly missing: number;
  readonly unknown: number;
  /** False when there were too many healthy links to send: only the problem links are in `links`. */
  readonly handshakenIncluded: boolean;
}

export interface CskCommitView {
  readonly memberId: string;
  readonly commitment: string;
  readonly block: string;
  readonly at: string | null;
}

export interface CskEpochView {
  readonly epoch: string;
  /** The member whose departure opened the epoch; null for the first epoch (opened by the first registration). */
  readonly causeMemberId: string | null;
  readonly causeStatus: string | null;
  readonly openedBlock: string | null;
  readonly openedAt: string | null;
  readonly commits: readonly CskCommitView[];
}

export interface PolicyEventView {
  readonly block: string;
  readonly logIndex: number;
  readonly transactionHash: string;
  readonly name: string;
  readonly args: Readonly<Record<string, unknown>>;
  readonly at: string | null;
}

export interface PolicyNow {
  readonly allowAnyDevice: boolean;
  readonly composeHashes: readonly string[];
  readonly deviceIds: readonly string[];
  readonly appIds: readonly string[];
  readonly kmsRoots: readonly string[];
  readonly appIdRevocations: ReadonlyArray<{ appId: string; revokedAt: string; reason: string }>;
  readonly deviceRevocations: ReadonlyArray<{ deviceId: string; revokedAt: string; reason: string }>;
}

export type DriftKind =
  | "app-id-revoked"
  | "app-id-withdrawn"
  | "kms-root-withdrawn"
  | "compose-withdrawn"
  | "device-revoked"
  | "device-not-allowed";

export interface DriftItem {
  readonly kind: DriftKind;
  readonly memberId: string;
  readonly detail: string;
  /** The CLI command that acts on it (the dashboard itself never writes). */
  readonly command: string;
}

export interface SpendView {
  readonly available: true;
  readonly paymaster: string;
  readonly totalWei: string;
  readonly perMember: ReadonlyArray<{ memberId: string | null; account: string; wei: string }>;
  /** UTC days (YYYY-MM-DD), oldest first. */
  readonly perDay: ReadonlyArray<{ day: string; wei: string }>;
}

/** A registered indexer (the registry's `indexers()`) and what its public GET /healthz says. */
export interface IndexerView {
  readonly endpoint: string;
  readonly signingKey: string;
  readonly appId: string;
  readonly codeId: string;
  /** Whether its /healthz answered, with the registered signing key (another key is another process). */
  readonly reachable: boolean;
  readonly keyMatches: boolean | null;
  /** It says it follows the cluster's chain (its own judgement, unsigned: shown, never trusted). */
  readonly following: boolean | null;
  readonly head: string | null;
  readonly lastSeq: string | null;
  readonly subscribers: number | null;
  readonly checkedAt: string | null;
}

/** Which cluster the dashboard shows: the chain's facts and the view both start with it. */
export interface ClusterIdentity {
  readonly network: string;
  readonly chainId: number;
  readonly cluster: string;
  readonly owner: string;
}

export interface DashboardView {
  readonly generatedAt: string;
  readonly chain: ClusterIdentity & { readonly block: string; readonly fromBlock: string };
  readonly members: readonly MemberCard[];
  readonly links: readonly LinkView[];
  readonly linkSummary: LinkSummary;
  readonly csk: {
    /** The chain's current epoch; commitment and committer null until a member commits it. */
    readonly current: { epoch: string; commitment: string | null; committer: string | null } | null;
    readonly epochs: readonly CskEpochView[];
  };
  readonly policy: {
    readonly now: PolicyNow;
    readonly events: readonly PolicyEventView[];
    readonly drift: readonly DriftItem[];
  };
  readonly spend: SpendView | NotAvailable;
  /** Every registered indexer, oldest first (empty: the cluster runs on polling alone). */
  readonly indexers: readonly IndexerView[];
  /** Where the data came from this time, for the page's footer. */
  readonly sources: {
    readonly healthEndpoints: number;
    readonly healthReachable: number;
    /** What woke the last read: an indexer's advance, or the polling interval. */
    readonly updates: string;
    /** How the chain was read: one RPC, or a quorum of several (`--rpc` given more than once). */
    readonly reads: string;
  };
}
