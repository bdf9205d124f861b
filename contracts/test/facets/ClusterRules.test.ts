// Cluster rules that must hold against a malicious member (issue 13): a member cannot take another's
// WireGuard or identity key (item 2), cannot pin a CSK epoch nobody can open (item 3), and cannot dodge
// the owner's eviction by leaving first (item 5). Each attack runs against the real diamond, and after
// every step of it the victim is checked to be intact, not only at the end. Item 4 (envelope ids) is
// in messages.test.ts.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import {
  type ContractEventName,
  type Hash,
  type Hex,
  type Log,
  parseEventLogs,
  zeroAddress,
  zeroHash,
} from "viem";
import {
  admit,
  type ClusterFixture,
  commitmentOf,
  type SimulatedNode,
  setupCluster,
  signRegistration,
  simulatedNode,
} from "../../../test/helpers/cluster.ts";
import { expectRevert } from "../../../test/helpers/revert.ts";

const Status = { None: 0, Active: 1, Left: 2, Evicted: 3 } as const;

interface Member {
  readonly node: SimulatedNode;
  readonly memberId: bigint;
}

async function mined(fx: ClusterFixture, hash: Hash) {
  const receipt = await fx.publicClient.waitForTransactionReceipt({ hash });
  assert.equal(receipt.status, "success");
  const block = await fx.publicClient.getBlock({ blockNumber: receipt.blockNumber });
  return { receipt, timestamp: Number(block.timestamp) };
}

function eventsOf<const N extends ContractEventName<typeof clusterAbi>>(logs: Log[], eventName: N) {
  return parseEventLogs({ abi: clusterAbi, logs, eventName });
}

async function member(fx: ClusterFixture): Promise<Member> {
  const node = simulatedNode(fx.kmsRoot);
  return { node, memberId: await admit(fx, node) };
}

/** Registers `node` (already allowed) with the given keys, signed by its own member key. */
async function registerWith(
  fx: ClusterFixture,
  node: SimulatedNode,
  keys: { wireguardKey: Hex; identityKey: Hex },
) {
  const nonce = await fx.owner.read.registrationNonce([node.appId]);
  const signature = await signRegistration(fx, node, { nonce, ...keys });
  return fx.relayer.write.register([node.proof, keys.wireguardKey, keys.identityKey, node.claims, signature]);
}

function sign(
  fx: ClusterFixture,
  m: Member,
  primaryType: "Leave" | "CommitCsk" | "ConfirmCsk" | "ReopenCsk",
  message: object,
) {
  return m.node.memberAccount.signTypedData({
    domain: memberDomain(fx.chainId, fx.deployed.diamond),
    types: memberTypes,
    primaryType,
    message,
  } as never);
}

async function leave(fx: ClusterFixture, m: Member) {
  return mined(
    fx,
    await fx.relayer.write.leaveCluster([m.memberId, await sign(fx, m, "Leave", { memberId: m.memberId })]),
  );
}

/** The victim is active, holds both its keys, and its app id is a member: nobody excluded it. */
async function assertIntact(fx: ClusterFixture, victim: Member, step: string) {
  const record = await fx.owner.read.member([victim.memberId]);
  assert.equal(record.status, Status.Active, `${step}: the victim is active`);
  assert.equal(record.wireguardKey, victim.node.wireguardKey, `${step}: its WireGuard key is its own`);
  assert.equal(record.identityKey, victim.node.identityKey, `${step}: its identity key is its own`);
  assert.equal(record.memberKey, victim.node.memberAccount.address, `${step}: its member key is its own`);
  assert.deepEqual(
    await fx.owner.read.wireguardKeyHolder([victim.node.wireguardKey]),
    [victim.node.appId, victim.memberId, true],
    `${step}: the victim holds its WireGuard key`,
  );
  assert.deepEqual(
    await fx.owner.read.identityKeyHolder([victim.node.identityKey]),
    [victim.node.appId, victim.memberId, true],
    `${step}: the victim holds its identity key`,
  );
  await assertSoleHolder(fx, victim, step);
}

/** No other active member carries either of the victim's keys. */
async function assertSoleHolder(fx: ClusterFixture, victim: Member, step: string) {
  const [page] = await fx.owner.read.members([1n, 1000n]);
  for (const m of page) {
    if (m.status !== Status.Active || m.memberId === victim.memberId) continue;
    assert.notEqual(
      m.wireguardKey,
      victim.node.wireguardKey,
      `${step}: member ${m.memberId} shares the WireGuard key`,
    );
    assert.notEqual(
      m.identityKey,
      victim.node.identityKey,
      `${step}: member ${m.memberId} shares the identity key`,
    );
  }
}

