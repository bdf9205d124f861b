// Membership facet: admission, the restart no-op, departure by leaving and by eviction, re-admission,
// and the paginated member directory.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { containsIp, parseMeshCidr } from "@attestmesh/shared/mesh/cidr.ts";
import {
  type Address,
  type ContractEventName,
  encodeFunctionData,
  type Hash,
  type Hex,
  type Log,
  parseEventLogs,
  recoverTypedDataAddress,
  zeroAddress,
  zeroHash,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import {
  admit,
  type ClusterFixture,
  MESH_CIDR,
  type SimulatedNode,
  setupCluster,
  signRegistration,
  simulatedNode,
} from "../../../test/helpers/cluster.ts";
import { expectRevert } from "../../../test/helpers/revert.ts";

const Status = { None: 0, Active: 1, Left: 2, Evicted: 3 } as const;
const MESH = parseMeshCidr(MESH_CIDR);
const HOSTS = 2 ** (32 - MESH.prefixLength) - 2;

async function mined(fx: ClusterFixture, hash: Hash) {
  const receipt = await fx.publicClient.waitForTransactionReceipt({ hash });
  assert.equal(receipt.status, "success");
  const block = await fx.publicClient.getBlock({ blockNumber: receipt.blockNumber });
  return { receipt, timestamp: Number(block.timestamp) };
}

function eventsOf<const N extends ContractEventName<typeof clusterAbi>>(logs: Log[], eventName: N) {
  return parseEventLogs({ abi: clusterAbi, logs, eventName });
}

async function registerArgs(fx: ClusterFixture, node: SimulatedNode) {
  const nonce = await fx.owner.read.registrationNonce([node.appId]);
  const signature = await signRegistration(fx, node, { nonce });
  return [node.proof, node.wireguardKey, node.identityKey, node.claims, signature] as const;
}

function signLeave(
  fx: ClusterFixture,
  account: SimulatedNode["memberAccount"],
  memberId: bigint,
): Promise<Hex> {
  return account.signTypedData({
    domain: memberDomain(fx.chainId, fx.deployed.diamond),
    types: memberTypes,
    primaryType: "Leave",
    message: { memberId },
  });
}

/** The address a registration signature recovers to under the digest the contract builds for `nonce`. */
function registrationSigner(fx: ClusterFixture, node: SimulatedNode, nonce: bigint, signature: Hex) {
  return recoverTypedDataAddress({
    domain: memberDomain(fx.chainId, fx.deployed.diamond),
    types: memberTypes,
    primaryType: "Register",
    message: {
      appId: node.appId,
      wireguardKey: node.wireguardKey,
      identityKey: node.identityKey,
      ...node.claims,
      nonce,
    },
    signature,
  });
}

/** Everything about one app id and the mesh that a refused call must leave untouched. */
async function appState(fx: ClusterFixture, appId: Address) {
  return {
    nonce: await fx.owner.read.registrationNonce([appId]),
    memberOfApp: await fx.owner.read.memberOfApp([appId]),
    isMember: await fx.owner.read.isMember([appId]),
    mesh: await fx.owner.read.meshConfig(),
  };
}

function randomKey(): Hex {
  return generatePrivateKey();
}

describe("register", async () => {
  const fx = await setupCluster();

  it("admits a member, emits MemberRegistered with its keys, mesh IP and KMS root, and records it", async () => {
    const node = simulatedNode(fx.kmsRoot);
    await fx.owner.write.addAppId([node.appId]);
    const [, , lastBefore, activeBefore] = await fx.owner.read.meshConfig();
    assert.equal(await fx.owner.read.registrationNonce([node.appId]), 0n);
    assert.deepEqual(await fx.owner.read.memberOfApp([node.appId]), [0n, false]);
    assert.equal(await fx.owner.read.isMember([node.appId]), false);

    const args = await registerArgs(fx, node);
    const { result: returnedId } = await fx.relayer.simulate.register(args);
    const { receipt, timestamp } = await mined(fx, await fx.relayer.write.register(args));
    const expectedId = lastBefore + 1n;
    assert.equal(returnedId, expectedId);

    const [event, ...more] = eventsOf(receipt.logs, "MemberRegistered");
    assert.equal(more.length, 0);
    assert.deepEqual(event?.args, {
      memberId: expectedId,
      appId: node.appId,
      memberKey: node.memberAccount.address,
      wireguardKey: node.wireguardKey,
      identityKey: node.identityKey,
      // First choice: the member id's own host offset (free, as no id has wrapped yet).
      meshIp: MESH.base + Number(((expectedId - 1n) % BigInt(HOSTS)) + 1n),
      kmsRoot: fx.kmsRoot.address,
    });
    assert.ok(containsIp(MESH, event.args.meshIp), "the mesh IP is a host address inside the CIDR");

    assert.deepEqual(await fx.owner.read.member([expectedId]), {
      memberId: expectedId,
      appId: node.appId,
      memberKey: node.memberAccount.address,
      wireguardKey: node.wireguardKey,
      identityKey: node.identityKey,
      meshIp: event.args.meshIp,
      status: Status.Active,
      registeredAt: timestamp,
      endedAt: 0,
      endReason: 0,
    });
    assert.deepEqual(await fx.owner.read.memberOfApp([node.appId]), [expectedId, true]);
    assert.equal(await fx.owner.read.isMember([node.appId]), true);
    assert.equal(await fx.owner.read.registrationNonce([node.appId]), 1n);
    assert.deepEqual(await fx.owner.read.meshConfig(), [
      MESH.base,
      MESH.prefixLength,
      expectedId,
      activeBefore + 1n,
    ]);
  });

  it("answers a restarted node that re-submits the same keys with its member id, no event and the same nonce", async () => {
    const node = simulatedNode(fx.kmsRoot);
    const args = await registerArgs(fx, node);
    await fx.owner.write.addAppId([node.appId]);
    const { receipt: first } = await mined(fx, await fx.relayer.write.register(args));
    const [registered] = eventsOf(first.logs, "MemberRegistered");
    const memberId = registered!.args.memberId;
    const before = await appState(fx, node.appId);
    const record = await fx.owner.read.member([memberId]);

    // The very same transaction again (old nonce signature), and a fresh signature over the current nonce.
    const { result: replayedId } = await fx.stranger.simulate.register(args);
    assert.equal(replayedId, memberId);
    const { receipt: replay } = await mined(fx, await fx.stranger.write.register(args));
    assert.equal(replay.logs.length, 0, "a no-op emits nothing");
    const fresh = await registerArgs(fx, node);
    const { result: freshId } = await fx.relayer.simulate.register(fresh);
    assert.equal(freshId, memberId);
    const { receipt: again } = await mined(fx, await fx.relayer.write.register(fresh));
    assert.equal(again.logs.length, 0, "a no-op emits nothing");

    assert.deepEqual(await appState(fx, node.appId), before);
    assert.equal(before.nonce, 1n);
    assert.deepEqual(await fx.owner.read.member([memberId]), record);
  });

  it("refuses other keys for an app id that has an active member with AppIdHasMember", async () => {
    const node = simulatedNode(fx.kmsRoot);
    const memberId = await admit(fx, node);
    const before = await appState(fx, node.appId);
    const nonce = before.nonce;
    for (const keys of [
      { wireguardKey: randomKey(), identityKey: node.identityKey },
      { wireguardKey: node.wireguardKey, identityKey: randomKey() },
    ]) {
      const signature = await signRegistration(fx, node, { nonce, ...keys });
      await expectRevert(
        fx.relayer.write.register([node.proof, keys.wireguardKey, keys.identityKey, node.claims, signature]),
        "AppIdHasMember",
        [node.appId, memberId],
      );
    }
    assert.deepEqual(await appState(fx, node.appId), before);
  });

  it("refuses a zero WireGuard key or a zero identity key with ZeroKey, even when properly signed", async () => {
    const node = simulatedNode(fx.kmsRoot);
    await fx.owner.write.addAppId([node.appId]);
    const before = await appState(fx, node.appId);
    for (const keys of [
      { wireguardKey: zeroHash, identityKey: node.identityKey },
      { wireguardKey: node.wireguardKey, identityKey: zeroHash },
      { wireguardKey: zeroHash, identityKey: zeroHash },
    ]) {
      const signature = await signRegistration(fx, node, { nonce: 0n, ...keys });
      await expectRevert(
        fx.relayer.write.register([node.proof, keys.wireguardKey, keys.identityKey, node.claims, signature]),
        "ZeroKey",
        [],
      );
    }
    assert.deepEqual(await appState(fx, node.appId), before);
  });

  it("takes a registration from any sender: the member key is the chain's, never msg.sender", async () => {
    for (const submitter of [fx.stranger, fx.owner, fx.relayer]) {
      const node = simulatedNode(fx.kmsRoot);
      await fx.owner.write.addAppId([node.appId]);
      const { receipt } = await mined(fx, await submitter.write.register(await registerArgs(fx, node)));
      const [event] = eventsOf(receipt.logs, "MemberRegistered");
      const record = await fx.owner.read.member([event!.args.memberId]);
      assert.equal(record.memberKey, node.memberAccount.address);
      assert.equal(record.status, Status.Active);
      assert.notEqual(record.memberKey, receipt.from);
    }
  });
});

describe("leaveCluster", async () => {
  const fx = await setupCluster();

  it("lets a member leave with its own signature: MemberLeft, status Left, address freed, app id still allowed", async () => {
    const node = simulatedNode(fx.kmsRoot);
    const memberId = await admit(fx, node);
    const [, , , activeBefore] = await fx.owner.read.meshConfig();
    const signature = await signLeave(fx, node.memberAccount, memberId);
    const { receipt, timestamp } = await mined(
      fx,
      await fx.stranger.write.leaveCluster([memberId, signature]),
    );

    const left = eventsOf(receipt.logs, "MemberLeft");
    assert.deepEqual(
      left.map((e) => e.args),
      [{ memberId, appId: node.appId }],
    );
    assert.equal(eventsOf(receipt.logs, "MemberEvicted").length, 0);
    const record = await fx.owner.read.member([memberId]);
    assert.equal(record.status, Status.Left);
    assert.equal(record.endedAt, timestamp);
    assert.equal(record.endReason, 0);
    assert.deepEqual(await fx.owner.read.memberOfApp([node.appId]), [memberId, false]);
    assert.equal(await fx.owner.read.isMember([node.appId]), false);
    assert.equal((await fx.owner.read.meshConfig())[3], activeBefore - 1n);
    assert.equal(await fx.owner.read.isAppIdAllowed([node.appId]), true, "leaving does not disallow the app");
  });

  it("refuses a leave signed by any key but the member's with MemberSignatureMismatch", async () => {
    const node = simulatedNode(fx.kmsRoot);
    const other = simulatedNode(fx.kmsRoot);
    const memberId = await admit(fx, node);
    const otherId = await admit(fx, other);
    const before = await appState(fx, node.appId);
    const attacker = privateKeyToAccount(generatePrivateKey());

    await expectRevert(
      fx.stranger.write.leaveCluster([memberId, await signLeave(fx, attacker, memberId)]),
      "MemberSignatureMismatch",
      [memberId, attacker.address],
    );
    // Another member of the same cluster cannot make it leave either.
    await expectRevert(
      fx.relayer.write.leaveCluster([memberId, await signLeave(fx, other.memberAccount, memberId)]),
      "MemberSignatureMismatch",
      [memberId, other.memberAccount.address],
    );
    // Its own signature for its own departure cannot be redirected to another member.
    await expectRevert(
      fx.relayer.write.leaveCluster([memberId, await signLeave(fx, other.memberAccount, otherId)]),
      "MemberSignatureMismatch",
    );
    assert.deepEqual(await appState(fx, node.appId), before);
    assert.equal((await fx.owner.read.member([memberId])).status, Status.Active);
  });

  it("refuses leaving twice, or leaving as an unknown member, with MemberNotActive", async () => {
    const node = simulatedNode(fx.kmsRoot);
    const memberId = await admit(fx, node);
    const signature = await signLeave(fx, node.memberAccount, memberId);
    await mined(fx, await fx.relayer.write.leaveCluster([memberId, signature]));
    const before = await appState(fx, node.appId);

    await expectRevert(fx.relayer.write.leaveCluster([memberId, signature]), "MemberNotActive", [
      memberId,
      Status.Left,
    ]);
    const unknown = 1_000_000n;
    await expectRevert(
      fx.relayer.write.leaveCluster([unknown, await signLeave(fx, node.memberAccount, unknown)]),
      "MemberNotActive",
      [unknown, Status.None],
    );
    assert.deepEqual(await appState(fx, node.appId), before);
  });

  it("lets a member that left rejoin with nonce + 1, as a new member id with a new mesh IP", async () => {
    const node = simulatedNode(fx.kmsRoot);
    await fx.owner.write.addAppId([node.appId]);
    const firstSignature = await signRegistration(fx, node, { nonce: 0n });
    await mined(
      fx,
      await fx.relayer.write.register([
        node.proof,
        node.wireguardKey,
        node.identityKey,
        node.claims,
        firstSignature,
      ]),
    );
    const [firstId] = await fx.owner.read.memberOfApp([node.appId]);
    const firstRecord = await fx.owner.read.member([firstId]);
    await mined(
      fx,
      await fx.relayer.write.leaveCluster([firstId, await signLeave(fx, node.memberAccount, firstId)]),
    );
    assert.equal(await fx.owner.read.registrationNonce([node.appId]), 1n);

    // The first registration does not replay: it signed nonce 0.
    await expectRevert(
      fx.relayer.write.register([
        node.proof,
        node.wireguardKey,
        node.identityKey,
        node.claims,
        firstSignature,
      ]),
      "RegistrationSignatureMismatch",
      [node.memberAccount.address, await registrationSigner(fx, node, 1n, firstSignature)],
    );

    const { receipt } = await mined(fx, await fx.relayer.write.register(await registerArgs(fx, node)));
    const [event] = eventsOf(receipt.logs, "MemberRegistered");
    const secondId = event!.args.memberId;
    assert.ok(secondId > firstId, "a member id is never reused");
    assert.notEqual(event!.args.meshIp, firstRecord.meshIp);
    assert.ok(containsIp(MESH, event!.args.meshIp));
    assert.deepEqual(await fx.owner.read.memberOfApp([node.appId]), [secondId, true]);
    assert.equal(await fx.owner.read.registrationNonce([node.appId]), 2n);
    assert.equal((await fx.owner.read.member([firstId])).status, Status.Left, "the old record stays Left");
  });
});

describe("evict", async () => {
  const fx = await setupCluster();

  it("lets only the owner evict, refusing everyone else with NotOwner", async () => {
    const node = simulatedNode(fx.kmsRoot);
    const memberId = await admit(fx, node);
    const before = await appState(fx, node.appId);
    const relayerAddress = (await fx.viem.getWalletClients())[1]!.account.address;
    await expectRevert(fx.stranger.write.evict([memberId, 1]), "NotOwner", [fx.strangerAddress]);
    await expectRevert(fx.relayer.write.evict([memberId, 1]), "NotOwner", [relayerAddress]);
    assert.deepEqual(await appState(fx, node.appId), before);
    assert.equal(await fx.owner.read.isAppIdAllowed([node.appId]), true);
  });

  it("records the reason, frees the address and disallows the app id", async () => {
    const node = simulatedNode(fx.kmsRoot);
    const memberId = await admit(fx, node);
    const [, , , activeBefore] = await fx.owner.read.meshConfig();
    const { receipt, timestamp } = await mined(fx, await fx.owner.write.evict([memberId, 42]));

    assert.deepEqual(
      eventsOf(receipt.logs, "MemberEvicted").map((e) => e.args),
      [{ memberId, appId: node.appId, reason: 42 }],
    );
    assert.deepEqual(
      eventsOf(receipt.logs, "AppIdRemoved").map((e) => e.args),
      [{ appId: node.appId }],
    );
    const record = await fx.owner.read.member([memberId]);
    assert.equal(record.status, Status.Evicted);
    assert.equal(record.endReason, 42);
    assert.equal(record.endedAt, timestamp);
    assert.equal(await fx.owner.read.isAppIdAllowed([node.appId]), false);
    assert.equal(await fx.owner.read.isMember([node.appId]), false);
    assert.deepEqual(await fx.owner.read.memberOfApp([node.appId]), [memberId, false]);
    assert.equal((await fx.owner.read.meshConfig())[3], activeBefore - 1n);
  });

  it("keeps an evicted app id out until the owner re-allows it, then admits it only with the new nonce", async () => {
    const node = simulatedNode(fx.kmsRoot);
    await fx.owner.write.addAppId([node.appId]);
    const oldSignature = await signRegistration(fx, node, { nonce: 0n });
    await mined(
      fx,
      await fx.relayer.write.register([
        node.proof,
        node.wireguardKey,
        node.identityKey,
        node.claims,
        oldSignature,
      ]),
    );
    const [evictedId] = await fx.owner.read.memberOfApp([node.appId]);
    await mined(fx, await fx.owner.write.evict([evictedId, 3]));

    const fresh = await registerArgs(fx, node);
    await expectRevert(fx.relayer.write.register(fresh), "AppIdNotAllowed", [node.appId]);

    await mined(fx, await fx.owner.write.addAppId([node.appId]));
    await expectRevert(
      fx.relayer.write.register([node.proof, node.wireguardKey, node.identityKey, node.claims, oldSignature]),
      "RegistrationSignatureMismatch",
      [node.memberAccount.address, await registrationSigner(fx, node, 1n, oldSignature)],
    );
    const { receipt } = await mined(fx, await fx.relayer.write.register(fresh));
    const [event] = eventsOf(receipt.logs, "MemberRegistered");
    assert.ok(event!.args.memberId > evictedId);
    assert.deepEqual(await fx.owner.read.memberOfApp([node.appId]), [event!.args.memberId, true]);
    assert.equal(await fx.owner.read.registrationNonce([node.appId]), 2n);
    assert.equal((await fx.owner.read.member([evictedId])).status, Status.Evicted);
  });

  it("refuses to evict an evicted member with MemberAlreadyEvicted and an unknown id with MemberUnknown", async () => {
    const node = simulatedNode(fx.kmsRoot);
    const memberId = await admit(fx, node);
    const { timestamp } = await mined(fx, await fx.owner.write.evict([memberId, 1]));
    await expectRevert(fx.owner.write.evict([memberId, 1]), "MemberAlreadyEvicted", [memberId, timestamp]);
    await expectRevert(fx.owner.write.evict([999_999n, 1]), "MemberUnknown", [999_999n]);
    await expectRevert(fx.owner.write.evict([0n, 1]), "MemberUnknown", [0n]);
  });

  it("evicts a member that already left: its record turns Evicted, its app id is disallowed, no epoch opens", async () => {
    const leaver = simulatedNode(fx.kmsRoot);
    const leaverId = await admit(fx, leaver);
    const { timestamp: leftAt } = await mined(
      fx,
      await fx.relayer.write.leaveCluster([leaverId, await signLeave(fx, leaver.memberAccount, leaverId)]),
    );
    const [epochBefore] = await fx.owner.read.currentCsk();
    const meshBefore = await fx.owner.read.meshConfig();
    const { receipt } = await mined(fx, await fx.owner.write.evict([leaverId, 9]));
    assert.deepEqual(
      eventsOf(receipt.logs, "MemberEvicted").map((e) => e.args),
      [{ memberId: leaverId, appId: leaver.appId, reason: 9 }],
    );
    const record = await fx.owner.read.member([leaverId]);
    assert.equal(record.status, Status.Evicted);
    assert.equal(record.endedAt, leftAt, "endedAt stays the time it left");
    assert.equal(record.endReason, 9);
    assert.equal(record.memberKey, leaver.memberAccount.address);
    assert.equal(await fx.owner.read.isAppIdAllowed([leaver.appId]), false);
    assert.equal((await fx.owner.read.currentCsk())[0], epochBefore, "leaving already opened the epoch");
    assert.deepEqual(await fx.owner.read.meshConfig(), meshBefore, "leaving already freed the address");
    assert.deepEqual(await fx.owner.read.wireguardKeyHolder([leaver.wireguardKey]), [zeroAddress, 0n, false]);
    await expectRevert(fx.owner.write.evict([leaverId, 1]), "MemberAlreadyEvicted", [leaverId, leftAt]);
  });
});

describe("members pagination", async () => {
  const fx = await setupCluster();
  // Five members: 2 left, 4 evicted, the rest active.
  const nodes = Array.from({ length: 5 }, () => simulatedNode(fx.kmsRoot));
  for (const node of nodes) await admit(fx, node);
  await mined(
    fx,
    await fx.relayer.write.leaveCluster([2n, await signLeave(fx, nodes[1]!.memberAccount, 2n)]),
  );
  await mined(fx, await fx.owner.write.evict([4n, 9]));
  const expectedStatus = [Status.Active, Status.Left, Status.Active, Status.Evicted, Status.Active];

  it("pages through every record in id order with nextId, left and evicted members included", async () => {
    const seen: { memberId: bigint; status: number; appId: Address }[] = [];
    const nextIds: bigint[] = [];
    let start = 1n;
    do {
      const [page, nextId] = await fx.owner.read.members([start, 2n]);
      assert.ok(page.length <= 2);
      seen.push(...page);
      nextIds.push(nextId);
      start = nextId;
    } while (start !== 0n);
    assert.deepEqual(nextIds, [3n, 5n, 0n]);
    assert.deepEqual(
      seen.map((m) => [m.memberId, m.status, m.appId]),
      nodes.map((node, i) => [BigInt(i + 1), expectedStatus[i], node.appId]),
    );
    for (const record of seen) assert.deepEqual(record, await fx.owner.read.member([record.memberId]));
  });

  it("reads from the first member when start is 0, and ends with nextId 0 on an exact last page", async () => {
    assert.deepEqual(await fx.owner.read.members([0n, 10n]), await fx.owner.read.members([1n, 10n]));
    const [all, next] = await fx.owner.read.members([1n, 5n]);
    assert.equal(all.length, 5);
    assert.equal(next, 0n);
    const [tail, tailNext] = await fx.owner.read.members([4n, 100n]);
    assert.deepEqual(
      tail.map((m) => m.memberId),
      [4n, 5n],
    );
    assert.equal(tailNext, 0n);
    const [head, headNext] = await fx.owner.read.members([1n, 4n]);
    assert.equal(head.length, 4);
    assert.equal(headNext, 5n);
  });

  it("returns an empty page and nextId 0 for limit 0", async () => {
    // Implemented as "nothing more to read" rather than "continue from start": a client that asks for
    // zero records stops instead of looping on the same start forever.
    assert.deepEqual(await fx.owner.read.members([1n, 0n]), [[], 0n]);
    assert.deepEqual(await fx.owner.read.members([3n, 0n]), [[], 0n]);
  });

  it("returns an empty page and nextId 0 for a start beyond the last member id", async () => {
    assert.deepEqual(await fx.owner.read.members([6n, 10n]), [[], 0n]);
    assert.deepEqual(await fx.owner.read.members([2n ** 64n - 1n, 2n ** 256n - 1n]), [[], 0n]);
  });

  it("returns zeroed records for ids never issued through member(id)", async () => {
    const record = await fx.owner.read.member([6n]);
    assert.equal(record.memberId, 0n);
    assert.equal(record.status, Status.None);
  });
});

describe("members pagination at scale", async () => {
  const fx = await setupCluster();

  it("reads a page of 250 members in one eth_call", async () => {
    const nodes = Array.from({ length: 250 }, () => simulatedNode(fx.kmsRoot));
    for (const node of nodes) {
      await fx.owner.write.addAppId([node.appId]);
      await fx.relayer.write.register([
        node.proof,
        node.wireguardKey,
        node.identityKey,
        node.claims,
        await signRegistration(fx, node, { nonce: 0n }),
      ]);
    }
    const [page, nextId] = await fx.owner.read.members([1n, 250n]);
    assert.equal(nextId, 0n);
    assert.deepEqual(
      page.map((m) => [m.memberId, m.appId, m.status]),
      nodes.map((node, i) => [BigInt(i + 1), node.appId, Status.Active]),
    );
    // Well inside the eth_call gas caps of common RPC nodes (geth's default is 50M) and a 30M block.
    const gas = await fx.publicClient.estimateGas({
      to: fx.deployed.diamond,
      data: encodeFunctionData({ abi: clusterAbi, functionName: "members", args: [1n, 250n] }),
    });
    assert.ok(gas < 10_000_000n, `members(1, 250) costs ${gas} gas`);
  });
});
