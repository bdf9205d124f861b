// Revocation that reaches running members: a member states its compose hash and device id at
// registration (signed by its member key), the cluster records them with the KMS root that admitted
// it, and revoking the device or removing the compose hash or the KMS root leaves it non-standing:
// it cannot stay by re-registering, cannot leave and come back with the same static proof, and the
// owner's `evictStale` evicts exactly the stale members.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { createKmsRoot, type KmsRoot } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { deviceFingerprint } from "@attestmesh/shared/contracts/deviceFingerprint.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { type Hash, type Hex, hexToBytes, keccak256, parseAbiItem, toHex, zeroHash } from "viem";
import {
  admit,
  type ClusterFixture,
  randomAppId,
  SIMULATED_COMPOSE_HASH,
  type SimulatedNode,
  setupCluster,
  signRegistration,
  simulatedNode,
} from "../../../test/helpers/cluster.ts";
import { expectRevert } from "../../../test/helpers/revert.ts";

const Status = { None: 0, Active: 1, Left: 2, Evicted: 3 } as const;
const Standing = {
  NotActive: 0,
  Good: 1,
  Unrecorded: 2,
  DeviceRevoked: 3,
  DeviceNotAllowed: 4,
  ComposeHashNotAllowed: 5,
  KmsRootNotAllowed: 6,
} as const;
const EVICTED_STALE = 254;
const REASON = keccak256(toHex("compromised host"));

async function mined(fx: ClusterFixture, hash: Hash) {
  const receipt = await fx.publicClient.waitForTransactionReceipt({ hash });
  assert.equal(receipt.status, "success");
  return receipt;
}

function randomBytes32(): Hex {
  return toHex(randomBytes(32));
}

/** A node on its own machine (a random device id), running `composeHash`, under `kmsRoot`. */
function nodeOn(kmsRoot: KmsRoot, composeHash: Hex = SIMULATED_COMPOSE_HASH): SimulatedNode {
  return simulatedNode(kmsRoot, randomAppId(), {
    deviceId: hexToBytes(randomBytes32()),
    composeHash: hexToBytes(composeHash),
  });
}

/** memberId → the device id of every `MemberDeviceStated` log so far (members held by fingerprint). */
async function statedDevices(fx: ClusterFixture): Promise<Map<bigint, Hex>> {
  const logs = await fx.publicClient.getLogs({
    address: fx.deployed.diamond,
    event: parseAbiItem("event MemberDeviceStated(uint64 indexed memberId, bytes32 deviceId)"),
    fromBlock: 0n,
  });
  return new Map(logs.map((l) => [l.args.memberId!, l.args.deviceId!]));
}

async function standings(fx: ClusterFixture, ids: readonly bigint[]): Promise<number[]> {
  return Promise.all(ids.map((id) => fx.owner.read.memberStanding([id])));
}

async function registerArgs(fx: ClusterFixture, node: SimulatedNode) {
  const nonce = await fx.owner.read.registrationNonce([node.appId]);
  const signature = await signRegistration(fx, node, { nonce });
  return [node.proof, node.wireguardKey, node.identityKey, node.claims, signature] as const;
}

function signLeave(fx: ClusterFixture, node: SimulatedNode, memberId: bigint): Promise<Hex> {
  return node.memberAccount.signTypedData({
    domain: memberDomain(fx.chainId, fx.deployed.diamond),
    types: memberTypes,
    primaryType: "Leave",
    message: { memberId },
  });
}