describe("item 2: a public key belongs to one app id", async () => {
  const fx = await setupCluster();

  it("a member that re-registers with the victim's WireGuard key, then identity key, is refused; the victim stays", async () => {
    const victim = await member(fx);
    const attacker = await member(fx);
    await assertIntact(fx, victim, "before the attack");
    // The attacker's app already has a member (itself): it must leave to register other keys.
    await expectRevert(
      registerWith(fx, attacker.node, {
        wireguardKey: victim.node.wireguardKey,
        identityKey: attacker.node.identityKey,
      }),
      "AppIdHasMember",
      [attacker.node.appId, attacker.memberId],
    );
    await assertIntact(fx, victim, "while the attacker is active");
    await leave(fx, attacker);
    await assertIntact(fx, victim, "after the attacker left");
    const nonceBefore = await fx.owner.read.registrationNonce([attacker.node.appId]);
    await expectRevert(
      registerWith(fx, attacker.node, {
        wireguardKey: victim.node.wireguardKey,
        identityKey: attacker.node.identityKey,
      }),
      "WireguardKeyInUse",
      [victim.node.wireguardKey, victim.node.appId, victim.memberId],
    );
    await assertIntact(fx, victim, "after the WireGuard key attempt");
    await expectRevert(
      registerWith(fx, attacker.node, {
        wireguardKey: attacker.node.wireguardKey,
        identityKey: victim.node.identityKey,
      }),
      "IdentityKeyInUse",
      [victim.node.identityKey, victim.node.appId, victim.memberId],
    );
    await assertIntact(fx, victim, "after the identity key attempt");
    await expectRevert(
      registerWith(fx, attacker.node, {
        wireguardKey: victim.node.wireguardKey,
        identityKey: victim.node.identityKey,
      }),
      "WireguardKeyInUse",
      [victim.node.wireguardKey, victim.node.appId, victim.memberId],
    );
    await assertIntact(fx, victim, "after the attempt with both keys");
    assert.equal(
      await fx.owner.read.registrationNonce([attacker.node.appId]),
      nonceBefore,
      "refusals change nothing",
    );
    assert.deepEqual(await fx.owner.read.memberOfApp([attacker.node.appId]), [attacker.memberId, false]);
  });

  it("a stranger's freshly allowed app cannot take the victim's keys either", async () => {
    const victim = await member(fx);
    const stranger = simulatedNode(fx.kmsRoot);
    await mined(fx, await fx.owner.write.addAppId([stranger.appId]));
    await expectRevert(
      registerWith(fx, stranger, {
        wireguardKey: victim.node.wireguardKey,
        identityKey: stranger.identityKey,
      }),
      "WireguardKeyInUse",
      [victim.node.wireguardKey, victim.node.appId, victim.memberId],
    );
    await assertIntact(fx, victim, "after the stranger's attempt");
    assert.deepEqual(await fx.owner.read.memberOfApp([stranger.appId]), [0n, false]);
  });

  it("squatting: while the victim is away its keys stay its own, and it comes back with them", async () => {
    const victim = await member(fx);
    const attacker = await member(fx);
    await leave(fx, attacker);
    await leave(fx, victim);
    const away = {
      victimKeys: { wireguardKey: victim.node.wireguardKey, identityKey: victim.node.identityKey },
    };
    assert.deepEqual(await fx.owner.read.wireguardKeyHolder([victim.node.wireguardKey]), [
      victim.node.appId,
      victim.memberId,
      false,
    ]);
    await expectRevert(registerWith(fx, attacker.node, away.victimKeys), "WireguardKeyInUse", [
      victim.node.wireguardKey,
      victim.node.appId,
      victim.memberId,
    ]);
    // The victim's sidecar derives the same keys again and is admitted with them.
    const { receipt } = await mined(fx, await registerWith(fx, victim.node, away.victimKeys));
    const [registered] = eventsOf(receipt.logs, "MemberRegistered");
    const back = { node: victim.node, memberId: registered!.args.memberId };
    await assertIntact(fx, back, "after the victim came back");
  });

  it("the owner's eviction releases the keys; leaving does not", async () => {
    const evicted = await member(fx);
    await mined(fx, await fx.owner.write.evict([evicted.memberId, 1]));
    for (const read of [fx.owner.read.wireguardKeyHolder, fx.owner.read.identityKeyHolder] as const) {
      const key =
        read === fx.owner.read.wireguardKeyHolder ? evicted.node.wireguardKey : evicted.node.identityKey;
      assert.deepEqual(await read([key]), [zeroAddress, 0n, false], "released");
    }
    const record = await fx.owner.read.member([evicted.memberId]);
    assert.equal(record.memberKey, evicted.node.memberAccount.address, "the record keeps the member key");
    // Another app may now use them (its member key signs them; nobody else holds them).
    const next = simulatedNode(fx.kmsRoot);
    await mined(fx, await fx.owner.write.addAppId([next.appId]));
    await mined(
      fx,
      await registerWith(fx, next, {
        wireguardKey: evicted.node.wireguardKey,
        identityKey: evicted.node.identityKey,
      }),
    );
    const [holderApp, , active] = await fx.owner.read.wireguardKeyHolder([evicted.node.wireguardKey]);
    assert.deepEqual([holderApp, active], [next.appId, true]);
  });

  it("front-running a first registration is refused to the victim until the owner evicts the squatter", async () => {
    // The one case the binding cannot prevent: a member that learns a victim's keys before the victim
    // ever registered (e.g. from a pending transaction) registers them first. The victim's
    // registration is refused, naming the squatter, and the owner's eviction of it frees the keys.
    const attacker = await member(fx);
    await leave(fx, attacker);
    const victim = simulatedNode(fx.kmsRoot);
    await mined(fx, await fx.owner.write.addAppId([victim.appId]));
    const { receipt } = await mined(
      fx,
      await registerWith(fx, attacker.node, {
        wireguardKey: victim.wireguardKey,
        identityKey: victim.identityKey,
      }),
    );
    const squatterId = eventsOf(receipt.logs, "MemberRegistered")[0]!.args.memberId;
    await expectRevert(
      registerWith(fx, victim, { wireguardKey: victim.wireguardKey, identityKey: victim.identityKey }),
      "WireguardKeyInUse",
      [victim.wireguardKey, attacker.node.appId, squatterId],
    );
    await mined(fx, await fx.owner.write.evict([squatterId, 2]));
    const { receipt: admitted } = await mined(
      fx,
      await registerWith(fx, victim, { wireguardKey: victim.wireguardKey, identityKey: victim.identityKey }),
    );
    const memberId = eventsOf(admitted.logs, "MemberRegistered")[0]!.args.memberId;
    await assertIntact(fx, { node: victim, memberId }, "after the owner evicted the squatter");
  });
});

