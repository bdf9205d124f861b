// Turns what the chain and the members' /healthz said into the dashboard's view (model.ts). Pure: facts
// in, plain data out, so the tests drive it with synthetic clusters of any size without a chain.

import type { MemberRow } from "../owner/members.ts";
import { POLICY_EVENT_NAMES, rebuildPolicy } from "../owner/policyHistory.ts";
import { jsonSafe } from "../owner/transact.ts";
import type {
  AttestationStatus,
  ClusterIdentity,
  CskEpochView,
  DashboardView,
  DriftItem,
  DriftKind,
  IndexerView,
  LinkPath,
  LinkState,
  LinkSummary,
  LinkView,
  MemberCard,
  MemberHealth,
  NotAvailable,
  PolicyEventView,
  SpendView,
} from "./model.ts";

/** A decoded cluster log with its position (viem's parseEventLogs output has these fields). */
export interface FactLog {
  readonly eventName: string;
  readonly args: unknown;
  readonly blockNumber: bigint;
  readonly logIndex: number;
  readonly transactionHash: string;
}

/** The subset of a sidecar's GET /healthz body the dashboard reads (sidecar/src/health.ts). */
export interface HealthBody {
  readonly phase?: string;
  readonly appId?: string | null;
  readonly memberId?: string | null;
  readonly account?: string | null;
  readonly cskEpoch?: string | null;
  readonly cskAcquired?: boolean;
  readonly livePeers?: number;
  readonly desiredPeers?: number;
  readonly handshakenPeers?: number;
  readonly converged?: boolean;
  readonly indexerSubscribed?: boolean;
  readonly lastError?: { readonly code?: string; readonly message?: string } | null;
  readonly peers?: ReadonlyArray<{
    readonly memberId?: string;
    readonly latestHandshake?: number;
    readonly transport?: string;
  }>;
}

/** One member's health poll: the body, or null when its endpoint did not answer. */
export interface HealthPoll {
  readonly body: HealthBody | null;
  readonly checkedAtMs: number;
}

export interface SpendEntry {
  readonly sender: string;
  readonly wei: bigint;
  readonly blockNumber: bigint;
}

/** A registered indexer as the registry's `indexers()` returns it. */
export interface IndexerFact {
  readonly endpoint: string;
  readonly signingKey: string;
  readonly appId: string;
  readonly codeId: string;
}

/** What an indexer's public GET /healthz said at the last poll (indexers.ts); null body: no answer. */
export interface IndexerPoll {
  readonly body: {
    readonly signingKey?: string;
    readonly clusters?: ReadonlyArray<{
      readonly cluster?: string;
      readonly head?: string | null;
      readonly lastSeq?: string;
      readonly following?: boolean;
    }>;
    readonly subscribers?: number;
  } | null;
  readonly checkedAtMs: number;
}

/** What the live source adds beside the chain and the members' /healthz. */
export interface ViewExtras {
  /** Member id → its last attestation check. */
  readonly attestation?: ReadonlyMap<string, AttestationStatus>;
  /** Signing key (lowercase) → its /healthz poll. */
  readonly indexerHealth?: ReadonlyMap<string, IndexerPoll>;
  /** What woke this read. */
  readonly updates?: string;
}

export interface ChainFacts extends ClusterIdentity {
  readonly head: bigint;
  readonly fromBlock: bigint;
  readonly members: readonly MemberRow[];
  /** Every cluster log since `fromBlock`, any order. */
  readonly logs: readonly FactLog[];
  /** Block number → unix seconds, for the blocks of the logs (missing ones show no time). */
  readonly blockTimes: ReadonlyMap<bigint, number>;
  /** The policy views now (policySnapshot). */
  readonly policy: {
    readonly allowAnyDevice: boolean;
    readonly composeHashes: readonly string[];
    readonly deviceIds: readonly string[];
    readonly appIds: readonly string[];
    readonly kmsRoots: readonly string[];
  };
  /** Revocation times from the views (appIdRevokedAt / deviceRevokedAt), lowercase keys; 0 = not revoked. */
  readonly revokedAt: {
    readonly app: ReadonlyMap<string, bigint>;
    readonly device: ReadonlyMap<string, bigint>;
  };
  readonly currentCsk: {
    readonly epoch: bigint;
    readonly commitment: string;
    readonly committer: bigint;
  } | null;
  /** The registered indexers, oldest first. */
  readonly indexers?: readonly IndexerFact[];
  /** How the chain was read (one RPC, or a quorum), for the page's footer. */
  readonly reads?: string;
  /** Member account → its owner key (the member key), both lowercase, from the factory's events. */
  readonly accountOwners: ReadonlyMap<string, string>;
  readonly spend:
    | { readonly available: true; readonly paymaster: string; readonly entries: readonly SpendEntry[] }
    | NotAvailable;
}

