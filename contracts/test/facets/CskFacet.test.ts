// CSK facet: one commitment per epoch, by any active member, for the current epoch only; every
// departure (leave, eviction, revocation) opens the next epoch, and so does an owner revocation that
// leaves a running member non-standing, which may then neither commit nor confirm.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { type Hash, type Hex, toHex, zeroHash } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import {
  admit,
  type ClusterFixture,
  commitmentOf,
  type SimulatedNode,
  setupCluster,
  simulatedNode,
} from "../../../test/helpers/cluster.ts";
import { expectRevert } from "../../../test/helpers/revert.ts";
import {
  eventsOf,
  memberCallSigner,
  mined,
  type Signer,
  Status,
  signCommit,
  signLeave,
  signMember,
} from "../utils/chain.ts";

const EVICTED_BY_REVOCATION = 255;

function freshCommitment(): Hex {
  return commitmentOf(randomBytes(32));
}

async function currentEpoch(fx: ClusterFixture): Promise<bigint> {
  const [epoch] = await fx.owner.read.currentCsk();
  return epoch;
}

interface Member {
  readonly node: SimulatedNode;
  readonly memberId: bigint;
}

/** A new active member. */
async function member(fx: ClusterFixture): Promise<Member> {
  const node = simulatedNode(fx.kmsRoot);
  const memberId = await admit(fx, node);
  return { node, memberId };
}

/** Admits a member and evicts it, which opens the next epoch, uncommitted; returns that epoch. */
async function openNextEpoch(fx: ClusterFixture): Promise<bigint> {
  const leaver = await member(fx);
  await mined(fx, await fx.owner.write.evict([leaver.memberId, 1]));
  return currentEpoch(fx);
}

/** Commits `commitment` for the current epoch as `committer`; returns the epoch. */
async function commit(fx: ClusterFixture, committer: Member, commitment: Hex) {
  const epoch = await currentEpoch(fx);
  await mined(fx, await commitCskAs(fx, committer, epoch, commitment));
  return epoch;
}

/** `committer`'s own signed commitCsk for `epoch` (sent, not awaited). */
async function commitCskAs(fx: ClusterFixture, committer: Member, epoch: bigint, commitment: Hex) {
  return commitSignedBy(fx, committer.node.memberAccount, committer.memberId, epoch, commitment);
}

/** A commitCsk in `memberId`'s name signed by `signer`, whoever that is, sent by `sender` (not awaited). */
async function commitSignedBy(
  fx: ClusterFixture,
  signer: Signer,
  memberId: bigint,
  epoch: bigint,
  commitment: Hex,
  sender: ClusterFixture["relayer"] = fx.relayer,
) {
  const signature = await signCommit(fx, signer, memberId, epoch, commitment);
  return sender.write.commitCsk([memberId, epoch, commitment, signature]);
}

async function cskState(fx: ClusterFixture) {
  const current = await fx.owner.read.currentCsk();
  return { current, epoch: await fx.owner.read.cskEpoch([current[0]]) };
}

/** Expects `call` to revert with `errorName(args)` and the CSK state to stay as it was. */
async function refused(
  fx: ClusterFixture,
  call: () => Promise<unknown>,
  errorName: string,
  args?: unknown[],
) {
  const before = await cskState(fx);
  await expectRevert(call(), errorName, args);
  assert.deepEqual(await cskState(fx), before, "a refused commitment changes nothing");
}

/** Expects `committer`'s own signed commitCsk to revert with `errorName(args)`, changing nothing. */
async function refusedCommit(
  fx: ClusterFixture,
  committer: Member,
  epoch: bigint,
  commitment: Hex,
  errorName: string,
  args: unknown[],
) {
  await refused(fx, () => commitCskAs(fx, committer, epoch, commitment), errorName, args);
}

/** Expects commitCsk in `memberId`'s name with `signature` to revert with MemberSignatureMismatch, naming the
 * signer the contract recovers for that call, and to change nothing. */