describe("recorded claims", async () => {
  it("records the stated compose hash and device id with the KMS root the chain recovered", async () => {
    const fx = await setupCluster();
    // A listed device: the owner's addDevice recorded it, so the member keeps its id.
    const node = nodeOn(fx.kmsRoot);
    await mined(fx, await fx.owner.write.addDevice([node.claims.deviceId]));
    const memberId = await admit(fx, node);
    const claims = await fx.owner.read.memberClaims([memberId]);
    assert.equal(claims.composeHash, node.claims.composeHash);
    assert.equal(claims.deviceId, node.claims.deviceId);
    assert.equal(claims.deviceFingerprint, deviceFingerprint(node.claims.deviceId));
    assert.equal(claims.kmsRoot, fx.kmsRoot.address);
    assert.equal(claims.standing, Standing.Good);
    assert.equal(await fx.owner.read.memberStanding([memberId]), Standing.Good);
    // A second member of the same release, on a device no owner call named (allow-any-device): it shares
    // the (compose, KMS root) record and is held by its device's fingerprint; the id is in its log.
    const other = nodeOn(fx.kmsRoot);
    const otherId = await admit(fx, other);
    const otherClaims = await fx.owner.read.memberClaims([otherId]);
    assert.equal(otherClaims.composeHash, node.claims.composeHash);
    assert.equal(otherClaims.deviceId, zeroHash);
    assert.equal(otherClaims.deviceFingerprint, deviceFingerprint(other.claims.deviceId));
    assert.equal(otherClaims.kmsRoot, fx.kmsRoot.address);
    assert.equal(otherClaims.standing, Standing.Good);
    assert.deepEqual(await statedDevices(fx), new Map([[otherId, other.claims.deviceId]]));
  });

  it("an unknown member has no claims and is not active", async () => {
    const fx = await setupCluster();
    const claims = await fx.owner.read.memberClaims([42n]);
    assert.deepEqual(
      [claims.composeHash, claims.deviceId, claims.deviceFingerprint, claims.standing],
      [zeroHash, zeroHash, 0, Standing.NotActive],
    );
  });

  it("the claims are bound by the member key's signature: other claims than signed are refused", async () => {
    const fx = await setupCluster();
    const node = nodeOn(fx.kmsRoot);
    await fx.owner.write.addAppId([node.appId]);
    const [proof, wg, id, claims, signature] = await registerArgs(fx, node);
    const relabelled = { ...claims, deviceId: randomBytes32() };
    const revert = await expectRevert(
      fx.relayer.write.register([proof, wg, id, relabelled, signature]),
      "RegistrationSignatureMismatch",
    );
    assert.equal(revert.args?.[0], node.memberAccount.address);
    assert.notEqual(revert.args?.[1], node.memberAccount.address);
  });
});

