// PolicyFacet: the owner's lists (compose hashes, devices, app ids, KMS roots) and their revocations,
// the owner-only rule, dstack's isAppAllowed, ERC-165, the policy snapshot and its audit trail. Cases
// that share arrange/act/assert steps are rows of a table: the lists below, the refusals, the boot checks.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import {
  type Address,
  getAddress,
  type Hex,
  parseEventLogs,
  toFunctionSelector,
  toHex,
  zeroAddress,
} from "viem";
import {
  admit,
  type ClusterFixture,
  randomAppId,
  setupCluster,
  signRegistration,
  simulatedNode,
} from "../../../test/helpers/cluster.ts";
import { rebuildPolicy } from "../../../test/helpers/policyHistory.ts";
import { canonical, expectRevert } from "../../../test/helpers/revert.ts";
import { bootInfo as plainBootInfo, randomHash, Status, send } from "../utils/chain.ts";

const APP_AUTH_ID = "0x1e079198";
const APP_AUTH_BASIC_MANAGEMENT_ID = "0x8fd37527";
const IS_APP_ALLOWED_SIGNATURE =
  "isAppAllowed((address,bytes32,address,bytes32,bytes32,bytes32,bytes32,string,string[]))";
const EVICTED_BY_REVOCATION = 255;
/** IPolicy.AppRole. */
const Role = { Node: 0, Indexer: 1 } as const;

const reasonCode = (text: string): Hex => toHex(text, { size: 32 });
const sortedLower = (values: readonly string[]): string[] => values.map((v) => v.toLowerCase()).sort();

interface ExpectedEvent {
  readonly name: string;
  readonly args: Record<string, unknown>;
}

function assertEvents(
  actual: readonly { name: string; args: unknown }[],
  expected: readonly ExpectedEvent[],
) {
  assert.deepEqual(
    actual,
    expected.map((e) => ({ name: e.name, args: canonical(e.args) })),
  );
}

/**
 * The events of the CSK rotation a revocation triggers (ICsk): the current epoch abandoned on the
 * owner's authority, then the next one opened with no cause member. Read before the call.
 */
async function rotationEvents(fx: ClusterFixture): Promise<ExpectedEvent[]> {
  const [epoch, , committer] = await fx.owner.read.currentCsk();
  return [
    { name: "CskEpochReopened", args: { epoch, reopenedBy: 0n, committer } },
    { name: "CskEpochOpened", args: { epoch: epoch + 1n, causeMemberId: 0n } },
  ];
}

/** The ids a refusal test watches besides the whole snapshot. */
interface Watch {
  readonly composeHashes?: readonly Hex[];
  readonly deviceIds?: readonly Hex[];
  readonly appIds?: readonly Address[];
  readonly kmsRoots?: readonly Address[];
}

/** The policy snapshot with every list sorted and lowercased, so two snapshots compare as sets. */
function comparableSnapshot(snapshot: PolicySnapshot) {
  return {
    allowAnyDevice: snapshot.allowAnyDevice,
    requireTcbUpToDate: snapshot.requireTcbUpToDate,
    composeHashes: sortedLower(snapshot.composeHashes),
    indexerComposeHashes: sortedLower(snapshot.indexerComposeHashes),
    deviceIds: sortedLower(snapshot.deviceIds),
    appIds: sortedLower(snapshot.appIds),
    indexerAppIds: sortedLower(snapshot.indexerAppIds),
    kmsRoots: sortedLower(snapshot.kmsRoots),
  };
}

/** Everything a policy call could change: the snapshot, the watched ids, membership and CSK counters. */
async function readState(fx: ClusterFixture, watch: Watch) {
  const read = fx.owner.read;
  const snapshot = await read.policySnapshot();
  const [epoch] = await read.currentCsk();
  const [, , lastMemberId, activeMembers] = await read.meshConfig();
  return canonical({
    ...comparableSnapshot(snapshot),
    epoch,
    lastMemberId,
    activeMembers,
    composes: await Promise.all(
      (watch.composeHashes ?? []).map(async (h) => [
        await read.isComposeHashAllowedFor([h, Role.Node]),
        await read.isComposeHashAllowedFor([h, Role.Indexer]),
      ]),
    ),
    devices: await Promise.all(
      (watch.deviceIds ?? []).map(async (d) => [
        await read.isDeviceAllowed([d]),
        await read.deviceRevokedAt([d]),
      ]),
    ),
    apps: await Promise.all(
      (watch.appIds ?? []).map(async (a) => [
        await read.isAppIdAllowed([a]),
        await read.appRole([a]),
        await read.appIdRevokedAt([a]),
        await read.isMember([a]),
        await read.memberOfApp([a]),
      ]),
    ),
    kmsRootFlags: await Promise.all((watch.kmsRoots ?? []).map((k) => read.isKmsRootAllowed([k]))),
  });
}

/** The call must revert with `errorName(args)`, mine nothing and change none of the watched state. */
async function expectRefusal(
  fx: ClusterFixture,
  attempt: () => Promise<unknown>,
  errorName: string,
  args: readonly unknown[],
  watch: Watch = {},
) {
  const before = await readState(fx, watch);
  const blockBefore = await fx.publicClient.getBlockNumber();
  await expectRevert(attempt(), errorName, args);
  assert.equal(await fx.publicClient.getBlockNumber(), blockBefore, "a refused call mines nothing");
  assert.deepEqual(await readState(fx, watch), before, "a refused call changes nothing");
}

/** A boot info with an advisory: the cluster's policy does not read advisories (the TCB switch does). */
function bootInfo(appId: Address, composeHash: Hex, deviceId: Hex) {
  return { ...plainBootInfo(appId, composeHash, deviceId), advisoryIds: ["INTEL-SA-00837"] };
}

/** Moves the chain clock forward, so a stale timestamp cannot pass for the current one. */
async function advanceTime(fx: ClusterFixture, seconds: number) {
  const testClient = await fx.viem.getTestClient();
  await testClient.increaseTime({ seconds });
  await testClient.mine({ blocks: 1 });
}

/** Who sends a policy call: the owner, or a stranger the contract must refuse. */
type Caller = ClusterFixture["owner"];

/** One owner-managed list of the policy: how to add, remove, read and revoke an entry, for the tables below.
 * The calls are the owner's unless `by` says otherwise. */
interface PolicyList {
  /** What an entry is, for test names: "compose hash". */
  readonly noun: string;
  readonly addFn: string;
  readonly removeFn: string;
  readonly fresh: () => Hex;
  readonly zero: Hex;
  readonly add: (id: Hex, by?: Caller) => Promise<Hex>;
  readonly remove: (id: Hex, by?: Caller) => Promise<Hex>;
  readonly isAllowed: (id: Hex) => Promise<boolean>;
  readonly listed: (snapshot: PolicySnapshot) => readonly string[];
  /** The events' names and the name of their one argument. */
  readonly added: string;
  readonly removed: string;
  readonly arg: string;
  /** Every event an add or a removal emits, where that is more than the one named above. */
  readonly addedEvents?: (id: Hex) => readonly ExpectedEvent[];
  readonly removedEvents?: (id: Hex) => readonly ExpectedEvent[];
  /** Removing an entry can leave running members non-standing, so it opens the next CSK epoch. */
  readonly rotates?: boolean;
  readonly watch: (id: Hex) => Watch;
  /** Lists whose entries can also be revoked for good. */
  readonly revocation?: {
    readonly fn: string;
    readonly revoke: (id: Hex, reason: Hex, by?: Caller) => Promise<Hex>;
    readonly revokedAt: (id: Hex) => Promise<bigint>;
    readonly event: string;
    readonly error: string;
  };
}