async function refusedSignature(
  fx: ClusterFixture,
  memberId: bigint,
  epoch: bigint,
  commitment: Hex,
  signature: Hex,
) {
  const recovered = await memberCallSigner(fx, "CommitCsk", { memberId, epoch, commitment }, signature);
  await refused(
    fx,
    () => fx.relayer.write.commitCsk([memberId, epoch, commitment, signature]),
    "MemberSignatureMismatch",
    [memberId, recovered],
  );
}

describe("CSK epochs", async () => {
  const fx = await setupCluster();

  it("opens epoch 0 at deploy, uncommitted, announced by CskEpochOpened(0, 0)", async () => {
    const deployBlock = await fx.publicClient.getBlock({ blockNumber: fx.deployed.deployBlock });
    assert.deepEqual(await fx.owner.read.currentCsk(), [0n, zeroHash, 0n, Number(deployBlock.timestamp), 0]);
    assert.deepEqual(await fx.owner.read.cskEpoch([0n]), [zeroHash, 0n, Number(deployBlock.timestamp), 0]);
    assert.deepEqual(await fx.owner.read.cskEpoch([1n]), [zeroHash, 0n, 0, 0], "epoch 1 is not open yet");
    const opened = await fx.publicClient.getContractEvents({
      address: fx.deployed.diamond,
      abi: clusterAbi,
      eventName: "CskEpochOpened",
      fromBlock: fx.deployed.deployBlock,
      toBlock: fx.deployed.deployBlock,
    });
    assert.deepEqual(
      opened.map((e) => e.args),
      [{ epoch: 0n, causeMemberId: 0n }],
    );
  });

  it("lets the first member commit epoch 0 and records committer, commitment and time", async () => {
    const first = await member(fx);
    assert.equal(await currentEpoch(fx), 0n, "joining does not open an epoch");
    const commitment = freshCommitment();
    const signature = await signCommit(fx, first.node.memberAccount, first.memberId, 0n, commitment);
    // Anyone may submit; the member key's signature is what counts.
    const { receipt, timestamp } = await mined(
      fx,
      await fx.stranger.write.commitCsk([first.memberId, 0n, commitment, signature]),
    );
    assert.deepEqual(
      eventsOf(receipt.logs, "CskCommitted").map((e) => e.args),
      [{ epoch: 0n, memberId: first.memberId, commitment }],
    );
    const [, , , openedAt] = await fx.owner.read.currentCsk();
    assert.deepEqual(await fx.owner.read.currentCsk(), [0n, commitment, first.memberId, openedAt, timestamp]);
    assert.deepEqual(await fx.owner.read.cskEpoch([0n]), [commitment, first.memberId, openedAt, timestamp]);
  });

  it("refuses a commitment from an id that is not a member, or signed by a key that is not the member's", async () => {
    const active = await member(fx);
    const leaver = await member(fx);
    await mined(
      fx,
      await fx.relayer.write.leaveCluster([
        leaver.memberId,
        await signLeave(fx, leaver.node.memberAccount, leaver.memberId),
      ]),
    );
    const epoch = await currentEpoch(fx);
    const commitment = freshCommitment();
    const outsider = privateKeyToAccount(generatePrivateKey());
    const [, , lastId] = await fx.owner.read.meshConfig();
    const unknownId = lastId + 1n;

    await refused(
      fx,
      async () => commitSignedBy(fx, outsider, unknownId, epoch, commitment, fx.stranger),
      "MemberNotActive",
      [unknownId, Status.None],
    );
    await refused(
      fx,
      async () => commitSignedBy(fx, outsider, active.memberId, epoch, commitment, fx.stranger),
      "MemberSignatureMismatch",
      [active.memberId, outsider.address],
    );
    // A member that left keeps its key but not its right to commit.
    await refusedCommit(fx, leaver, epoch, commitment, "MemberNotActive", [leaver.memberId, Status.Left]);
  });

  it("refuses a commitment from an evicted member, even for the epoch its eviction opened", async () => {
    const evicted = await member(fx);
    await mined(fx, await fx.owner.write.evict([evicted.memberId, 5]));
    const epoch = await currentEpoch(fx);
    const commitment = freshCommitment();
    await refusedCommit(fx, evicted, epoch, commitment, "MemberNotActive", [
      evicted.memberId,
      Status.Evicted,
    ]);
  });

  it("refuses a commitment for any epoch but the current one with CskEpochMismatch", async () => {
    const committer = await member(fx);
    const epoch = await currentEpoch(fx);
    assert.ok(epoch > 0n, "earlier tests opened later epochs");
    const commitment = freshCommitment();
    for (const wrong of [epoch + 1n, epoch - 1n, 0n, 2n ** 64n - 1n]) {
      await refusedCommit(fx, committer, wrong, commitment, "CskEpochMismatch", [epoch, wrong]);
    }
  });

  it("refuses a zero commitment with CskCommitmentZero", async () => {
    const committer = await member(fx);
    const epoch = await currentEpoch(fx);
    await refusedCommit(fx, committer, epoch, zeroHash, "CskCommitmentZero", []);
  });

  it("refuses a second commitment for a committed epoch with CskAlreadyCommitted, the same member's included", async () => {
    const first = await member(fx);
    const second = await member(fx);
    const commitment = freshCommitment();
    const epoch = await commit(fx, first, commitment);
    for (const committer of [second, first]) {
      await refusedCommit(fx, committer, epoch, freshCommitment(), "CskAlreadyCommitted", [
        epoch,
        commitment,
      ]);
    }
  });

  it("refuses a signature over another commitment or for another member with MemberSignatureMismatch", async () => {
    const alice = await member(fx);
    const bob = await member(fx);
    const epoch = await openNextEpoch(fx);
    const signed = freshCommitment();
    const signature = await signCommit(fx, alice.node.memberAccount, alice.memberId, epoch, signed);
    const tampered = freshCommitment();
    await refusedSignature(fx, alice.memberId, epoch, tampered, signature);
    // Alice's signature does not let anyone commit in Bob's name, nor Bob's key in Alice's.
    await refusedSignature(fx, bob.memberId, epoch, signed, signature);
    await refused(
      fx,
      async () => commitSignedBy(fx, bob.node.memberAccount, alice.memberId, epoch, signed),
      "MemberSignatureMismatch",
      [alice.memberId, bob.node.memberAccount.address],
    );
    await refused(
      fx,
      () => fx.relayer.write.commitCsk([alice.memberId, epoch, signed, "0x1234"]),
      "InvalidSignatureLength",
      [2],
    );
  });

  it("refuses a commitment signature replayed for a later epoch", async () => {
    const alice = await member(fx);
    const epoch = await openNextEpoch(fx);
    const commitment = freshCommitment();
    // Alice signs for this epoch, but the epoch moves on before anyone submits it.
    const signature = await signCommit(fx, alice.node.memberAccount, alice.memberId, epoch, commitment);
    const next = await openNextEpoch(fx);
    assert.equal(next, epoch + 1n);

    await refused(
      fx,
      () => fx.relayer.write.commitCsk([alice.memberId, epoch, commitment, signature]),
      "CskEpochMismatch",
      [next, epoch],
    );
    await refusedSignature(fx, alice.memberId, next, commitment, signature);
  });

  const departures: {
    name: string;
    reason: number;
    depart: (target: { node: SimulatedNode; memberId: bigint }) => Promise<Hash>;
  }[] = [
    {
      name: "eviction",
      reason: 17,
      depart: (target) => fx.owner.write.evict([target.memberId, 17]),
    },
    {
      name: "leaving",
      reason: 0,
      depart: async (target) =>
        fx.stranger.write.leaveCluster([
          target.memberId,
          await signLeave(fx, target.node.memberAccount, target.memberId),
        ]),
    },
    {
      name: "revocation of the app id",
      reason: EVICTED_BY_REVOCATION,
      depart: (target) => fx.owner.write.revokeAppId([target.node.appId, toHex("revoked", { size: 32 })]),
    },
  ];
  for (const { name, reason, depart } of departures) {
    it(`opens the next epoch on ${name}, with the departed member as causeMemberId`, async () => {
      const target = await member(fx);
      const keeper = await member(fx);
      const previous = await currentEpoch(fx);
      const previousState = await fx.owner.read.cskEpoch([previous]);
      const { receipt, timestamp } = await mined(fx, await depart(target));

      assert.deepEqual(
        eventsOf(receipt.logs, "CskEpochOpened").map((e) => e.args),
        [{ epoch: previous + 1n, causeMemberId: target.memberId }],
      );
      assert.deepEqual(await fx.owner.read.currentCsk(), [previous + 1n, zeroHash, 0n, timestamp, 0]);
      assert.deepEqual(await fx.owner.read.cskEpoch([previous]), previousState, "the old epoch is kept");
      const record = await fx.owner.read.member([target.memberId]);
      assert.equal(record.status, reason === 0 ? Status.Left : Status.Evicted);
      assert.equal(record.endReason, reason);
      // The members that stay can commit the new epoch.
      assert.equal(await commit(fx, keeper, freshCommitment()), previous + 1n);
    });
  }

  it("lets a member that joined after the previous commitment commit the epoch a departure opened", async () => {
    const veteran = await member(fx);
    await openNextEpoch(fx);
    const before = await commit(fx, veteran, freshCommitment());
    const newcomer = await member(fx);
    assert.equal(await currentEpoch(fx), before, "joining does not open an epoch");
    await mined(fx, await fx.owner.write.evict([veteran.memberId, 2]));
    const commitment = freshCommitment();
    const epoch = await commit(fx, newcomer, commitment);
    assert.equal(epoch, before + 1n);
    assert.deepEqual((await fx.owner.read.currentCsk()).slice(0, 3), [epoch, commitment, newcomer.memberId]);
  });
  it("a revoked device opens the next epoch before any eviction; its member may neither commit nor confirm it", async () => {
    const keeper = await member(fx);
    const node = simulatedNode(fx.kmsRoot, undefined, { deviceId: randomBytes(32) });
    const revoked = { node, memberId: await admit(fx, node) };
    const previous = await currentEpoch(fx);
    const { receipt } = await mined(fx, await fx.owner.write.revokeDevice([node.claims.deviceId, zeroHash]));
    assert.deepEqual(
      eventsOf(receipt.logs, "CskEpochOpened").map((e) => e.args),
      [{ epoch: previous + 1n, causeMemberId: 0n }],
    );
    assert.equal((await fx.owner.read.member([revoked.memberId])).status, Status.Active, "not evicted");
    const DEVICE_REVOKED = 3;
    const epoch = previous + 1n;
    const mine = freshCommitment();
    await refused(
      fx,
      async () => commitSignedBy(fx, revoked.node.memberAccount, revoked.memberId, epoch, mine),
      "CskMemberNotStanding",
      [revoked.memberId, DEVICE_REVOKED],
    );
    const commitment = freshCommitment();
    assert.equal(await commit(fx, keeper, commitment), epoch);
    // Nor may it vouch for the key it should not hold.
    const confirm = await signMember(fx, revoked.node.memberAccount, "ConfirmCsk", {
      memberId: revoked.memberId,
      epoch,
      commitment,
    });
    await expectRevert(
      fx.relayer.write.confirmCsk([revoked.memberId, epoch, commitment, confirm]),
      "CskMemberNotStanding",
      [revoked.memberId, DEVICE_REVOKED],
    );
  });
});