describe("joining needs claims the policy admits", async () => {
  it("refuses a compose hash that is not allowed", async () => {
    const fx = await setupCluster();
    const compose = randomBytes32();
    const node = nodeOn(fx.kmsRoot, compose);
    await fx.owner.write.addAppId([node.appId]);
    await expectRevert(fx.relayer.write.register(await registerArgs(fx, node)), "ComposeHashNotAllowed", [
      compose,
    ]);
    assert.equal(await fx.owner.read.isMember([node.appId]), false);
  });

  it("refuses a device outside the allowlist while devices are restricted, and the zero device always", async () => {
    const fx = await setupCluster();
    await mined(fx, await fx.owner.write.setAllowAnyDevice([false]));
    const node = nodeOn(fx.kmsRoot);
    await fx.owner.write.addAppId([node.appId]);
    await expectRevert(fx.relayer.write.register(await registerArgs(fx, node)), "DeviceNotAllowed", [
      node.claims.deviceId,
    ]);
    await mined(fx, await fx.owner.write.addDevice([node.claims.deviceId]));
    await mined(fx, await fx.relayer.write.register(await registerArgs(fx, node)));
    assert.equal(await fx.owner.read.isMember([node.appId]), true);

    await mined(fx, await fx.owner.write.setAllowAnyDevice([true]));
    const zero = simulatedNode(fx.kmsRoot, randomAppId(), { deviceId: new Uint8Array(32) });
    await fx.owner.write.addAppId([zero.appId]);
    await expectRevert(fx.relayer.write.register(await registerArgs(fx, zero)), "DeviceNotAllowed", [
      zeroHash,
    ]);
  });

  it("refuses a revoked device even while any device is allowed", async () => {
    const fx = await setupCluster();
    const node = nodeOn(fx.kmsRoot);
    const receipt = await mined(fx, await fx.owner.write.revokeDevice([node.claims.deviceId, REASON]));
    const block = await fx.publicClient.getBlock({ blockNumber: receipt.blockNumber });
    await fx.owner.write.addAppId([node.appId]);
    await expectRevert(fx.relayer.write.register(await registerArgs(fx, node)), "DeviceIdRevoked", [
      node.claims.deviceId,
      block.timestamp,
    ]);
    // With devices restricted the refusal still names the revocation, not just the missing listing.
    await mined(fx, await fx.owner.write.setAllowAnyDevice([false]));
    await expectRevert(fx.relayer.write.register(await registerArgs(fx, node)), "DeviceIdRevoked", [
      node.claims.deviceId,
      block.timestamp,
    ]);
  });

  it("a device taken off the allowlist (not revoked) leaves its members non-standing while devices are restricted", async () => {
    const fx = await setupCluster();
    await mined(fx, await fx.owner.write.setAllowAnyDevice([false]));
    const node = nodeOn(fx.kmsRoot);
    const memberId = await admit(fx, node);
    assert.equal(await fx.owner.read.memberStanding([memberId]), Standing.Good);
    await mined(fx, await fx.owner.write.removeDevice([node.claims.deviceId]));
    assert.equal(await fx.owner.read.memberStanding([memberId]), Standing.DeviceNotAllowed);
    const [page, nextId] = await fx.owner.read.memberStandings([1n, 10n]);
    assert.deepEqual([page, nextId], [[Standing.DeviceNotAllowed], 0n]);
    // Allowing any device again restores it: standing follows the policy, it is not a one-way flag.
    await mined(fx, await fx.owner.write.setAllowAnyDevice([true]));
    assert.equal(await fx.owner.read.memberStanding([memberId]), Standing.Good);
  });
});

/** A running member, then the owner's change that makes it stale, and the standing that follows. */
type Scenario = {
  name: string;
  /** Builds the node (on a second KMS root or compose where the change needs one). */
  node(fx: ClusterFixture, extraRoot: KmsRoot, extraCompose: Hex): SimulatedNode;
  revoke(fx: ClusterFixture, node: SimulatedNode, extraRoot: KmsRoot, extraCompose: Hex): Promise<Hash>;
  standing: number;
  /** The refusal of a fresh registration with the same claims. */
  refusal: (
    node: SimulatedNode,
    extraRoot: KmsRoot,
    extraCompose: Hex,
  ) => [string, readonly unknown[] | undefined];
};

const SCENARIOS: Scenario[] = [
  {
    name: "revoked device",
    node: (fx) => nodeOn(fx.kmsRoot),
    revoke: (fx, node) => fx.owner.write.revokeDevice([node.claims.deviceId, REASON]),
    standing: Standing.DeviceRevoked,
    refusal: () => ["DeviceIdRevoked", undefined],
  },
  {
    name: "withdrawn compose hash",
    node: (fx, _root, compose) => nodeOn(fx.kmsRoot, compose),
    revoke: (fx, _node, _root, compose) => fx.owner.write.removeComposeHash([compose]),
    standing: Standing.ComposeHashNotAllowed,
    refusal: (_node, _root, compose) => ["ComposeHashNotAllowed", [compose]],
  },
  {
    name: "removed KMS root",
    node: (_fx, root) => nodeOn(root),
    revoke: (fx, _node, root) => fx.owner.write.removeKmsRoot([root.address]),
    standing: Standing.KmsRootNotAllowed,
    refusal: (_node, root) => ["KmsRootNotAllowed", [root.address]],
  },
];

async function withExtras(fx: ClusterFixture) {
  const extraRoot = createKmsRoot(randomBytes(32));
  const extraCompose = randomBytes32();
  await mined(fx, await fx.owner.write.addKmsRoot([extraRoot.address]));
  await mined(fx, await fx.owner.write.addComposeHash([extraCompose]));
  return { extraRoot, extraCompose };
}