type PolicySnapshot = Awaited<ReturnType<ClusterFixture["owner"]["read"]["policySnapshot"]>>;

function policyLists(fx: ClusterFixture): readonly PolicyList[] {
  const { owner } = fx;
  const read = owner.read;
  const zero32 = toHex(0, { size: 32 });
  const zero20 = getAddress(toHex(0, { size: 20 }));
  return [
    {
      noun: "compose hash",
      addFn: "addComposeHash",
      removeFn: "removeComposeHash",
      fresh: randomHash,
      zero: zero32,
      add: (h, by = owner) => by.write.addComposeHash([h]),
      remove: (h, by = owner) => by.write.removeComposeHash([h]),
      isAllowed: (h) => read.isComposeHashAllowed([h]),
      listed: (s) => s.composeHashes,
      added: "ComposeHashAdded",
      removed: "ComposeHashRemoved",
      arg: "composeHash",
      // dstack's role-less call acts on the node role: dstack's event, then the role event.
      addedEvents: (h) => [
        { name: "ComposeHashAdded", args: { composeHash: h } },
        { name: "ComposeHashAllowedFor", args: { composeHash: h, role: Role.Node } },
      ],
      removedEvents: (h) => [
        { name: "ComposeHashRemoved", args: { composeHash: h } },
        { name: "ComposeHashDeniedFor", args: { composeHash: h, role: Role.Node } },
      ],
      rotates: true,
      watch: (h) => ({ composeHashes: [h] }),
    },
    {
      noun: "indexer compose hash",
      addFn: "addComposeHashFor",
      removeFn: "removeComposeHashFor",
      fresh: randomHash,
      zero: zero32,
      add: (h, by = owner) => by.write.addComposeHashFor([h, Role.Indexer]),
      remove: (h, by = owner) => by.write.removeComposeHashFor([h, Role.Indexer]),
      isAllowed: (h) => read.isComposeHashAllowedFor([h, Role.Indexer]),
      listed: (s) => s.indexerComposeHashes,
      added: "ComposeHashAllowedFor",
      removed: "ComposeHashDeniedFor",
      arg: "composeHash",
      // No dstack event: dstack's tooling sees the node role only.
      addedEvents: (h) => [{ name: "ComposeHashAllowedFor", args: { composeHash: h, role: Role.Indexer } }],
      removedEvents: (h) => [{ name: "ComposeHashDeniedFor", args: { composeHash: h, role: Role.Indexer } }],
      watch: (h) => ({ composeHashes: [h] }),
    },
    {
      noun: "device",
      addFn: "addDevice",
      removeFn: "removeDevice",
      fresh: randomHash,
      zero: zero32,
      add: (d, by = owner) => by.write.addDevice([d]),
      remove: (d, by = owner) => by.write.removeDevice([d]),
      isAllowed: (d) => read.isDeviceAllowed([d]),
      listed: (s) => s.deviceIds,
      added: "DeviceAdded",
      removed: "DeviceRemoved",
      arg: "deviceId",
      // The fixture restricts devices: members on a removed one stop standing.
      rotates: true,
      watch: (d) => ({ deviceIds: [d] }),
      revocation: {
        fn: "revokeDevice",
        revoke: (d, reason, by = owner) => by.write.revokeDevice([d, reason]),
        revokedAt: (d) => read.deviceRevokedAt([d]),
        event: "DeviceRevokedAt",
        error: "DeviceIdRevoked",
      },
    },
    {
      noun: "app id",
      addFn: "addAppId",
      removeFn: "removeAppId",
      fresh: randomAppId,
      zero: zero20,
      add: (a, by = owner) => by.write.addAppId([a]),
      remove: (a, by = owner) => by.write.removeAppId([a]),
      isAllowed: (a) => read.isAppIdAllowed([a]),
      listed: (s) => s.appIds,
      added: "AppIdAdded",
      removed: "AppIdRemoved",
      arg: "appId",
      watch: (a) => ({ appIds: [a] }),
      revocation: {
        fn: "revokeAppId",
        revoke: (a, reason, by = owner) => by.write.revokeAppId([a, reason]),
        revokedAt: (a) => read.appIdRevokedAt([a]),
        event: "AppIdRevokedAt",
        error: "AppIdRevoked",
      },
    },
    {
      noun: "KMS root",
      addFn: "addKmsRoot",
      removeFn: "removeKmsRoot",
      fresh: randomAppId,
      zero: zero20,
      add: (k, by = owner) => by.write.addKmsRoot([k]),
      remove: (k, by = owner) => by.write.removeKmsRoot([k]),
      isAllowed: (k) => read.isKmsRootAllowed([k]),
      listed: (s) => s.kmsRoots,
      added: "KmsRootAdded",
      removed: "KmsRootRemoved",
      arg: "kmsRoot",
      rotates: true,
      watch: (k) => ({ kmsRoots: [k] }),
    },
  ];
}

/** How often `id` appears in the list's part of the policy snapshot, whatever the letter case. */
async function timesListed(fx: ClusterFixture, list: PolicyList, id: Hex): Promise<number> {
  const listed = list.listed(await fx.owner.read.policySnapshot());
  return listed.filter((x) => x.toLowerCase() === id.toLowerCase()).length;
}

/** A step of an isAppAllowed scenario: change the policy for the case's app id, compose hash or device, or ask. */
type BootStep =
  | { readonly allow: "app" | "compose" | "device" }
  | { readonly remove: "compose" }
  | { readonly revoke: "app" | "device" }
  | { readonly allowAnyDevice: boolean }
  | { readonly expect: readonly [boolean, string] };

const DEVICE_NOT_ALLOWED = [false, "Device not allowed"] as const;
const ALLOWED = [true, ""] as const;

/** App id, compose hash and device all listed, allowAnyDevice on as well: the case boots. */
const EVERY_ALLOWLIST_PASSES: readonly BootStep[] = [
  { allow: "app" },
  { allow: "compose" },
  { allow: "device" },
  { allowAnyDevice: true },
  { expect: ALLOWED },
];

const BOOT_SCENARIOS: readonly { readonly name: string; readonly steps: readonly BootStep[] }[] = [
  {
    name: "refuses an app id that is not allowed, before looking at compose hash or device",
    steps: [{ allowAnyDevice: false }, { expect: [false, "App id not allowed"] }],
  },
  {
    name: "refuses a compose hash that is not allowed, before looking at the device",
    steps: [
      { allowAnyDevice: false },
      { allow: "app" },
      { expect: [false, "Compose hash not allowed for the node role"] },
    ],
  },
  {
    name: "refuses a device that is not allowed while allowAnyDevice is off",
    steps: [
      { allowAnyDevice: false },
      { allow: "app" },
      { allow: "compose" },
      { expect: DEVICE_NOT_ALLOWED },
    ],
  },
  {
    name: "allows an allowed app id with an allowed compose hash on an allowed device",
    steps: [
      { allowAnyDevice: false },
      { allow: "app" },
      { allow: "compose" },
      { allow: "device" },
      { expect: ALLOWED },
      { remove: "compose" },
      { expect: [false, "Compose hash not allowed for the node role"] },
    ],
  },
  {
    name: "allows any unlisted device while allowAnyDevice is on, and refuses it again when switched off",
    steps: [
      { allow: "app" },
      { allow: "compose" },
      { allowAnyDevice: true },
      { expect: ALLOWED },
      { allowAnyDevice: false },
      { expect: DEVICE_NOT_ALLOWED },
    ],
  },
  {
    name: "refuses a revoked device before the app id check",
    steps: [{ revoke: "device" }, { expect: [false, "Device revoked"] }],
  },
  {
    name: "refuses a revoked device although every allowlist passes and allowAnyDevice is on",
    steps: [
      ...EVERY_ALLOWLIST_PASSES,
      { revoke: "device" },
      { expect: [false, "Device revoked"] },
      { allowAnyDevice: false },
      { expect: [false, "Device revoked"] },
    ],
  },
  {
    name: "refuses a revoked app id although every allowlist passes, before the device revocation",
    steps: [
      ...EVERY_ALLOWLIST_PASSES,
      { revoke: "app" },
      { expect: [false, "App id revoked"] },
      { revoke: "device" },
      { expect: [false, "App id revoked"] },
    ],
  },
];