describe("item 3: a CSK epoch nobody can open does not stall the cluster", async () => {
  const fx = await setupCluster();
  const testClient = await fx.viem.getTestClient();
  const delay = BigInt(await fx.owner.read.cskReopenDelay());

  async function warp(seconds: bigint) {
    await testClient.increaseTime({ seconds: Number(seconds) });
    await testClient.mine({ blocks: 1 });
  }
  async function epoch() {
    return (await fx.owner.read.currentCsk())[0];
  }
  async function commit(m: Member, commitment: Hex) {
    const e = await epoch();
    const signature = await sign(fx, m, "CommitCsk", { memberId: m.memberId, epoch: e, commitment });
    return fx.relayer.write.commitCsk([m.memberId, e, commitment, signature]);
  }
  async function confirm(m: Member, commitment: Hex, e?: bigint) {
    const at = e ?? (await epoch());
    const signature = await sign(fx, m, "ConfirmCsk", { memberId: m.memberId, epoch: at, commitment });
    return fx.relayer.write.confirmCsk([m.memberId, at, commitment, signature]);
  }
  async function reopen(m: Member, e?: bigint) {
    const at = e ?? (await epoch());
    const signature = await sign(fx, m, "ReopenCsk", { memberId: m.memberId, epoch: at });
    return fx.relayer.write.reopenCsk([m.memberId, at, signature]);
  }
  /** Everything a refused recovery call must leave untouched. */
  async function cskState() {
    const current = await fx.owner.read.currentCsk();
    return { current, recovery: await fx.owner.read.cskRecovery() };
  }
  async function refused(call: () => Promise<unknown>, errorName: string, args?: unknown[]) {
    const before = await cskState();
    await expectRevert(call(), errorName, args);
    assert.deepEqual(await cskState(), before, `${errorName} changed nothing`);
  }

  it("the griefer's commitment is re-opened after the delay, it may not commit the next epoch, an honest one holds", async () => {
    const honestA = await member(fx);
    const honestB = await member(fx);
    const griefer = await member(fx);
    const e0 = await epoch();
    // The griefer commits out of turn to a hash of nothing it will ever serve.
    const { timestamp: committedAt } = await mined(fx, await commit(griefer, commitmentOf(randomBytes(32))));
    const reopenableAt = committedAt + Number(delay);
    assert.deepEqual(await fx.owner.read.cskRecovery(), [e0, 0n, 0n, reopenableAt]);
    // Before the delay nobody can re-open it, and the griefer never can.
    await refused(() => reopen(honestA), "CskReopenTooEarly", [e0, reopenableAt]);
    await warp(delay);
    await refused(() => reopen(griefer), "CskOwnCommitment", [e0, griefer.memberId]);
    const { receipt } = await mined(fx, await reopen(honestA));
    assert.deepEqual(
      eventsOf(receipt.logs, "CskEpochReopened").map((e) => e.args),
      [{ epoch: e0, reopenedBy: honestA.memberId, committer: griefer.memberId }],
    );
    assert.deepEqual(
      eventsOf(receipt.logs, "CskEpochOpened").map((e) => e.args),
      [{ epoch: e0 + 1n, causeMemberId: griefer.memberId }],
    );
    const e1 = await epoch();
    assert.equal(e1, e0 + 1n);
    assert.deepEqual(await fx.owner.read.cskRecovery(), [e1, 0n, griefer.memberId, 0]);
    // It may not grab the next epoch too.
    await refused(() => commit(griefer, commitmentOf(randomBytes(32))), "CskCommitterBarred", [
      e1,
      griefer.memberId,
    ]);
    const honestKey = commitmentOf(randomBytes(32));
    await mined(fx, await commit(honestA, honestKey));
    // A second honest member pulls it and confirms; the griefer can no longer re-open it, ever.
    await refused(() => confirm(honestA, honestKey), "CskOwnCommitment", [e1, honestA.memberId]);
    await refused(() => confirm(honestB, zeroHash), "CskCommitmentMismatch", [e1, honestKey, zeroHash]);
    const { receipt: confirmed } = await mined(fx, await confirm(honestB, honestKey));
    assert.deepEqual(
      eventsOf(confirmed.logs, "CskConfirmed").map((e) => e.args),
      [{ epoch: e1, memberId: honestB.memberId }],
    );
    assert.deepEqual(await fx.owner.read.cskRecovery(), [e1, honestB.memberId, griefer.memberId, 0]);
    await warp(delay * 10n);
    await refused(() => reopen(griefer), "CskAlreadyConfirmed", [e1, honestB.memberId]);
    // A later confirmation is valid and changes nothing.
    const { receipt: again } = await mined(fx, await confirm(griefer, honestKey));
    assert.equal(eventsOf(again.logs, "CskConfirmed").length, 0);
    assert.deepEqual(await fx.owner.read.currentCsk().then((c) => c.slice(0, 3)), [
      e1,
      honestKey,
      honestA.memberId,
    ]);
  });

  it("refuses confirming or re-opening an uncommitted or past epoch, and a signature by someone else", async () => {
    const a = await member(fx);
    const b = await member(fx);
    const e = await epoch();
    // The owner's fresh epoch: open and uncommitted, whatever the tests before left.
    await mined(fx, await fx.owner.write.openCskEpoch());
    const open = await epoch();
    assert.equal(open, e + 1n);
    assert.equal((await fx.owner.read.currentCsk())[1], zeroHash);
    await refused(() => reopen(a), "CskNotCommitted", [open]);
    await refused(() => confirm(a, zeroHash), "CskNotCommitted", [open]);
    const key = commitmentOf(randomBytes(32));
    await mined(fx, await commit(a, key));
    await refused(() => confirm(b, key, open - 1n), "CskEpochMismatch", [open, open - 1n]);
    await refused(() => reopen(b, open + 1n), "CskEpochMismatch", [open, open + 1n]);
    const forged = await sign(fx, a, "ConfirmCsk", { memberId: b.memberId, epoch: open, commitment: key });
    await refused(
      () => fx.relayer.write.confirmCsk([b.memberId, open, key, forged]),
      "MemberSignatureMismatch",
      [b.memberId, a.node.memberAccount.address],
    );
    await warp(delay);
    const forgedReopen = await sign(fx, a, "ReopenCsk", { memberId: b.memberId, epoch: open });
    await refused(
      () => fx.relayer.write.reopenCsk([b.memberId, open, forgedReopen]),
      "MemberSignatureMismatch",
      [b.memberId, a.node.memberAccount.address],
    );
    await leave(fx, b);
    // b's departure opened a new epoch already; a former member cannot act on the new one either.
    const [now] = await fx.owner.read.currentCsk();
    await mined(fx, await commit(a, commitmentOf(randomBytes(32))));
    await warp(delay);
    await refused(() => reopen(b, now), "MemberNotActive", [b.memberId, Status.Left]);
  });

  it("the owner opens a new epoch at any time; a stranger cannot", async () => {
    const a = await member(fx);
    await mined(fx, await fx.owner.write.openCskEpoch());
    const key = commitmentOf(randomBytes(32));
    await mined(fx, await commit(a, key));
    const e = await epoch();
    await refused(() => fx.stranger.write.openCskEpoch(), "NotOwner", [fx.strangerAddress]);
    const { receipt } = await mined(fx, await fx.owner.write.openCskEpoch());
    assert.deepEqual(
      eventsOf(receipt.logs, "CskEpochReopened").map((x) => x.args),
      [{ epoch: e, reopenedBy: 0n, committer: a.memberId }],
    );
    assert.deepEqual(
      eventsOf(receipt.logs, "CskEpochOpened").map((x) => x.args),
      [{ epoch: e + 1n, causeMemberId: 0n }],
    );
    assert.deepEqual(await fx.owner.read.cskRecovery(), [e + 1n, 0n, 0n, 0], "nobody is barred by the owner");
    // The owner's epoch can be committed by anyone, a barred member of an earlier epoch included.
    await mined(fx, await commit(a, commitmentOf(randomBytes(32))));
  });
});