/** Past this many member pairs, healthy links are counted but not sent (the problem links always are). */
export const LINK_SEND_LIMIT = 5_000;
/** WireGuard drops a session this long after its last handshake (REJECT_AFTER_TIME). */
export const HANDSHAKE_FRESH_SECONDS = 180;

const UNCHECKED: AttestationStatus = {
  state: "unchecked",
  evidence: null,
  detail: "no health endpoint known for this member",
  checkedAt: null,
  lastVerifiedAt: null,
};

const iso = (unixSeconds: number | undefined): string | null =>
  unixSeconds === undefined ? null : new Date(unixSeconds * 1000).toISOString();

const rank: Record<LinkState, number> = { unknown: 0, handshaken: 1, silent: 2, missing: 3 };

function healthOf(poll: HealthPoll | undefined): MemberHealth | null {
  if (poll === undefined) return null;
  const b = poll.body;
  return {
    reachable: b !== null,
    phase: b?.phase ?? "unreachable",
    account: b?.account ?? null,
    cskEpoch: b?.cskEpoch ?? null,
    cskAcquired: b?.cskAcquired ?? false,
    livePeers: b?.livePeers ?? 0,
    desiredPeers: b?.desiredPeers ?? b?.peers?.length ?? 0,
    handshakenPeers: b?.handshakenPeers ?? 0,
    converged: b?.converged ?? false,
    indexerSubscribed: b?.indexerSubscribed ?? false,
    lastError: b?.lastError ? `${b.lastError.code ?? "error"}: ${b.lastError.message ?? ""}` : null,
    checkedAt: new Date(poll.checkedAtMs).toISOString(),
  };
}

/**
 * The links between active members as their own reports describe them. Each reporter says, for every
 * other active member, handshaken (a handshake within 180 s), silent (a configured peer without one) or
 * missing (not configured at all). A pair takes the worst of its two reports; unknown when neither
 * member's /healthz answered. Path: gateway when either side says its traffic goes through the gateway.
 */
export function buildLinks(
  active: readonly MemberRow[],
  healthByMember: ReadonlyMap<string, HealthBody>,
  nowMs: number,
): { links: LinkView[]; summary: LinkSummary } {
  const ids = active.map((m) => m.memberId).sort((x, y) => Number(BigInt(x) - BigInt(y)));
  const n = ids.length;
  const index = new Map(ids.map((id, i) => [id, i]));
  // What reporter i says of peer j, in flat n×n arrays (1,000 members: 1 MB each, no per-pair objects):
  // state as its rank (missing unless reported otherwise), path 0 unknown / 1 udp / 2 gateway.
  const UNKNOWN = rank.unknown;
  const said = new Uint8Array(n * n);
  const via = new Uint8Array(n * n);
  const reporting = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const body = healthByMember.get(ids[i]!);
    if (body === undefined) continue;
    reporting[i] = 1;
    said.fill(rank.missing, i * n, (i + 1) * n);
    for (const peer of body.peers ?? []) {
      const j = peer.memberId === undefined ? undefined : index.get(peer.memberId);
      if (j === undefined) continue;
      const at = peer.latestHandshake ?? 0;
      const fresh = at > 0 && nowMs / 1000 - at < HANDSHAKE_FRESH_SECONDS;
      said[i * n + j] = fresh ? rank.handshaken : rank.silent;
      via[i * n + j] = peer.transport === "gateway" ? 2 : 1;
    }
  }
  const pairState = (i: number, j: number): number =>
    Math.max(reporting[i] ? said[i * n + j]! : UNKNOWN, reporting[j] ? said[j * n + i]! : UNKNOWN);
  const counts = { handshaken: 0, silent: 0, missing: 0, unknown: 0 };
  const byRank: LinkState[] = ["unknown", "handshaken", "silent", "missing"];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) counts[byRank[pairState(i, j)]!]++;
  const known = counts.handshaken + counts.silent + counts.missing;
  const handshakenIncluded = known <= LINK_SEND_LIMIT;
  const links: LinkView[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const state = byRank[pairState(i, j)]!;
      if (state === "unknown" || (state === "handshaken" && !handshakenIncluded)) continue;
      const paths = [reporting[i] ? via[i * n + j]! : 0, reporting[j] ? via[j * n + i]! : 0];
      const path: LinkPath = paths.includes(2) ? "gateway" : paths.includes(1) ? "udp" : "unknown";
      const reportedBy = [i, j].filter((k) => reporting[k]).map((k) => ids[k]!);
      links.push({ a: ids[i]!, b: ids[j]!, state, path, reportedBy });
    }
  }
  const pairs = (n * (n - 1)) / 2;
  return { links, summary: { pairs, ...counts, handshakenIncluded } };
}