/** Every combination of the facts isAppAllowed reads, and the answer dstack's KMS must get for it. */
interface BootFacts {
  readonly app: "unlisted" | "allowed" | "revoked";
  readonly compose: "unlisted" | "allowed";
  readonly device: "unlisted" | "allowed" | "revoked";
  readonly anyDevice: boolean;
}

const BOOT_FACTS: readonly BootFacts[] = (["unlisted", "allowed", "revoked"] as const).flatMap((app) =>
  (["unlisted", "allowed"] as const).flatMap((compose) =>
    (["unlisted", "allowed", "revoked"] as const).flatMap((device) =>
      [false, true].map((anyDevice) => ({ app, compose, device, anyDevice })),
    ),
  ),
);

/** The documented order of the checks: revocations first (app id, then device), then the allowlists. */
function bootAnswer(facts: BootFacts): readonly [boolean, string] {
  if (facts.app === "revoked") return [false, "App id revoked"];
  if (facts.device === "revoked") return [false, "Device revoked"];
  if (facts.app !== "allowed") return [false, "App id not allowed"];
  if (facts.compose !== "allowed") return [false, "Compose hash not allowed for the node role"];
  if (!facts.anyDevice && facts.device !== "allowed") return DEVICE_NOT_ALLOWED;
  return ALLOWED;
}

