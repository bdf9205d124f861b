// What a push concerns, and whom it wakes. Issue 15: every verified push woke the CSK and message pollers
// too, whose chain reads queued ahead of the reconcile pass's while every node added a newcomer.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { MESSAGE_SENT_TOPIC } from "@attestmesh/shared/contracts/events.ts";
import { type AbiEvent, getAbiItem, toEventSelector } from "viem";
import {
  type Concern,
  changedMember,
  concernsOf,
  EVERY_CONCERN,
  wakeFor,
} from "../../src/intake/concerns.ts";
import { createPollCadence } from "../../src/sleep.ts";

const topic = (name: string) =>
  toEventSelector(getAbiItem({ abi: clusterAbi, name: name as "MemberRegistered" }) as AbiEvent);
const memberId = `0x${"00".repeat(31)}07`;

describe("a push's concerns", () => {
  test("a registration's two events concern the membership alone; a message its poller alone", () => {
    assert.deepEqual([...concernsOf([topic("MemberRegistered"), memberId])], ["membership"]);
    assert.deepEqual([...concernsOf([topic("MemberDeviceStated").toUpperCase(), memberId])], ["membership"]);
    assert.deepEqual([...concernsOf([MESSAGE_SENT_TOPIC, memberId, memberId])], ["messages"]);
  });

  test("a leave, an eviction, a CSK event, a policy change, an unknown event or none concern every poller", () => {
    for (const name of [
      "MemberLeft",
      "MemberEvicted",
      "CskEpochOpened",
      "CskEpochReopened",
      "CskCommitted",
      "CskConfirmed",
      "AppIdRevokedAt",
      "ComposeHashRemoved",
    ]) {
      assert.equal(concernsOf([topic(name)]), EVERY_CONCERN, name);
    }
    assert.equal(concernsOf([`0x${"ab".repeat(32)}`]), EVERY_CONCERN);
    assert.equal(concernsOf([]), EVERY_CONCERN);
  });
});

describe("the member a push names", () => {
  test("a registration, an eviction and a leave name their member id; any other log none", () => {
    assert.equal(changedMember([topic("MemberRegistered"), memberId]), 7n);
    assert.equal(changedMember([topic("MemberRegistered").toUpperCase(), memberId]), 7n);
    assert.equal(changedMember([topic("MemberEvicted"), memberId]), 7n);
    assert.equal(changedMember([topic("MemberLeft"), memberId]), 7n);
    assert.equal(changedMember([topic("MemberDeviceStated"), memberId]), undefined);
    assert.equal(changedMember([topic("AppIdRevokedAt"), memberId]), undefined);
    assert.equal(changedMember([]), undefined);
  });

  test("attacker: a malformed or out-of-range member topic names nobody", () => {
    const registered = topic("MemberRegistered");
    assert.equal(changedMember([registered]), undefined, "no id topic");
    assert.equal(changedMember([registered, "0x07"]), undefined, "not 32 bytes");
    assert.equal(changedMember([registered, `0x${"zz".repeat(32)}`]), undefined, "not hex");
    assert.equal(changedMember([registered, `0x${"00".repeat(23)}01${"00".repeat(8)}`]), undefined, "2^64");
    assert.equal(changedMember([registered, `0x${"00".repeat(24)}${"ff".repeat(8)}`]), 2n ** 64n - 1n);
  });
});

describe("waking what a push concerns", () => {
  function pollers() {
    const woken: string[] = [];
    let now = 0;
    const cadence = createPollCadence({ wakeUpsHealthy: () => true, now: () => now });
    const wake = wakeFor({
      membership: async (reason) => {
        woken.push(`membership: ${reason}`);
      },
      csk: () => woken.push("csk"),
      messages: () => woken.push("messages"),
      stir: () => cadence.stir(),
    });
    return {
      woken,
      cadence,
      wake,
      later: (ms: number) => {
        now += ms;
      },
    };
  }

  test("a registration wakes the reconcile loop alone; a message the message poller alone", async () => {
    const p = pollers();
    await p.wake("indexer push", concernsOf([topic("MemberRegistered")]));
    assert.deepEqual(p.woken, ["membership: indexer push"]);
    await p.wake("indexer push", new Set<Concern>(["messages"]));
    assert.deepEqual(p.woken, ["membership: indexer push", "messages"]);
    await p.wake("the pushes stopped", EVERY_CONCERN);
    assert.deepEqual(p.woken.slice(2), ["csk", "messages", "membership: the pushes stopped"]);
  });

  // A lying indexer can label a CSK event as a registration: the CSK tick is not woken, but every poller
  // was put back at the full cadence, so it reads the chain within its full interval.
  test("attacker: a push that wakes one poller still puts every poller at the full cadence", async () => {
    for (const concerns of [new Set<Concern>(["membership"]), new Set<Concern>(["messages"])]) {
      const p = pollers();
      p.later(3_600_000);
      assert.equal(p.cadence.atRest(), true, "at rest before the push");
      await p.wake("indexer push", concerns);
      assert.equal(p.cadence.atRest(), false, "every poller at the full cadence after it");
      assert.ok(!p.woken.includes("csk"));
    }
  });
});