describe("a member the owner revoked cannot stay", async () => {
  for (const scenario of SCENARIOS) {
    it(`${scenario.name}: stale at once, no re-registration while active, no way back after leaving`, async () => {
      const fx = await setupCluster();
      const { extraRoot, extraCompose } = await withExtras(fx);
      const node = scenario.node(fx, extraRoot, extraCompose);
      const memberId = await admit(fx, node);
      const restart = await registerArgs(fx, node);
      assert.equal(await fx.owner.read.memberStanding([memberId]), Standing.Good);

      await mined(fx, await scenario.revoke(fx, node, extraRoot, extraCompose));
      assert.equal(await fx.owner.read.memberStanding([memberId]), scenario.standing);
      assert.equal((await fx.owner.read.memberClaims([memberId])).standing, scenario.standing);

      // Staying: the restart no-op no longer answers "you are member N".
      if (scenario.standing === Standing.KmsRootNotAllowed) {
        // The KMS root check comes first for every registration, so the chain itself is refused.
        await expectRevert(fx.relayer.write.register(restart), "KmsRootNotAllowed", [extraRoot.address]);
      } else {
        await expectRevert(fx.relayer.write.register(restart), "MemberNotStanding", [
          memberId,
          scenario.standing,
        ]);
      }

      // Leaving and coming back with the same static proof and a fresh signature.
      await mined(fx, await fx.relayer.write.leaveCluster([memberId, await signLeave(fx, node, memberId)]));
      const [name, args] = scenario.refusal(node, extraRoot, extraCompose);
      await expectRevert(fx.relayer.write.register(await registerArgs(fx, node)), name, args);
      assert.equal(await fx.owner.read.isMember([node.appId]), false);
      assert.equal(await fx.owner.read.memberStanding([memberId]), Standing.NotActive);
    });
  }
});

describe("evictStale", async () => {
  it("evicts exactly the stale members, page by page, and leaves the standing ones", async () => {
    const fx = await setupCluster();
    const { extraRoot, extraCompose } = await withExtras(fx);
    const good = nodeOn(fx.kmsRoot);
    const onRevokedDevice = nodeOn(fx.kmsRoot);
    const leaver = nodeOn(fx.kmsRoot, extraCompose);
    const onOldCompose = nodeOn(fx.kmsRoot, extraCompose);
    const underOldRoot = nodeOn(extraRoot);
    const good2 = nodeOn(fx.kmsRoot);
    const ids: bigint[] = [];
    for (const node of [good, onRevokedDevice, leaver, onOldCompose, underOldRoot, good2]) {
      ids.push(await admit(fx, node));
    }
    const [goodId, revokedId, leaverId, composeId, rootId, good2Id] = ids as [
      bigint,
      bigint,
      bigint,
      bigint,
      bigint,
      bigint,
    ];
    await mined(fx, await fx.relayer.write.leaveCluster([leaverId, await signLeave(fx, leaver, leaverId)]));
    await mined(fx, await fx.owner.write.revokeDevice([onRevokedDevice.claims.deviceId, REASON]));
    await mined(fx, await fx.owner.write.removeComposeHash([extraCompose]));
    await mined(fx, await fx.owner.write.removeKmsRoot([extraRoot.address]));

    await expectRevert(fx.stranger.write.evictStale([1n, 100n]), "NotOwner", [fx.strangerAddress]);

    // Pages of two: [1, 2], [3, 4], [5, 6].
    const pages: Array<{ evicted: bigint; nextId: bigint }> = [];
    let next = 1n;
    do {
      const { result } = await fx.owner.simulate.evictStale([next, 2n]);
      await mined(fx, await fx.owner.write.evictStale([next, 2n]));
      pages.push({ evicted: result[0], nextId: result[1] });
      next = result[1];
    } while (next !== 0n);
    assert.deepEqual(pages, [
      { evicted: 1n, nextId: 3n },
      { evicted: 1n, nextId: 5n },
      { evicted: 1n, nextId: 0n },
    ]);

    for (const [id, status, reason] of [
      [goodId, Status.Active, 0],
      [revokedId, Status.Evicted, EVICTED_STALE],
      [leaverId, Status.Left, 0],
      [composeId, Status.Evicted, EVICTED_STALE],
      [rootId, Status.Evicted, EVICTED_STALE],
      [good2Id, Status.Active, 0],
    ] as const) {
      const record = await fx.owner.read.member([id]);
      assert.deepEqual([record.status, record.endReason], [status, reason], `member ${id}`);
    }
    // The evicted members' app ids are disallowed, as any eviction's are.
    assert.equal(await fx.owner.read.isAppIdAllowed([onOldCompose.appId]), false);
    assert.equal(await fx.owner.read.isAppIdAllowed([good.appId]), true);
    // A second sweep finds nothing; an empty or out-of-range page does nothing.
    const { result: again } = await fx.owner.simulate.evictStale([1n, 100n]);
    assert.deepEqual(again, [0n, 0n]);
    const { result: beyond } = await fx.owner.simulate.evictStale([99n, 10n]);
    assert.deepEqual(beyond, [0n, 0n]);
    const { result: none } = await fx.owner.simulate.evictStale([1n, 0n]);
    assert.deepEqual(none, [0n, 0n]);
  });
});