function cskEpochs(facts: ChainFacts, statusOf: ReadonlyMap<string, string>): CskEpochView[] {
  const epochs = new Map<string, { opened?: FactLog; commits: FactLog[] }>();
  const entry = (epoch: string) => {
    let e = epochs.get(epoch);
    if (e === undefined) {
      e = { commits: [] };
      epochs.set(epoch, e);
    }
    return e;
  };
  for (const log of facts.logs) {
    const args = log.args as { epoch?: bigint };
    if (args.epoch === undefined) continue;
    if (log.eventName === "CskEpochOpened") entry(args.epoch.toString()).opened = log;
    else if (log.eventName === "CskCommitted") entry(args.epoch.toString()).commits.push(log);
  }
  const time = (log: FactLog) => iso(facts.blockTimes.get(log.blockNumber));
  return [...epochs.entries()]
    .sort(([x], [y]) => Number(BigInt(x) - BigInt(y)))
    .map(([epoch, e]) => {
      // The first epoch opens with the first registration: no departure caused it (cause 0).
      const raw = e.opened ? (e.opened.args as { causeMemberId: bigint }).causeMemberId : 0n;
      const cause = raw === 0n ? null : raw.toString();
      return {
        epoch,
        causeMemberId: cause,
        causeStatus: cause === null ? null : (statusOf.get(cause) ?? null),
        openedBlock: e.opened ? e.opened.blockNumber.toString() : null,
        openedAt: e.opened ? time(e.opened) : null,
        commits: e.commits
          .sort((x, y) => Number(x.blockNumber - y.blockNumber) || x.logIndex - y.logIndex)
          .map((c) => {
            const args = c.args as { memberId: bigint; commitment: string };
            return {
              memberId: args.memberId.toString(),
              commitment: args.commitment,
              block: c.blockNumber.toString(),
              at: time(c),
            };
          }),
      };
    });
}

function dayOf(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().slice(0, 10);
}

/** Registered indexers beside what their own /healthz says about the cluster. */
export function buildIndexers(
  facts: ChainFacts,
  polls: ReadonlyMap<string, IndexerPoll> | undefined,
): IndexerView[] {
  const cluster = facts.cluster.toLowerCase();
  return (facts.indexers ?? []).map((r) => {
    const poll = polls?.get(r.signingKey.toLowerCase());
    const body = poll?.body ?? null;
    const keyMatches = body === null ? null : body.signingKey?.toLowerCase() === r.signingKey.toLowerCase();
    // Another key on that endpoint is another process: nothing it says is about this indexer.
    const row = keyMatches ? body?.clusters?.find((c) => c.cluster?.toLowerCase() === cluster) : undefined;
    return {
      endpoint: r.endpoint,
      signingKey: r.signingKey,
      appId: r.appId,
      codeId: r.codeId,
      reachable: body !== null,
      keyMatches,
      following: row === undefined ? null : row.following === true,
      head: row?.head ?? null,
      lastSeq: row?.lastSeq ?? null,
      subscribers: keyMatches && typeof body?.subscribers === "number" ? body.subscribers : null,
      checkedAt: poll === undefined ? null : new Date(poll.checkedAtMs).toISOString(),
    };
  });
}

const STANDING_DRIFT: Partial<Record<string, DriftKind>> = {
  "device-revoked": "device-revoked",
  "device-not-allowed": "device-not-allowed",
  "compose-hash-not-allowed": "compose-withdrawn",
  "kms-root-not-allowed": "kms-root-withdrawn",
};

