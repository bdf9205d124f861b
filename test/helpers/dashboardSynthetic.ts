// A synthetic cluster for the dashboard's tests and measurements: chain facts (members, the logs a real
// diamond emits for them, policy views, the CSK) and each member's /healthz, for any number of members.
// Shapes are the ones the real readers produce (chainFacts.ts, health.ts), so buildView runs unchanged.

import type { ChainFacts, FactLog, HealthBody, HealthPoll } from "@attestmesh/scripts/dashboard/buildView.ts";
import { fingerprintHex, type MemberRow } from "@attestmesh/scripts/owner/members.ts";
import { getAddress, type Hex, keccak256, toHex } from "viem";

export const KMS_ROOT = getAddress("0x00000000000000000000000000000000000000aa");
export const OLD_KMS_ROOT = getAddress("0x00000000000000000000000000000000000000bb");
export const COMPOSE = keccak256(toHex("compose"));
const T0 = 1_780_000_000; // unix seconds of block 1

export const appIdOf = (i: number) => getAddress(`0x${(0xa000 + i).toString(16).padStart(40, "0")}`);
export const memberKeyOf = (i: number) => getAddress(`0x${(0xb000 + i).toString(16).padStart(40, "0")}`);
export const accountOf = (i: number) => getAddress(`0x${(0xc000 + i).toString(16).padStart(40, "0")}`);
const key32 = (tag: number, i: number): Hex =>
  `0x${tag.toString(16).padStart(8, "0")}${i.toString(16).padStart(56, "0")}`;

export interface SyntheticOptions {
  readonly members: number;
  /** Member ids that were evicted (their records stay, status evicted; each opens a CSK epoch). */
  readonly evicted?: readonly number[];
  /** Member ids admitted by a KMS root the policy no longer allows. */
  readonly oldKmsRoot?: readonly number[];
  /** Member ids whose app id was revoked while they stay active. */
  readonly revokedApps?: readonly number[];
  /** Pairs [reporter, peer] reported configured but silent, and missing. */
  readonly silent?: ReadonlyArray<readonly [number, number]>;
  readonly missing?: ReadonlyArray<readonly [number, number]>;
  /** Member ids whose /healthz does not answer. */
  readonly unreachable?: readonly number[];
  readonly nowMs?: number;
}

export interface Synthetic {
  readonly facts: ChainFacts;
  readonly health: Map<string, HealthPoll>;
  readonly nowMs: number;
}