describe("PolicyFacet", async () => {
  const fx = await setupCluster({ openPolicy: false });
  const owner = fx.owner;

  for (const list of policyLists(fx)) {
    const { noun, addFn, removeFn, added, removed, arg } = list;
    describe(`${noun} list`, () => {
      it(`${addFn} allows the ${noun}, lists it in the snapshot and emits ${added}`, async () => {
        const id = list.fresh();
        assert.equal(await list.isAllowed(id), false);
        const { events } = await send(fx, list.add(id));
        assertEvents(events, list.addedEvents?.(id) ?? [{ name: added, args: { [arg]: id } }]);
        assert.equal(await list.isAllowed(id), true);
        assert.equal(await timesListed(fx, list, id), 1);
        if (list.revocation) assert.equal(await list.revocation.revokedAt(id), 0n);
      });

      it(`${addFn} of an allowed ${noun} emits nothing and keeps it allowed, listed once`, async () => {
        const id = list.fresh();
        await send(fx, list.add(id));
        assertEvents((await send(fx, list.add(id))).events, []);
        assert.equal(await list.isAllowed(id), true);
        assert.equal(await timesListed(fx, list, id), 1, "listed once");
      });

      it(`${removeFn} disallows the ${noun}, unlists it and emits ${removed}`, async () => {
        const id = list.fresh();
        await send(fx, list.add(id));
        const rotation = list.rotates ? await rotationEvents(fx) : [];
        const { events } = await send(fx, list.remove(id));
        assertEvents(events, [
          ...(list.removedEvents?.(id) ?? [{ name: removed, args: { [arg]: id } }]),
          ...rotation,
        ]);
        assert.equal(await list.isAllowed(id), false);
        assert.equal(await timesListed(fx, list, id), 0);
      });

      it(`${removeFn} of a ${noun} that is not allowed (any more, or ever) emits nothing`, async () => {
        const id = list.fresh();
        await send(fx, list.add(id));
        await send(fx, list.remove(id));
        assertEvents((await send(fx, list.remove(id))).events, []);
        assertEvents((await send(fx, list.remove(list.fresh()))).events, []);
        assert.equal(await list.isAllowed(id), false);
      });

      it(`${addFn} refuses the zero ${noun} with ZeroIdentifier`, async () => {
        await expectRefusal(fx, () => list.add(list.zero), "ZeroIdentifier", [], list.watch(list.zero));
      });

      const revocation = list.revocation;
      if (revocation === undefined) return;
      const { fn: revokeFn, event, error } = revocation;

      it(`${revokeFn} unlists an allowed ${noun} and records the block timestamp`, async () => {
        const id = list.fresh();
        const reason = reasonCode("compromised");
        await send(fx, list.add(id));
        const rotation = list.rotates ? await rotationEvents(fx) : [];
        const { events, timestamp } = await send(fx, revocation.revoke(id, reason));
        assertEvents(events, [
          { name: removed, args: { [arg]: id } },
          { name: event, args: { [arg]: id, revokedAt: timestamp, reason } },
          ...rotation,
        ]);
        assert.equal(await revocation.revokedAt(id), timestamp);
        assert.equal(await list.isAllowed(id), false);
        assert.equal(await timesListed(fx, list, id), 0);
      });

      it(`${revokeFn} of a ${noun} never allowed emits only ${event}${list.rotates ? " (and the CSK rotation)" : ""}`, async () => {
        const id = list.fresh();
        const reason = reasonCode("pre-emptive");
        const rotation = list.rotates ? await rotationEvents(fx) : [];
        const { events, timestamp } = await send(fx, revocation.revoke(id, reason));
        assertEvents(events, [
          { name: event, args: { [arg]: id, revokedAt: timestamp, reason } },
          ...rotation,
        ]);
        assert.equal(await revocation.revokedAt(id), timestamp);
        assert.equal(await list.isAllowed(id), false);
      });

      it(`${addFn} refuses a revoked ${noun} with ${error} and its revocation time`, async () => {
        const id = list.fresh();
        await send(fx, list.add(id));
        const { timestamp } = await send(fx, revocation.revoke(id, reasonCode("r")));
        await advanceTime(fx, 3600);
        await expectRefusal(fx, () => list.add(id), error, [id, timestamp], list.watch(id));
        assert.equal(await list.isAllowed(id), false);
      });

      it(`${revokeFn} refuses a revoked ${noun} with ${error} and keeps the first timestamp`, async () => {
        const id = list.fresh();
        const { timestamp } = await send(fx, revocation.revoke(id, reasonCode("first")));
        await advanceTime(fx, 3600);
        await expectRefusal(
          fx,
          () => revocation.revoke(id, reasonCode("second")),
          error,
          [id, timestamp],
          list.watch(id),
        );
        assert.equal(await revocation.revokedAt(id), timestamp);
      });

      it(`${revokeFn} refuses the zero ${noun} with ZeroIdentifier`, async () => {
        await expectRefusal(
          fx,
          () => revocation.revoke(list.zero, reasonCode("r")),
          "ZeroIdentifier",
          [],
          list.watch(list.zero),
        );
      });

      it(`${removeFn} of a revoked ${noun} emits nothing and the revocation stays`, async () => {
        const id = list.fresh();
        const { timestamp } = await send(fx, revocation.revoke(id, reasonCode("r")));
        assertEvents((await send(fx, list.remove(id))).events, []);
        assert.equal(await revocation.revokedAt(id), timestamp);
        assert.equal(await list.isAllowed(id), false);
      });
    });
  }

  describe("KMS roots at deployment", () => {
    it("accepts the KMS root given at deployment", async () => {
      assert.equal(await owner.read.isKmsRootAllowed([fx.kmsRoot.address]), true);
      assert.ok(
        sortedLower((await owner.read.policySnapshot()).kmsRoots).includes(fx.kmsRoot.address.toLowerCase()),
      );
      assert.equal(await owner.read.isKmsRootAllowed([randomAppId()]), false);
    });
  });

  describe("allow any device", () => {
    it("setAllowAnyDevice switches the bypass on and off and emits AllowAnyDeviceSet each time", async () => {
      assertEvents((await send(fx, owner.write.setAllowAnyDevice([true]))).events, [
        { name: "AllowAnyDeviceSet", args: { allowAny: true } },
      ]);
      assert.equal(await owner.read.allowAnyDevice(), true);
      assert.equal((await owner.read.policySnapshot()).allowAnyDevice, true);
      // Restricting devices can leave members on unlisted ones non-standing: the CSK rotates.
      const rotation = await rotationEvents(fx);
      assertEvents((await send(fx, owner.write.setAllowAnyDevice([false]))).events, [
        { name: "AllowAnyDeviceSet", args: { allowAny: false } },
        ...rotation,
      ]);
      assert.equal(await owner.read.allowAnyDevice(), false);
      assert.equal((await owner.read.policySnapshot()).allowAnyDevice, false);
    });

    it("setAllowAnyDevice to the value it already has emits nothing, keeping the audit trail free of noise", async () => {
      assert.equal(await owner.read.allowAnyDevice(), false);
      assertEvents((await send(fx, owner.write.setAllowAnyDevice([false]))).events, []);
      assert.equal(await owner.read.allowAnyDevice(), false);
    });
  });

  describe("app ids of members", () => {
    it("removeAppId leaves the app id's active member active", async () => {
      const node = simulatedNode(fx.kmsRoot);
      const memberId = await admit(fx, node);
      const { events } = await send(fx, owner.write.removeAppId([node.appId]));
      assertEvents(events, [{ name: "AppIdRemoved", args: { appId: node.appId } }]);
      assert.equal(await owner.read.isAppIdAllowed([node.appId]), false);
      assert.equal(await owner.read.isMember([node.appId]), true);
      assert.equal((await owner.read.member([memberId])).status, Status.Active);
    });

    it("refuses revokeAppId from a stranger with NotOwner and leaves the app id's member active", async () => {
      const node = simulatedNode(fx.kmsRoot);
      const memberId = await admit(fx, node);
      await expectRefusal(
        fx,
        () => fx.stranger.write.revokeAppId([node.appId, reasonCode("r")]),
        "NotOwner",
        [fx.strangerAddress],
        { appIds: [node.appId] },
      );
      assert.equal((await owner.read.member([memberId])).status, Status.Active);
    });

    it("revokeAppId evicts the active member with reason 255 and opens a new CSK epoch", async () => {
      const node = simulatedNode(fx.kmsRoot);
      const memberId = await admit(fx, node);
      assert.equal(await owner.read.isMember([node.appId]), true);
      const [epochBefore] = await owner.read.currentCsk();
      const [, , , activeBefore] = await owner.read.meshConfig();
      const reason = reasonCode("evict me");

      const { events, timestamp } = await send(fx, owner.write.revokeAppId([node.appId, reason]));
      assertEvents(events, [
        { name: "AppIdRemoved", args: { appId: node.appId } },
        { name: "AppIdRevokedAt", args: { appId: node.appId, revokedAt: timestamp, reason } },
        { name: "MemberEvicted", args: { memberId, appId: node.appId, reason: EVICTED_BY_REVOCATION } },
        { name: "CskEpochOpened", args: { epoch: epochBefore + 1n, causeMemberId: memberId } },
      ]);

      const m = await owner.read.member([memberId]);
      assert.equal(m.status, Status.Evicted);
      assert.equal(m.endReason, EVICTED_BY_REVOCATION);
      assert.equal(BigInt(m.endedAt), timestamp);
      assert.equal(await owner.read.isMember([node.appId]), false);
      assert.deepEqual(await owner.read.memberOfApp([node.appId]), [memberId, false]);
      const [epochAfter, commitment, , openedAt] = await owner.read.currentCsk();
      assert.equal(epochAfter, epochBefore + 1n);
      assert.equal(commitment, toHex(0, { size: 32 }));
      assert.equal(BigInt(openedAt), timestamp);
      const [, , , activeAfter] = await owner.read.meshConfig();
      assert.equal(activeAfter, activeBefore - 1n);
    });

    it("revokeAppId refuses the revoked app id's node when it registers again", async () => {
      const node = simulatedNode(fx.kmsRoot);
      await admit(fx, node);
      const { timestamp } = await send(fx, owner.write.revokeAppId([node.appId, reasonCode("r")]));
      const nonce = await owner.read.registrationNonce([node.appId]);
      const signature = await signRegistration(fx, node, { nonce });
      await expectRefusal(
        fx,
        () =>
          fx.relayer.write.register([
            node.proof,
            node.wireguardKey,
            node.identityKey,
            node.claims,
            signature,
          ]),
        "AppIdRevoked",
        [node.appId, timestamp],
        { appIds: [node.appId] },
      );
    });

    it("revokeAppId of an app id whose member left evicts that member all the same and opens no epoch", async () => {
      const node = simulatedNode(fx.kmsRoot);
      const memberId = await admit(fx, node);
      const signature = await node.memberAccount.signTypedData({
        domain: memberDomain(fx.chainId, fx.deployed.diamond),
        types: memberTypes,
        primaryType: "Leave",
        message: { memberId },
      });
      await send(fx, fx.relayer.write.leaveCluster([memberId, signature]));
      const [epochBefore] = await owner.read.currentCsk();
      const reason = reasonCode("after leaving");
      const { events, timestamp } = await send(fx, owner.write.revokeAppId([node.appId, reason]));
      assertEvents(events, [
        { name: "AppIdRemoved", args: { appId: node.appId } },
        { name: "AppIdRevokedAt", args: { appId: node.appId, revokedAt: timestamp, reason } },
        { name: "MemberEvicted", args: { memberId, appId: node.appId, reason: 255 } },
      ]);
      assert.equal((await owner.read.member([memberId])).status, Status.Evicted);
      assert.equal((await owner.read.currentCsk())[0], epochBefore);
      assert.deepEqual(await owner.read.identityKeyHolder([node.identityKey]), [zeroAddress, 0n, false]);
    });
  });

  describe("owner only", () => {
    const stranger = fx.stranger;
    interface Case {
      readonly fn: string;
      readonly arrange: () => Promise<{ watch: Watch; attempt: () => Promise<unknown> }>;
    }
    /** The stranger's `call` on an entry of `list` that `entry` arranges, watching that entry. */
    const onEntry = (
      list: PolicyList,
      fn: string,
      entry: () => Promise<Hex>,
      call: (id: Hex) => Promise<unknown>,
    ): Case => ({
      fn,
      arrange: async () => {
        const id = await entry();
        return { watch: list.watch(id), attempt: () => call(id) };
      },
    });
    const cases: Case[] = [
      // Every list's add of a new entry, and removal and revocation of a listed one: calls the owner's would change.
      ...policyLists(fx).flatMap((list) => {
        const fresh = async () => list.fresh();
        const listed = async () => {
          const id = list.fresh();
          await send(fx, list.add(id));
          return id;
        };
        const calls = [
          onEntry(list, list.addFn, fresh, (id) => list.add(id, stranger)),
          onEntry(list, list.removeFn, listed, (id) => list.remove(id, stranger)),
        ];
        const { revocation } = list;
        if (revocation !== undefined) {
          const revoke = (id: Hex) => revocation.revoke(id, reasonCode("r"), stranger);
          calls.push(onEntry(list, revocation.fn, listed, revoke));
        }
        return calls;
      }),
      {
        fn: "addAppIdFor",
        arrange: async () => {
          const a = randomAppId();
          await send(fx, owner.write.addAppId([a]));
          return { watch: { appIds: [a] }, attempt: () => stranger.write.addAppIdFor([a, Role.Indexer]) };
        },
      },
      // The switches, each set off first so that the stranger's call would switch it on.
      ...(["setAllowAnyDevice", "setRequireTcbUpToDate"] as const).map((fn) => ({
        fn,
        arrange: async () => {
          await send(fx, owner.write[fn]([false]));
          return { watch: {}, attempt: () => stranger.write[fn]([true]) };
        },
      })),
    ];

    for (const { fn, arrange } of cases) {
      it(`refuses ${fn} from a stranger with NotOwner and changes nothing`, async () => {
        const { watch, attempt } = await arrange();
        await expectRefusal(fx, attempt, "NotOwner", [fx.strangerAddress], watch);
      });
    }

    it("covers every state-changing function of IPolicy and IAppAuthBasicManagement", () => {
      const writes = clusterAbi
        .filter((item) => item.type === "function" && item.stateMutability === "nonpayable")
        .map((item) => (item as { name: string }).name);
      for (const { fn } of cases) assert.ok(writes.includes(fn), `${fn} is a state-changing function`);
      assert.equal(new Set(cases.map((c) => c.fn)).size, 15);
    });
  });

  describe("isAppAllowed", () => {
    const isAppAllowed = async (info: ReturnType<typeof bootInfo>) => [
      ...(await owner.read.isAppAllowed([info])),
    ];

    for (const { name, steps } of BOOT_SCENARIOS) {
      it(name, async () => {
        const [a, h, d] = [randomAppId(), randomHash(), randomHash()];
        for (const step of steps) {
          if ("expect" in step) assert.deepEqual(await isAppAllowed(bootInfo(a, h, d)), [...step.expect]);
          else if ("allowAnyDevice" in step)
            await send(fx, owner.write.setAllowAnyDevice([step.allowAnyDevice]));
          else if ("remove" in step) await send(fx, owner.write.removeComposeHash([h]));
          else if ("allow" in step) {
            if (step.allow === "app") await send(fx, owner.write.addAppId([a]));
            else if (step.allow === "compose") await send(fx, owner.write.addComposeHash([h]));
            else await send(fx, owner.write.addDevice([d]));
          } else if (step.revoke === "app") {
            await send(fx, owner.write.revokeAppId([a, reasonCode("r")]));
            assert.equal(await owner.read.isAppIdAllowed([a]), false);
          } else {
            const { timestamp } = await send(fx, owner.write.revokeDevice([d, reasonCode("r")]));
            assert.equal(await owner.read.deviceRevokedAt([d]), timestamp);
            assert.equal(await owner.read.isDeviceAllowed([d]), false);
          }
        }
      });
    }

    for (const facts of BOOT_FACTS) {
      const answer = bootAnswer(facts);
      const label = `app id ${facts.app}, compose hash ${facts.compose}, device ${facts.device}, any device ${facts.anyDevice ? "on" : "off"}`;
      it(`${label}: ${answer[0] ? "allowed" : answer[1]}`, async () => {
        const [a, h, d] = [randomAppId(), randomHash(), randomHash()];
        if (facts.app !== "unlisted") await send(fx, owner.write.addAppId([a]));
        if (facts.app === "revoked") await send(fx, owner.write.revokeAppId([a, reasonCode("r")]));
        if (facts.compose === "allowed") await send(fx, owner.write.addComposeHash([h]));
        if (facts.device !== "unlisted") await send(fx, owner.write.addDevice([d]));
        if (facts.device === "revoked") await send(fx, owner.write.revokeDevice([d, reasonCode("r")]));
        await send(fx, owner.write.setAllowAnyDevice([facts.anyDevice]));
        assert.deepEqual(await isAppAllowed(bootInfo(a, h, d)), [...answer]);
      });
    }
  });

  describe("compose hashes by role", () => {
    const NODE_REFUSED = [false, "Compose hash not allowed for the node role"] as const;
    const INDEXER_REFUSED = [false, "Compose hash not allowed for the indexer role"] as const;
    const ask = async (appId: Address, h: Hex) => [
      ...(await owner.read.isAppAllowed([bootInfo(appId, h, randomHash())])),
    ];

    /**
     * A fresh member app (the factory's clone) and how it answers isAppAllowed for a compose hash: the
     * KMS path, where the clone asks the cluster on its own behalf.
     */
    async function cloneAsker() {
      const salt = randomHash();
      const app = await owner.read.predictMemberApp([salt]);
      await send(fx, owner.write.createMemberApp([salt]));
      const viaClone = async (h: Hex) => [
        ...(await fx.publicClient.readContract({
          address: app,
          abi: clusterAbi,
          functionName: "isAppAllowed",
          args: [bootInfo(app, h, randomHash())],
        })),
      ];
      return { app, viaClone };
    }

    /** A node app id, an indexer app id, and compose hashes for each role, on any device. */
    async function arrangeRoles() {
      await send(fx, owner.write.setAllowAnyDevice([true]));
      const nodeApp = randomAppId();
      const indexerApp = randomAppId();
      const [nodeCompose, indexerCompose, debugCompose] = [randomHash(), randomHash(), randomHash()];
      await send(fx, owner.write.addAppId([nodeApp]));
      await send(fx, owner.write.addAppIdFor([indexerApp, Role.Indexer]));
      await send(fx, owner.write.addComposeHash([nodeCompose]));
      await send(fx, owner.write.addComposeHashFor([indexerCompose, Role.Indexer]));
      return { nodeApp, indexerApp, nodeCompose, indexerCompose, debugCompose };
    }

    it("boots each role's app id with its own role's compose hash", async () => {
      const r = await arrangeRoles();
      assert.deepEqual(await ask(r.nodeApp, r.nodeCompose), [...ALLOWED]);
      assert.deepEqual(await ask(r.indexerApp, r.indexerCompose), [...ALLOWED]);
    });

    it("attacker: an allowed node app id cannot boot the indexer's compose", async () => {
      const r = await arrangeRoles();
      assert.deepEqual(await ask(r.nodeApp, r.indexerCompose), [...NODE_REFUSED]);
    });

    it("attacker: an allowed node app id cannot boot a debug compose allowed only for the indexer", async () => {
      const r = await arrangeRoles();
      await send(fx, owner.write.addComposeHashFor([r.debugCompose, Role.Indexer]));
      assert.deepEqual(await ask(r.indexerApp, r.debugCompose), [...ALLOWED]);
      assert.deepEqual(await ask(r.nodeApp, r.debugCompose), [...NODE_REFUSED]);
    });

    it("attacker: the indexer's app id cannot boot a node's compose or a debug compose allowed only for nodes", async () => {
      const r = await arrangeRoles();
      await send(fx, owner.write.addComposeHash([r.debugCompose]));
      assert.deepEqual(await ask(r.indexerApp, r.nodeCompose), [...INDEXER_REFUSED]);
      assert.deepEqual(await ask(r.indexerApp, r.debugCompose), [...INDEXER_REFUSED]);
      assert.deepEqual(await ask(r.nodeApp, r.debugCompose), [...ALLOWED]);
    });

    it("attacker: a member app (the factory's clone) asking through the KMS path cannot boot the indexer's compose", async () => {
      const r = await arrangeRoles();
      const { viaClone } = await cloneAsker();
      assert.deepEqual(await viaClone(r.nodeCompose), [...ALLOWED]);
      assert.deepEqual(await viaClone(r.indexerCompose), [...NODE_REFUSED]);
    });

    it("a compose hash allowed for both roles boots both; denying it for one role leaves the other", async () => {
      const r = await arrangeRoles();
      await send(fx, owner.write.addComposeHashFor([r.nodeCompose, Role.Indexer]));
      assert.deepEqual(await ask(r.indexerApp, r.nodeCompose), [...ALLOWED]);
      const { events } = await send(fx, owner.write.removeComposeHashFor([r.nodeCompose, Role.Indexer]));
      assertEvents(events, [
        { name: "ComposeHashDeniedFor", args: { composeHash: r.nodeCompose, role: Role.Indexer } },
      ]);
      assert.deepEqual(await ask(r.indexerApp, r.nodeCompose), [...INDEXER_REFUSED]);
      assert.deepEqual(await ask(r.nodeApp, r.nodeCompose), [...ALLOWED]);
    });

    it("dstack's role-less management calls act on the node role only", async () => {
      const h = randomHash();
      await send(fx, owner.write.addComposeHash([h]));
      assert.equal(await owner.read.isComposeHashAllowed([h]), true);
      assert.equal(await owner.read.isComposeHashAllowedFor([h, Role.Node]), true);
      assert.equal(await owner.read.isComposeHashAllowedFor([h, Role.Indexer]), false);
      const i = randomHash();
      await send(fx, owner.write.addComposeHashFor([i, Role.Indexer]));
      assert.equal(await owner.read.isComposeHashAllowed([i]), false, "an indexer hash is not a node hash");
      await send(fx, owner.write.removeComposeHash([i]));
      assert.equal(
        await owner.read.isComposeHashAllowedFor([i, Role.Indexer]),
        true,
        "removeComposeHash is node-only",
      );
    });

    it("addAppIdFor allows the app id with the role and emits AppIdAdded and AppRoleSet; addAppId makes it a node again", async () => {
      const a = randomAppId();
      assert.equal(await owner.read.appRole([a]), Role.Node, "an unnamed app id is a node app id");
      const added = await send(fx, owner.write.addAppIdFor([a, Role.Indexer]));
      assertEvents(added.events, [
        { name: "AppIdAdded", args: { appId: a } },
        { name: "AppRoleSet", args: { appId: a, role: Role.Indexer } },
      ]);
      assert.equal(await owner.read.appRole([a]), Role.Indexer);
      assert.equal(await owner.read.isAppIdAllowed([a]), true);
      assertEvents((await send(fx, owner.write.addAppIdFor([a, Role.Indexer]))).events, []);
      const back = await send(fx, owner.write.addAppId([a]));
      assertEvents(back.events, [{ name: "AppRoleSet", args: { appId: a, role: Role.Node } }]);
      assert.equal(await owner.read.appRole([a]), Role.Node);
    });

    it("addAppIdFor refuses the zero app id with ZeroIdentifier and changes nothing", async () => {
      const zero = getAddress(toHex(0, { size: 20 }));
      await expectRefusal(fx, () => owner.write.addAppIdFor([zero, Role.Indexer]), "ZeroIdentifier", [], {
        appIds: [zero],
      });
    });

    it("addAppIdFor refuses a revoked app id with AppIdRevoked and leaves its role", async () => {
      const a = randomAppId();
      await send(fx, owner.write.addAppId([a]));
      const { timestamp } = await send(fx, owner.write.revokeAppId([a, reasonCode("r")]));
      await expectRefusal(
        fx,
        () => owner.write.addAppIdFor([a, Role.Indexer]),
        "AppIdRevoked",
        [a, timestamp],
        {
          appIds: [a],
        },
      );
      assert.equal(await owner.read.appRole([a]), Role.Node);
    });

    it("addAppIdFor refuses to change the role of an app id with an active member (AppIdHasActiveMember)", async () => {
      const node = simulatedNode(fx.kmsRoot);
      const memberId = await admit(fx, node);
      await expectRefusal(
        fx,
        () => owner.write.addAppIdFor([node.appId, Role.Indexer]),
        "AppIdHasActiveMember",
        [node.appId, memberId],
        { appIds: [node.appId] },
      );
      assertEvents((await send(fx, owner.write.addAppIdFor([node.appId, Role.Node]))).events, []);
    });

    it("an indexer's member app (the factory's clone) boots the indexer's compose and not a node's", async () => {
      const r = await arrangeRoles();
      const { app, viaClone } = await cloneAsker();
      await send(fx, owner.write.addAppIdFor([app, Role.Indexer]));
      assert.deepEqual(await viaClone(r.indexerCompose), [...ALLOWED]);
      assert.deepEqual(await viaClone(r.nodeCompose), [...INDEXER_REFUSED]);
    });
  });

  describe("ERC-165", () => {
    it("supports IAppAuth (0x1e079198) and IAppAuthBasicManagement (0x8fd37527)", async () => {
      assert.equal(await owner.read.supportsInterface([APP_AUTH_ID]), true);
      assert.equal(await owner.read.supportsInterface([APP_AUTH_BASIC_MANAGEMENT_ID]), true);
    });

    it("does not claim an unknown interface or the invalid id 0xffffffff", async () => {
      assert.equal(await owner.read.supportsInterface(["0x12345678"]), false);
      assert.equal(await owner.read.supportsInterface(["0xffffffff"]), false);
    });

    it("IAppAuth's id is the selector of isAppAllowed(AppBootInfo), which the cluster ABI declares", () => {
      assert.equal(toFunctionSelector(IS_APP_ALLOWED_SIGNATURE), APP_AUTH_ID);
      const item = clusterAbi.find((x) => x.type === "function" && x.name === "isAppAllowed");
      assert.ok(item !== undefined && item.type === "function");
      assert.equal(toFunctionSelector(item), APP_AUTH_ID);
    });

    it("IAppAuthBasicManagement's id is the XOR of its four selectors", () => {
      const signatures = [
        "addComposeHash(bytes32)",
        "removeComposeHash(bytes32)",
        "addDevice(bytes32)",
        "removeDevice(bytes32)",
      ];
      const xor = signatures
        .map((s) => Number.parseInt(toFunctionSelector(s).slice(2), 16))
        .reduce((a, b) => a ^ b);
      assert.equal(toHex(xor >>> 0, { size: 4 }), APP_AUTH_BASIC_MANAGEMENT_ID);
      for (const name of ["addComposeHash", "removeComposeHash", "addDevice", "removeDevice"]) {
        const item = clusterAbi.find((x) => x.type === "function" && x.name === name);
        assert.ok(item !== undefined && item.type === "function");
        assert.equal(toFunctionSelector(item), toFunctionSelector(`${name}(bytes32)`));
      }
    });

    it("routes isAppAllowed and the four management selectors to the PolicyFacet", async () => {
      const selectors = [
        IS_APP_ALLOWED_SIGNATURE,
        "addComposeHash(bytes32)",
        "removeComposeHash(bytes32)",
        "addDevice(bytes32)",
        "removeDevice(bytes32)",
      ].map((s) => toFunctionSelector(s));
      for (const selector of selectors) {
        assert.equal(
          getAddress(await owner.read.facetAddress([selector])),
          getAddress(fx.deployed.facets.PolicyFacet),
          selector,
        );
      }
    });
  });
});