describe("item 5: leaving does not dodge the owner's eviction", async () => {
  const fx = await setupCluster();

  it("a member that leaves just before its eviction lands is evicted all the same and cannot rejoin", async () => {
    const target = await member(fx);
    await leave(fx, target); // front-runs the owner's evict
    const { receipt } = await mined(fx, await fx.owner.write.evict([target.memberId, 4]));
    assert.deepEqual(
      eventsOf(receipt.logs, "MemberEvicted").map((e) => e.args),
      [{ memberId: target.memberId, appId: target.node.appId, reason: 4 }],
    );
    assert.equal(await fx.owner.read.isAppIdAllowed([target.node.appId]), false);
    await expectRevert(
      registerWith(fx, target.node, {
        wireguardKey: target.node.wireguardKey,
        identityKey: target.node.identityKey,
      }),
      "AppIdNotAllowed",
      [target.node.appId],
    );
  });

  it("a member that leaves and rejoins before its eviction lands: the eviction of the old id evicts the new one", async () => {
    const bystander = await member(fx);
    const target = await member(fx);
    await leave(fx, target);
    const { receipt: rejoined } = await mined(
      fx,
      await registerWith(fx, target.node, {
        wireguardKey: target.node.wireguardKey,
        identityKey: target.node.identityKey,
      }),
    );
    const newId = eventsOf(rejoined.logs, "MemberRegistered")[0]!.args.memberId;
    assert.notEqual(newId, target.memberId);
    const { receipt } = await mined(fx, await fx.owner.write.evict([target.memberId, 6]));
    assert.deepEqual(
      eventsOf(receipt.logs, "MemberEvicted").map((e) => e.args),
      [
        { memberId: newId, appId: target.node.appId, reason: 6 },
        { memberId: target.memberId, appId: target.node.appId, reason: 6 },
      ],
    );
    assert.equal((await fx.owner.read.member([newId])).status, Status.Evicted);
    assert.equal((await fx.owner.read.member([target.memberId])).status, Status.Evicted);
    assert.deepEqual(await fx.owner.read.memberOfApp([target.node.appId]), [newId, false]);
    assert.equal(await fx.owner.read.isAppIdAllowed([target.node.appId]), false);
    assert.equal(
      (await fx.owner.read.member([bystander.memberId])).status,
      Status.Active,
      "nobody else is touched",
    );
    assert.deepEqual(await fx.owner.read.wireguardKeyHolder([target.node.wireguardKey]), [
      zeroAddress,
      0n,
      false,
    ]);
  });
});