export function buildView(
  facts: ChainFacts,
  health: ReadonlyMap<string, HealthPoll>,
  nowMs: number,
  extras: ViewExtras = {},
): DashboardView {
  const lower = (s: string) => s.toLowerCase();
  const ordered = [...facts.logs].sort((x, y) =>
    x.blockNumber < y.blockNumber ? -1 : x.blockNumber > y.blockNumber ? 1 : x.logIndex - y.logIndex,
  );
  const admittedBy = new Map<string, string>();
  for (const log of ordered) {
    if (log.eventName !== "MemberRegistered") continue;
    const args = log.args as { memberId: bigint; kmsRoot: string };
    admittedBy.set(args.memberId.toString(), args.kmsRoot);
  }
  const kmsRoots = new Set(facts.policy.kmsRoots.map(lower));
  const appIds = new Set(facts.policy.appIds.map(lower));
  const composeHashes = new Set(facts.policy.composeHashes.map(lower));
  const deviceIds = new Set(facts.policy.deviceIds.map(lower));
  const accountOfOwner = new Map<string, string>();
  for (const [account, owner] of facts.accountOwners) accountOfOwner.set(owner, account);

  const spendBySender = new Map<string, bigint>();
  if (facts.spend.available !== false) {
    for (const e of facts.spend.entries) {
      spendBySender.set(lower(e.sender), (spendBySender.get(lower(e.sender)) ?? 0n) + e.wei);
    }
  }

  const healthByMember = new Map<string, HealthBody>();
  const members: MemberCard[] = facts.members.map((m) => {
    const poll = health.get(lower(m.appId));
    const h = healthOf(poll);
    if (poll?.body && m.status === "active") healthByMember.set(m.memberId, poll.body);
    const account = accountOfOwner.get(lower(m.memberKey)) ?? h?.account?.toLowerCase() ?? null;
    // The recorded claim first; the MemberRegistered log for a member registered before claims were kept.
    const kmsRoot = m.kmsRoot ?? admittedBy.get(m.memberId) ?? null;
    const revokedAt = facts.revokedAt.app.get(lower(m.appId)) ?? 0n;
    const deviceRevokedAt = m.deviceId === null ? 0n : (facts.revokedAt.device.get(lower(m.deviceId)) ?? 0n);
    return {
      ...m,
      kmsRoot,
      kmsRootAllowed: kmsRoot === null ? null : kmsRoots.has(lower(kmsRoot)),
      composeHashAllowed: m.composeHash === null ? null : composeHashes.has(lower(m.composeHash)),
      deviceAllowed:
        m.deviceId === null
          ? m.standing === "device-revoked" || m.standing === "device-not-allowed"
            ? false
            : null
          : deviceRevokedAt === 0n && (facts.policy.allowAnyDevice || deviceIds.has(lower(m.deviceId))),
      deviceRevokedAt: deviceRevokedAt === 0n ? null : iso(Number(deviceRevokedAt)),
      attestation: extras.attestation?.get(m.memberId) ?? UNCHECKED,
      appIdAllowed: appIds.has(lower(m.appId)),
      appIdRevokedAt: revokedAt === 0n ? null : iso(Number(revokedAt)),
      account,
      spendWei:
        facts.spend.available === false || account === null
          ? null
          : (spendBySender.get(account) ?? 0n).toString(),
      health: h,
    };
  });

  const active = facts.members.filter((m) => m.status === "active");
  const { links, summary } = buildLinks(active, healthByMember, nowMs);

  const drift: DriftItem[] = [];
  for (const m of members) {
    if (m.status !== "active") continue;
    if (m.appIdRevokedAt !== null) {
      drift.push({
        kind: "app-id-revoked",
        memberId: m.memberId,
        detail: `app id ${m.appId} was revoked at ${m.appIdRevokedAt}, the member is still active`,
        command: `attestmesh evict ${m.memberId}`,
      });
    } else if (!m.appIdAllowed) {
      drift.push({
        kind: "app-id-withdrawn",
        memberId: m.memberId,
        detail: `app id ${m.appId} is no longer allowlisted`,
        command: `attestmesh evict ${m.memberId}`,
      });
    }
    const found = new Set<DriftKind>();
    const stale = (kind: DriftKind, detail: string) => {
      found.add(kind);
      // A stale member is what `evict --stale` evicts; the per-member command is shown beside it.
      drift.push({ kind, memberId: m.memberId, detail, command: `attestmesh evict ${m.memberId}` });
    };
    if (m.deviceRevokedAt !== null) {
      stale("device-revoked", `runs on device ${m.deviceId}, revoked at ${m.deviceRevokedAt}`);
    } else if (m.deviceAllowed === false && m.deviceId !== null) {
      stale("device-not-allowed", `runs on device ${m.deviceId}, which the policy no longer allows`);
    }
    if (m.composeHashAllowed === false) {
      stale("compose-withdrawn", `runs compose hash ${m.composeHash}, which the policy no longer allows`);
    }
    if (m.kmsRootAllowed === false) {
      stale("kms-root-withdrawn", `admitted by KMS root ${m.kmsRoot}, which the policy no longer allows`);
    }
    // The chain's own verdict names a reason the views above cannot see (a device held by fingerprint).
    const kind = STANDING_DRIFT[m.standing];
    if (kind !== undefined && !found.has(kind)) {
      stale(kind, `the chain judges it no longer standing (${m.standing})`);
    }
  }

  const time = (block: bigint) => iso(facts.blockTimes.get(block));
  const policyLogs = ordered.filter((l) => POLICY_EVENT_NAMES.has(l.eventName));
  const events: PolicyEventView[] = policyLogs.map((l) => ({
    block: l.blockNumber.toString(),
    logIndex: l.logIndex,
    transactionHash: l.transactionHash,
    name: l.eventName,
    args: jsonSafe(l.args) as Record<string, unknown>,
    at: time(l.blockNumber),
  }));
  const replayed = rebuildPolicy(policyLogs);
  /** A replayed revocation as it stands now: the chain's current time for `key`, else the logs'. */
  const revocationNow = (
    map: ReadonlyMap<string, bigint>,
    key: string,
    r: { readonly revokedAt: bigint; readonly reason: string },
  ) => ({ revokedAt: (map.get(key.toLowerCase()) ?? r.revokedAt).toString(), reason: r.reason });
  const inForce = (r: { readonly revokedAt: string }) => r.revokedAt !== "0";

  let spend: SpendView | NotAvailable;
  if (facts.spend.available === false) spend = facts.spend;
  else {
    const memberOfAccount = new Map<string, string>();
    for (const m of members) if (m.account !== null) memberOfAccount.set(m.account, m.memberId);
    const perDay = new Map<string, bigint>();
    let total = 0n;
    for (const e of facts.spend.entries) {
      total += e.wei;
      const t = facts.blockTimes.get(e.blockNumber);
      const day = t === undefined ? "unknown" : dayOf(t);
      perDay.set(day, (perDay.get(day) ?? 0n) + e.wei);
    }
    spend = {
      available: true,
      paymaster: facts.spend.paymaster,
      totalWei: total.toString(),
      perMember: [...spendBySender.entries()]
        .sort(([, x], [, y]) => (x < y ? 1 : x > y ? -1 : 0))
        .map(([account, wei]) => ({
          memberId: memberOfAccount.get(account) ?? null,
          account,
          wei: wei.toString(),
        })),
      perDay: [...perDay.entries()]
        .sort(([x], [y]) => (x < y ? -1 : 1))
        .map(([day, wei]) => ({ day, wei: wei.toString() })),
    };
  }

  const reachable = [...health.values()].filter((p) => p.body !== null).length;
  return {
    generatedAt: new Date(nowMs).toISOString(),
    chain: {
      network: facts.network,
      chainId: facts.chainId,
      cluster: facts.cluster,
      owner: facts.owner,
      block: facts.head.toString(),
      fromBlock: facts.fromBlock.toString(),
    },
    members,
    links,
    linkSummary: summary,
    csk: {
      current:
        facts.currentCsk === null
          ? null
          : {
              epoch: facts.currentCsk.epoch.toString(),
              commitment: /^0x0*$/.test(facts.currentCsk.commitment) ? null : facts.currentCsk.commitment,
              committer: /^0x0*$/.test(facts.currentCsk.commitment)
                ? null
                : facts.currentCsk.committer.toString(),
            },
      epochs: cskEpochs(facts, new Map(facts.members.map((m) => [m.memberId, m.status]))),
    },
    policy: {
      now: {
        allowAnyDevice: facts.policy.allowAnyDevice,
        composeHashes: [...facts.policy.composeHashes].map(lower).sort(),
        deviceIds: [...facts.policy.deviceIds].map(lower).sort(),
        appIds: [...facts.policy.appIds].sort((x, y) => (lower(x) < lower(y) ? -1 : 1)),
        kmsRoots: [...facts.policy.kmsRoots].sort((x, y) => (lower(x) < lower(y) ? -1 : 1)),
        appIdRevocations: replayed.appIdRevocations
          .map((r) => ({ appId: r.appId, ...revocationNow(facts.revokedAt.app, r.appId, r) }))
          .filter(inForce),
        deviceRevocations: replayed.deviceRevocations
          .map((r) => ({ deviceId: r.deviceId, ...revocationNow(facts.revokedAt.device, r.deviceId, r) }))
          .filter(inForce),
      },
      events,
      drift,
    },
    spend,
    indexers: buildIndexers(facts, extras.indexerHealth),
    sources: {
      healthEndpoints: health.size,
      healthReachable: reachable,
      updates: extras.updates ?? "polling the chain",
      reads: facts.reads ?? "one RPC",
    },
  };
}