describe("PolicyFacet policySnapshot", async () => {
  const fx = await setupCluster({ openPolicy: false });
  const owner = fx.owner;

  it("holds only the deployment's KMS root on a new cluster", async () => {
    const s = await owner.read.policySnapshot();
    assert.deepEqual(
      canonical(s),
      canonical({
        allowAnyDevice: false,
        composeHashes: [],
        deviceIds: [],
        appIds: [],
        kmsRoots: [fx.kmsRoot.address],
        requireTcbUpToDate: false,
        indexerComposeHashes: [],
        indexerAppIds: [],
      }),
    );
  });

  it("equals what was set after adds, removals and revocations", async () => {
    const composes = [randomHash(), randomHash(), randomHash()];
    const devices = [randomHash(), randomHash(), randomHash()];
    const apps = [randomAppId(), randomAppId(), randomAppId(), randomAppId()];
    const roots = [randomAppId(), randomAppId()];
    await send(fx, owner.write.setAllowAnyDevice([true]));
    for (const h of composes) await send(fx, owner.write.addComposeHash([h]));
    await send(fx, owner.write.removeComposeHash([composes[1]!]));
    const indexerComposes = [randomHash(), composes[0]!];
    for (const h of indexerComposes) await send(fx, owner.write.addComposeHashFor([h, Role.Indexer]));
    for (const d of devices) await send(fx, owner.write.addDevice([d]));
    await send(fx, owner.write.revokeDevice([devices[0]!, reasonCode("r")]));
    await send(fx, owner.write.revokeDevice([randomHash(), reasonCode("never listed")]));
    for (const a of apps) await send(fx, owner.write.addAppId([a]));
    await send(fx, owner.write.removeAppId([apps[0]!]));
    await send(fx, owner.write.revokeAppId([apps[3]!, reasonCode("r")]));
    await send(fx, owner.write.addAppIdFor([apps[2]!, Role.Indexer]));
    const formerIndexer = randomAppId();
    await send(fx, owner.write.addAppIdFor([formerIndexer, Role.Indexer]));
    await send(fx, owner.write.removeAppId([formerIndexer]));
    for (const k of roots) await send(fx, owner.write.addKmsRoot([k]));
    await send(fx, owner.write.removeKmsRoot([fx.kmsRoot.address]));

    const s = await owner.read.policySnapshot();
    assert.equal(s.allowAnyDevice, true);
    assert.deepEqual(sortedLower(s.composeHashes), sortedLower([composes[0]!, composes[2]!]));
    assert.deepEqual(sortedLower(s.deviceIds), sortedLower([devices[1]!, devices[2]!]));
    assert.deepEqual(sortedLower(s.appIds), sortedLower([apps[1]!, apps[2]!]));
    assert.deepEqual(sortedLower(s.indexerComposeHashes), sortedLower(indexerComposes));
    // Roles outlive the allowance: a removed indexer app id is still listed with its role.
    assert.deepEqual(sortedLower(s.indexerAppIds), sortedLower([apps[2]!, formerIndexer]));
    assert.deepEqual(sortedLower(s.kmsRoots), sortedLower(roots));
  });
});