// Registration decides the claims with one read of the device's record and one of the (compose hash,
// KMS root) pair's, which the owner's policy calls keep (issue 13's gas budget). These pin that the
// records follow the policy both ways, so a withdrawn entry never admits and a re-allowed one does.
describe("the records the owner's policy calls keep", async () => {
  it("a compose hash withdrawn and allowed again: refused between, admitted after, the member stands again", async () => {
    const fx = await setupCluster();
    const { extraCompose } = await withExtras(fx);
    const running = nodeOn(fx.kmsRoot, extraCompose);
    const runningId = await admit(fx, running);
    await mined(fx, await fx.owner.write.removeComposeHash([extraCompose]));
    const joiner = nodeOn(fx.kmsRoot, extraCompose);
    await fx.owner.write.addAppId([joiner.appId]);
    await expectRevert(fx.relayer.write.register(await registerArgs(fx, joiner)), "ComposeHashNotAllowed", [
      extraCompose,
    ]);
    await mined(fx, await fx.owner.write.addComposeHash([extraCompose]));
    assert.equal(await fx.owner.read.memberStanding([runningId]), Standing.Good);
    await mined(fx, await fx.relayer.write.register(await registerArgs(fx, joiner)));
    const [joinerId] = await fx.owner.read.memberOfApp([joiner.appId]);
    const claims = await fx.owner.read.memberClaims([joinerId]);
    assert.deepEqual([claims.composeHash, claims.kmsRoot], [extraCompose, fx.kmsRoot.address]);
  });

  it("a KMS root removed and allowed again: its pairs with every allowed compose hash come back", async () => {
    const fx = await setupCluster();
    const { extraRoot, extraCompose } = await withExtras(fx);
    await mined(fx, await fx.owner.write.removeKmsRoot([extraRoot.address]));
    // A compose hash allowed while the root was out must pair with it once the root is back.
    const later = randomBytes32();
    await mined(fx, await fx.owner.write.addComposeHash([later]));
    await mined(fx, await fx.owner.write.addKmsRoot([extraRoot.address]));
    for (const compose of [extraCompose, later, SIMULATED_COMPOSE_HASH]) {
      const node = nodeOn(extraRoot, compose);
      const memberId = await admit(fx, node);
      assert.equal(await fx.owner.read.memberStanding([memberId]), Standing.Good, compose);
      assert.equal((await fx.owner.read.memberClaims([memberId])).kmsRoot, extraRoot.address);
    }
  });

  it("a device removed from the allowlist and added again: refused between, admitted after", async () => {
    const fx = await setupCluster();
    await mined(fx, await fx.owner.write.setAllowAnyDevice([false]));
    const node = nodeOn(fx.kmsRoot);
    await mined(fx, await fx.owner.write.addDevice([node.claims.deviceId]));
    await mined(fx, await fx.owner.write.removeDevice([node.claims.deviceId]));
    await fx.owner.write.addAppId([node.appId]);
    await expectRevert(fx.relayer.write.register(await registerArgs(fx, node)), "DeviceNotAllowed", [
      node.claims.deviceId,
    ]);
    await mined(fx, await fx.owner.write.addDevice([node.claims.deviceId]));
    await mined(fx, await fx.relayer.write.register(await registerArgs(fx, node)));
    const [memberId] = await fx.owner.read.memberOfApp([node.appId]);
    assert.equal((await fx.owner.read.memberClaims([memberId])).deviceId, node.claims.deviceId);
  });

  it("a device revoked after it was listed is refused although the allowlist once had it", async () => {
    const fx = await setupCluster();
    await mined(fx, await fx.owner.write.setAllowAnyDevice([false]));
    const node = nodeOn(fx.kmsRoot);
    await mined(fx, await fx.owner.write.addDevice([node.claims.deviceId]));
    const receipt = await mined(fx, await fx.owner.write.revokeDevice([node.claims.deviceId, REASON]));
    const block = await fx.publicClient.getBlock({ blockNumber: receipt.blockNumber });
    await fx.owner.write.addAppId([node.appId]);
    for (const anyDevice of [false, true]) {
      await mined(fx, await fx.owner.write.setAllowAnyDevice([anyDevice]));
      await expectRevert(fx.relayer.write.register(await registerArgs(fx, node)), "DeviceIdRevoked", [
        node.claims.deviceId,
        block.timestamp,
      ]);
    }
  });

  it("an unlisted device under allow-any-device is held by fingerprint by every member on it, kept after they end", async () => {
    const fx = await setupCluster();
    const deviceId = randomBytes32();
    const onMachine = () =>
      simulatedNode(fx.kmsRoot, randomAppId(), {
        deviceId: hexToBytes(deviceId),
        composeHash: hexToBytes(SIMULATED_COMPOSE_HASH),
      });
    const first = onMachine();
    const second = onMachine();
    const firstId = await admit(fx, first);
    const secondId = await admit(fx, second);
    for (const id of [firstId, secondId]) {
      const claims = await fx.owner.read.memberClaims([id]);
      assert.deepEqual([claims.deviceId, claims.deviceFingerprint], [zeroHash, deviceFingerprint(deviceId)]);
    }
    // The id each stated is in its registration's log.
    assert.deepEqual(
      await statedDevices(fx),
      new Map([
        [firstId, deviceId],
        [secondId, deviceId],
      ]),
    );
    // The device word moves into the record when the membership ends, like the member key.
    await mined(fx, await fx.relayer.write.leaveCluster([firstId, await signLeave(fx, first, firstId)]));
    await mined(fx, await fx.owner.write.evict([secondId, 1]));
    for (const id of [firstId, secondId]) {
      const claims = await fx.owner.read.memberClaims([id]);
      assert.deepEqual(
        [claims.composeHash, claims.deviceId, claims.deviceFingerprint, claims.kmsRoot, claims.standing],
        [
          SIMULATED_COMPOSE_HASH,
          zeroHash,
          deviceFingerprint(deviceId),
          fx.kmsRoot.address,
          Standing.NotActive,
        ],
      );
    }
    // Revoking the device refuses its members' return.
    await mined(fx, await fx.owner.write.revokeDevice([deviceId, REASON]));
    await expectRevert(fx.relayer.write.register(await registerArgs(fx, first)), "DeviceIdRevoked");
  });

  it("a device listed after members joined on it unlisted keeps them by fingerprint; a listed device by its id", async () => {
    const fx = await setupCluster();
    const deviceId = randomBytes32();
    const onMachine = () =>
      simulatedNode(fx.kmsRoot, randomAppId(), {
        deviceId: hexToBytes(deviceId),
        composeHash: hexToBytes(SIMULATED_COMPOSE_HASH),
      });
    const early = onMachine();
    const earlyId = await admit(fx, early);
    await mined(fx, await fx.owner.write.addDevice([deviceId]));
    const late = onMachine();
    const lateId = await admit(fx, late);
    assert.equal((await fx.owner.read.memberClaims([earlyId])).deviceId, zeroHash);
    assert.equal((await fx.owner.read.memberClaims([lateId])).deviceId, deviceId);
    // Devices restricted: both stand while the device is listed (the early one through the
    // fingerprint the listing marked), neither once it is removed.
    await mined(fx, await fx.owner.write.setAllowAnyDevice([false]));
    assert.deepEqual(await standings(fx, [earlyId, lateId]), [Standing.Good, Standing.Good]);
    await mined(fx, await fx.owner.write.removeDevice([deviceId]));
    assert.deepEqual(await standings(fx, [earlyId, lateId]), [
      Standing.DeviceNotAllowed,
      Standing.DeviceNotAllowed,
    ]);
    // A device removed from the list keeps its record: a member joining on it under allow-any-device
    // again is held by its id.
    await mined(fx, await fx.owner.write.setAllowAnyDevice([true]));
    const third = onMachine();
    const thirdId = await admit(fx, third);
    assert.equal((await fx.owner.read.memberClaims([thirdId])).deviceId, deviceId);
    assert.equal(await fx.owner.read.memberStanding([thirdId]), Standing.Good);
  });
});