export function synthetic(options: SyntheticOptions): Synthetic {
  const n = options.members;
  const evicted = new Set(options.evicted ?? []);
  const oldRoot = new Set(options.oldKmsRoot ?? []);
  const revoked = new Set(options.revokedApps ?? []);
  const nowMs = options.nowMs ?? (T0 + 86_400 * 3) * 1000;
  const logs: FactLog[] = [];
  const blockTimes = new Map<bigint, number>();
  let block = 1n;
  const emit = (eventName: string, args: Record<string, unknown>) => {
    blockTimes.set(block, T0 + Number(block) * 60);
    logs.push({
      eventName,
      args,
      blockNumber: block,
      logIndex: logs.length,
      transactionHash: keccak256(toHex(`tx${block}`)),
    });
    block++;
  };
  emit("KmsRootAdded", { kmsRoot: KMS_ROOT });
  emit("KmsRootAdded", { kmsRoot: OLD_KMS_ROOT });
  emit("ComposeHashAdded", { composeHash: COMPOSE });
  const members: MemberRow[] = [];
  for (let i = 1; i <= n; i++) {
    emit("AppIdAdded", { appId: appIdOf(i) });
    emit("MemberRegistered", {
      memberId: BigInt(i),
      appId: appIdOf(i),
      memberKey: memberKeyOf(i),
      wireguardKey: key32(1, i),
      identityKey: key32(2, i),
      meshIp: 0x0a4d0000 + i,
      kmsRoot: oldRoot.has(i) ? OLD_KMS_ROOT : KMS_ROOT,
    });
    // As the diamond does: the first registration opens epoch 0 (no departure caused it).
    if (i === 1) emit("CskEpochOpened", { epoch: 0n, causeMemberId: 0n });
    if (i === 1) emit("CskCommitted", { epoch: 0n, memberId: 1n, commitment: keccak256(toHex("csk0")) });
    members.push({
      memberId: String(i),
      appId: appIdOf(i),
      meshIp: `10.77.${(i >> 8) & 255}.${i & 255}`,
      status: evicted.has(i) ? "evicted" : "active",
      registeredAt: new Date((T0 + Number(block) * 60) * 1000).toISOString(),
      endedAt: null,
      endReason: null,
      memberKey: memberKeyOf(i),
      wireguardKey: key32(1, i),
      identityKey: key32(2, i),
      composeHash: COMPOSE,
      deviceId: key32(3, i),
      deviceFingerprint: fingerprintHex(key32(3, i)),
      kmsRoot: oldRoot.has(i) ? OLD_KMS_ROOT : KMS_ROOT,
      standing: evicted.has(i) ? "not-active" : "good",
    });
  }
  let epoch = 0n;
  for (const id of evicted) {
    emit("MemberEvicted", { memberId: BigInt(id), appId: appIdOf(id), reason: 1 });
    emit("AppIdRemoved", { appId: appIdOf(id) });
    epoch++;
    emit("CskEpochOpened", { epoch, causeMemberId: BigInt(id) });
    const committer = [...Array(n).keys()].map((k) => k + 1).find((k) => !evicted.has(k))!;
    emit("CskCommitted", { epoch, memberId: BigInt(committer), commitment: keccak256(toHex(`csk${epoch}`)) });
  }
  const revokedAt = new Map<string, bigint>();
  for (const id of revoked) {
    const at = BigInt(T0 + Number(block) * 60);
    emit("AppIdRevokedAt", { appId: appIdOf(id), revokedAt: at, reason: keccak256(toHex("compromised")) });
    revokedAt.set(appIdOf(id).toLowerCase(), at);
  }
  emit("KmsRootRemoved", { kmsRoot: OLD_KMS_ROOT });

  const appIds = members
    .filter((m) => m.status === "active" && !revoked.has(Number(m.memberId)))
    .map((m) => m.appId);
  const active = members.filter((m) => m.status === "active").map((m) => Number(m.memberId));
  const silent = new Set((options.silent ?? []).map(([a, b]) => `${a}>${b}`));
  const missing = new Set((options.missing ?? []).map(([a, b]) => `${a}>${b}`));
  const unreachable = new Set(options.unreachable ?? []);
  const nowS = Math.floor(nowMs / 1000);

  const health = new Map<string, HealthPoll>();
  for (const i of active) {
    if (unreachable.has(i)) {
      health.set(appIdOf(i).toLowerCase(), { body: null, checkedAtMs: nowMs });
      continue;
    }
    const peers = active
      .filter((j) => j !== i && !missing.has(`${i}>${j}`))
      .map((j) => ({
        memberId: String(j),
        latestHandshake: silent.has(`${i}>${j}`) ? 0 : nowS - 30,
        transport: (i + j) % 3 === 0 ? "gateway" : "udp",
      }));
    const body: HealthBody = {
      phase: "healthy",
      appId: appIdOf(i).toLowerCase(),
      memberId: String(i),
      account: accountOf(i).toLowerCase(),
      cskEpoch: epoch.toString(),
      cskAcquired: true,
      livePeers: peers.length,
      desiredPeers: peers.length,
      handshakenPeers: peers.filter((p) => p.latestHandshake > 0).length,
      converged: true,
      indexerSubscribed: true,
      lastError: null,
      peers,
    };
    health.set(appIdOf(i).toLowerCase(), { body, checkedAtMs: nowMs });
  }

  const entries = active.flatMap((i) =>
    [0, 1, 2].map((d) => ({
      sender: accountOf(i),
      wei: BigInt(i) * 10n ** 14n,
      blockNumber: BigInt(1_000_000 + d),
    })),
  );
  for (const d of [0, 1, 2]) blockTimes.set(BigInt(1_000_000 + d), T0 + d * 86_400);

  const facts: ChainFacts = {
    network: "synthetic",
    chainId: 31337,
    cluster: getAddress("0x000000000000000000000000000000000000d1a0"),
    owner: getAddress("0x00000000000000000000000000000000000000f0"),
    head: block,
    fromBlock: 1n,
    members,
    logs,
    blockTimes,
    policy: {
      allowAnyDevice: true,
      composeHashes: [COMPOSE],
      deviceIds: [],
      appIds,
      kmsRoots: [KMS_ROOT],
    },
    revokedAt: { app: revokedAt, device: new Map() },
    currentCsk: { epoch, commitment: keccak256(toHex(`csk${epoch}`)), committer: 1n },
    accountOwners: new Map(active.map((i) => [accountOf(i).toLowerCase(), memberKeyOf(i).toLowerCase()])),
    spend: { available: true, paymaster: getAddress("0x00000000000000000000000000000000000000ee"), entries },
  };
  return { facts, health, nowMs };
}