/** mulberry32: a small seeded PRNG, so a failing sequence can be replayed exactly. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("PolicyFacet audit trail", async () => {
  const fx = await setupCluster({ openPolicy: false });
  const owner = fx.owner;
  const SEED = 0x5eed_a11;
  const OPERATIONS = 60;

  it(`rebuilds the policy and every revocation from the logs alone (seed 0x${SEED.toString(16)})`, async () => {
    const random = prng(SEED);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const bytes = (n: number): Hex => toHex(Uint8Array.from({ length: n }, () => Math.floor(random() * 256)));

    // Two members, so revocations and evictions in the sequence have someone to evict.
    const nodes = [
      simulatedNode(fx.kmsRoot, getAddress(bytes(20))),
      simulatedNode(fx.kmsRoot, getAddress(bytes(20))),
    ];
    const memberIds = new Map<string, bigint>();
    for (const node of nodes) memberIds.set(node.appId.toLowerCase(), await admit(fx, node));

    const composes = Array.from({ length: 5 }, () => bytes(32));
    const devices = Array.from({ length: 5 }, () => bytes(32));
    const apps = [...Array.from({ length: 4 }, () => getAddress(bytes(20))), ...nodes.map((n) => n.appId)];
    const roots = [...Array.from({ length: 3 }, () => getAddress(bytes(20))), fx.kmsRoot.address];

    // The expected policy, kept independently of the contract.
    const model = {
      allowAnyDevice: false,
      requireTcbUpToDate: false,
      // `admit` allowed the members' compose hash and device, which their registrations state.
      composes: new Set<string>(nodes.map((n) => n.claims.composeHash.toLowerCase())),
      indexerComposes: new Set<string>(),
      indexerApps: new Set<string>(),
      devices: new Set<string>(nodes.map((n) => n.claims.deviceId.toLowerCase())),
      apps: new Set<string>(nodes.map((n) => n.appId.toLowerCase())),
      roots: new Set<string>([fx.kmsRoot.address.toLowerCase()]),
      appRevoked: new Map<string, { revokedAt: bigint; reason: Hex }>(),
      deviceRevoked: new Map<string, { revokedAt: bigint; reason: Hex }>(),
    };

    const kinds = [
      "addComposeHash",
      "removeComposeHash",
      "addIndexerComposeHash",
      "removeIndexerComposeHash",
      "addIndexerAppId",
      "addDevice",
      "removeDevice",
      "revokeDevice",
      "addAppId",
      "removeAppId",
      "revokeAppId",
      "addKmsRoot",
      "removeKmsRoot",
      "setAllowAnyDevice",
      "setRequireTcbUpToDate",
      "evict",
    ] as const;
    type Kind = (typeof kinds)[number];
    // Every kind once in a shuffled order first, then random ones, so any seed covers them all.
    const sequence: Kind[] = [...kinds];
    for (let i = sequence.length - 1; i > 0; i -= 1) {
      const j = Math.floor(random() * (i + 1));
      [sequence[i], sequence[j]] = [sequence[j]!, sequence[i]!];
    }
    while (sequence.length < OPERATIONS) sequence.push(pick(kinds));

    const executed = new Set<Kind>();
    let refusals = 0;
    /** When `id` was revoked, expects `write` to fail with `error(id, revokedAt)`, counts it, and says so. */
    const refusedAsRevoked = async (
      revoked: { revokedAt: bigint } | undefined,
      write: () => Promise<Hex>,
      error: string,
      id: Hex,
    ): Promise<boolean> => {
      if (revoked === undefined) return false;
      await expectRevert(write(), error, [id, revoked.revokedAt]);
      refusals += 1;
      return true;
    };
    /** Revokes an entry from `pool` with `revoke`, or, if it already is, expects `error` and counts the refusal; a
     * revoked entry leaves the model's `allowed` set for its `revoked` map. */
    const revokeOne = async (
      pool: readonly Hex[],
      revoke: (id: Hex) => Promise<Hex>,
      reason: Hex,
      error: string,
      allowed: Set<string>,
      revoked: Map<string, { revokedAt: bigint; reason: Hex }>,
    ) => {
      const id = pick(pool);
      const key = id.toLowerCase();
      if (await refusedAsRevoked(revoked.get(key), () => revoke(id), error, id)) return;
      const { timestamp } = await send(fx, revoke(id));
      allowed.delete(key);
      revoked.set(key, { revokedAt: timestamp, reason });
    };
    /** The changes the owner can always make: the call on an entry from a pool, and whether it adds the entry to
     * a set of the model or deletes it (in lower case, as the model keeps them). */
    type Change = readonly [
      pool: readonly Hex[],
      call: (id: Hex) => Promise<Hex>,
      set: Set<string>,
      effect: "add" | "delete",
    ];
    const unconditional: { readonly [K in Kind]?: Change } = {
      addComposeHash: [composes, (h) => owner.write.addComposeHash([h]), model.composes, "add"],
      removeComposeHash: [composes, (h) => owner.write.removeComposeHash([h]), model.composes, "delete"],
      addIndexerComposeHash: [
        composes,
        (h) => owner.write.addComposeHashFor([h, Role.Indexer]),
        model.indexerComposes,
        "add",
      ],
      removeIndexerComposeHash: [
        composes,
        (h) => owner.write.removeComposeHashFor([h, Role.Indexer]),
        model.indexerComposes,
        "delete",
      ],
      removeDevice: [devices, (d) => owner.write.removeDevice([d]), model.devices, "delete"],
      removeAppId: [apps, (a) => owner.write.removeAppId([a]), model.apps, "delete"],
      addKmsRoot: [roots, (k) => owner.write.addKmsRoot([k]), model.roots, "add"],
      removeKmsRoot: [roots, (k) => owner.write.removeKmsRoot([k]), model.roots, "delete"],
    };
    for (const kind of sequence) {
      const reason = bytes(32);
      const change = unconditional[kind];
      if (change !== undefined) {
        const [pool, call, set, effect] = change;
        const id = pick(pool);
        await send(fx, call(id));
        set[effect](id.toLowerCase());
      }
      switch (kind) {
        case "addIndexerAppId": {
          const a = pick(apps);
          const addFor = () => owner.write.addAppIdFor([a, Role.Indexer]);
          if (await refusedAsRevoked(model.appRevoked.get(a.toLowerCase()), addFor, "AppIdRevoked", a)) break;
          const [memberId, active] = await owner.read.memberOfApp([a]);
          if (active && !model.indexerApps.has(a.toLowerCase())) {
            // A running node keeps its role until it has left or been evicted.
            await expectRevert(addFor(), "AppIdHasActiveMember", [a, memberId]);
            refusals += 1;
          } else {
            await send(fx, addFor());
            model.apps.add(a.toLowerCase());
            model.indexerApps.add(a.toLowerCase());
          }
          break;
        }
        case "addDevice": {
          const d = pick(devices);
          const add = () => owner.write.addDevice([d]);
          if (await refusedAsRevoked(model.deviceRevoked.get(d), add, "DeviceIdRevoked", d)) break;
          await send(fx, add());
          model.devices.add(d);
          break;
        }
        case "revokeDevice": {
          const revoke = (d: Hex) => owner.write.revokeDevice([d, reason]);
          await revokeOne(devices, revoke, reason, "DeviceIdRevoked", model.devices, model.deviceRevoked);
          break;
        }
        case "addAppId": {
          const a = pick(apps);
          const add = () => owner.write.addAppId([a]);
          if (await refusedAsRevoked(model.appRevoked.get(a.toLowerCase()), add, "AppIdRevoked", a)) break;
          await send(fx, add());
          model.apps.add(a.toLowerCase());
          // The role-less call makes it a node app id again.
          model.indexerApps.delete(a.toLowerCase());
          break;
        }
        case "revokeAppId": {
          const revoke = (a: Hex) => owner.write.revokeAppId([a, reason]);
          await revokeOne(apps, revoke, reason, "AppIdRevoked", model.apps, model.appRevoked);
          break;
        }
        case "setAllowAnyDevice": {
          const allowAny = random() < 0.5;
          await send(fx, owner.write.setAllowAnyDevice([allowAny]));
          model.allowAnyDevice = allowAny;
          break;
        }
        case "setRequireTcbUpToDate": {
          const required = random() < 0.5;
          await send(fx, owner.write.setRequireTcbUpToDate([required]));
          model.requireTcbUpToDate = required;
          break;
        }
        case "evict": {
          const node = pick(nodes);
          const memberId = memberIds.get(node.appId.toLowerCase())!;
          const { status, endedAt } = await owner.read.member([memberId]);
          if (status === Status.Active) {
            // An eviction disallows the member's app id: a policy change that comes from membership.
            await send(fx, owner.write.evict([memberId, 7]));
            model.apps.delete(node.appId.toLowerCase());
          } else {
            assert.equal(status, Status.Evicted, "nobody leaves in this sequence");
            await expectRevert(owner.write.evict([memberId, 7]), "MemberAlreadyEvicted", [memberId, endedAt]);
            refusals += 1;
          }
          break;
        }
      }
      executed.add(kind);
    }
    assert.equal(executed.size, kinds.length, "every kind of change ran");
    assert.ok(model.appRevoked.size > 0 && model.deviceRevoked.size > 0, "the sequence revoked something");

    const logs = await fx.publicClient.getLogs({
      address: fx.deployed.diamond,
      fromBlock: fx.deployed.deployBlock,
    });
    const decoded = parseEventLogs({ abi: clusterAbi, logs });
    assert.equal(decoded.length, logs.length, "every log of the diamond decodes with the cluster ABI");
    const history = rebuildPolicy(decoded);

    // The logs agree with the contract...
    const snapshot = await owner.read.policySnapshot();
    assert.deepEqual(
      canonical({
        allowAnyDevice: history.allowAnyDevice,
        requireTcbUpToDate: history.requireTcbUpToDate,
        composeHashes: history.composeHashes,
        indexerComposeHashes: history.indexerComposeHashes,
        deviceIds: history.deviceIds,
        appIds: sortedLower(history.appIds),
        indexerAppIds: sortedLower(history.indexerAppIds),
        kmsRoots: sortedLower(history.kmsRoots),
      }),
      canonical(comparableSnapshot(snapshot)),
    );
    for (const a of apps) {
      const fromLogs = history.appIdRevocations.find((r) => r.appId.toLowerCase() === a.toLowerCase());
      assert.equal(fromLogs?.revokedAt ?? 0n, await owner.read.appIdRevokedAt([a]), `revocation of app ${a}`);
    }
    for (const d of devices) {
      const fromLogs = history.deviceRevocations.find((r) => r.deviceId === d.toLowerCase());
      assert.equal(
        fromLogs?.revokedAt ?? 0n,
        await owner.read.deviceRevokedAt([d]),
        `revocation of device ${d}`,
      );
    }

    // ...and with the model, reasons included.
    assert.deepEqual(
      canonical(history),
      canonical({
        allowAnyDevice: model.allowAnyDevice,
        requireTcbUpToDate: model.requireTcbUpToDate,
        composeHashes: sortedLower([...model.composes]),
        indexerComposeHashes: sortedLower([...model.indexerComposes]),
        deviceIds: sortedLower([...model.devices]),
        appIds: sortedLower([...model.apps]).map((a) => getAddress(a)),
        indexerAppIds: sortedLower([...model.indexerApps]).map((a) => getAddress(a)),
        kmsRoots: sortedLower([...model.roots]).map((k) => getAddress(k)),
        appIdRevocations: [...model.appRevoked.entries()]
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([appId, r]) => ({ appId, revokedAt: r.revokedAt, reason: r.reason })),
        deviceRevocations: [...model.deviceRevoked.entries()]
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([deviceId, r]) => ({ deviceId, revokedAt: r.revokedAt, reason: r.reason })),
      }),
    );
    assert.ok(refusals > 0, "the sequence tried changes the contract refused, which must leave no trace");
  });
});