/**
 * Two device ids with one fingerprint, found by the birthday bound (~2^16 hashes): the collision a
 * member cannot aim for (its device id is its hardware's) but that the bound in
 * `LibMemberClaims.fingerprintOf` accounts for.
 */
function collidingDevices(): [Hex, Hex] {
  const seen = new Map<number, Hex>();
  for (let i = 0n; ; i++) {
    const deviceId = keccak256(toHex(i, { size: 32 }));
    const fingerprint = deviceFingerprint(deviceId);
    const earlier = seen.get(fingerprint);
    if (earlier !== undefined) return [earlier, deviceId];
    seen.set(fingerprint, deviceId);
  }
}

describe("members held by fingerprint (a device no owner call named)", async () => {
  it("revoking the device makes every member on it stale, and evictStale evicts exactly them", async () => {
    const fx = await setupCluster();
    const deviceId = randomBytes32();
    const onMachine = () =>
      simulatedNode(fx.kmsRoot, randomAppId(), {
        deviceId: hexToBytes(deviceId),
        composeHash: hexToBytes(SIMULATED_COMPOSE_HASH),
      });
    const bystander = nodeOn(fx.kmsRoot);
    const ids = [
      await admit(fx, onMachine()),
      await admit(fx, bystander),
      await admit(fx, onMachine()),
    ] as const;
    assert.deepEqual(await standings(fx, ids), [Standing.Good, Standing.Good, Standing.Good]);
    const revokeGas = await fx.owner.estimateGas.revokeDevice([deviceId, REASON]);
    await mined(fx, await fx.owner.write.revokeDevice([deviceId, REASON]));
    assert.deepEqual(await standings(fx, ids), [
      Standing.DeviceRevoked,
      Standing.Good,
      Standing.DeviceRevoked,
    ]);
    const { result } = await fx.owner.simulate.evictStale([1n, 10n]);
    assert.deepEqual(result, [2n, 0n]);
    await mined(fx, await fx.owner.write.evictStale([1n, 10n]));
    const statuses = await Promise.all(ids.map(async (id) => (await fx.owner.read.member([id])).status));
    assert.deepEqual(statuses, [Status.Evicted, Status.Active, Status.Evicted]);
    assert.equal((await fx.owner.read.member([ids[0]])).endReason, EVICTED_STALE);
    // The owner's revoke pays for the fingerprint mark (one new slot).
    assert.ok(revokeGas < 120_000n, `revokeDevice gas ${revokeGas}`);
  });

  it("allow-any-device turned off: a member on an unnamed device stops standing, listing its device restores it", async () => {
    const fx = await setupCluster();
    const node = nodeOn(fx.kmsRoot);
    const memberId = await admit(fx, node);
    await mined(fx, await fx.owner.write.setAllowAnyDevice([false]));
    assert.equal(await fx.owner.read.memberStanding([memberId]), Standing.DeviceNotAllowed);
    await mined(fx, await fx.owner.write.addDevice([node.claims.deviceId]));
    assert.equal(await fx.owner.read.memberStanding([memberId]), Standing.Good);
    // Turned on again and off again, the mirror the registration reads follows.
    await mined(fx, await fx.owner.write.setAllowAnyDevice([true]));
    await mined(fx, await fx.owner.write.removeDevice([node.claims.deviceId]));
    assert.equal(await fx.owner.read.memberStanding([memberId]), Standing.Good);
    const joiner = nodeOn(fx.kmsRoot);
    await admit(fx, joiner);
    await mined(fx, await fx.owner.write.setAllowAnyDevice([false]));
    const late = nodeOn(fx.kmsRoot);
    await fx.owner.write.addAppId([late.appId]);
    await expectRevert(fx.relayer.write.register(await registerArgs(fx, late)), "DeviceNotAllowed", [
      late.claims.deviceId,
    ]);
  });

  it("a fingerprint collision: registration checks the exact id; standing errs only as documented", async () => {
    const fx = await setupCluster();
    const [revokedDevice, innocentDevice] = collidingDevices();
    assert.notEqual(revokedDevice, innocentDevice);
    assert.equal(deviceFingerprint(revokedDevice), deviceFingerprint(innocentDevice));
    const onDevice = (deviceId: Hex) =>
      simulatedNode(fx.kmsRoot, randomAppId(), {
        deviceId: hexToBytes(deviceId),
        composeHash: hexToBytes(SIMULATED_COMPOSE_HASH),
      });
    // The owner revokes one device; the other, never revoked, still joins (registration reads the
    // exact id), is judged by the revoked fingerprint at once, and evictStale evicts it: the one
    // failure a collision causes under revocation is an innocent member evicted, never a revoked one kept.
    await mined(fx, await fx.owner.write.revokeDevice([revokedDevice, REASON]));
    const revokedNode = onDevice(revokedDevice);
    await fx.owner.write.addAppId([revokedNode.appId]);
    await expectRevert(fx.relayer.write.register(await registerArgs(fx, revokedNode)), "DeviceIdRevoked");
    const innocentId = await admit(fx, onDevice(innocentDevice));
    assert.equal(await fx.owner.read.memberStanding([innocentId]), Standing.DeviceRevoked);
    const { result } = await fx.owner.simulate.evictStale([1n, 10n]);
    assert.deepEqual(result, [1n, 0n]);
  });

  it("a fingerprint collision under a device allowlist: an unnamed device sharing a listed one's fingerprint is judged listed", async () => {
    const fx = await setupCluster();
    const [listedDevice, unnamedDevice] = collidingDevices();
    const memberId = await admit(
      fx,
      simulatedNode(fx.kmsRoot, randomAppId(), {
        deviceId: hexToBytes(unnamedDevice),
        composeHash: hexToBytes(SIMULATED_COMPOSE_HASH),
      }),
    );
    await mined(fx, await fx.owner.write.addDevice([listedDevice]));
    await mined(fx, await fx.owner.write.setAllowAnyDevice([false]));
    // The documented bound: only the owner's own listing can cause this (it chose the listed id).
    assert.equal(await fx.owner.read.memberStanding([memberId]), Standing.Good);
    await mined(fx, await fx.owner.write.removeDevice([listedDevice]));
    assert.equal(await fx.owner.read.memberStanding([memberId]), Standing.DeviceNotAllowed);
  });
});
