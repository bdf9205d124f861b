// What the dashboard's JSON API serves and its page draws: plain data, no imports, so the page's bundle
// shares these types with the server. Big numbers (wei, blocks, epochs, ids) are decimal strings.

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
  /** Whether its app id is allowlisted now; the revocation time (ISO) when revoked. */
  readonly appIdAllowed: boolean;
  readonly appIdRevokedAt: string | null;
  /** ERC-4337 account its sponsored writes come from (factory event or its /healthz). */
  readonly account: string | null;
  readonly spendWei: string | null;
  /** null: no /healthz URL is known for it. */
  readonly health: MemberHealth | null;
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

export type DriftKind = "app-id-revoked" | "app-id-withdrawn" | "kms-root-withdrawn";

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

export interface DashboardView {
  readonly generatedAt: string;
  readonly chain: {
    readonly network: string;
    readonly chainId: number;
    readonly cluster: string;
    readonly owner: string;
    readonly block: string;
    readonly fromBlock: string;
  };
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
  /** Fields the project does not provide yet, each with why (shown as "not available"). */
  readonly notAvailable: Readonly<Record<string, string>>;
  /** Where the data came from this time, for the page's footer. */
  readonly sources: {
    readonly healthEndpoints: number;
    readonly healthReachable: number;
    readonly indexer: string;
  };
}
