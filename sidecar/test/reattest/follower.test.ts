// The attested view: the certified view minus refused peers and stale members, never this node itself;
// recomputed when a refusal changes; a new certified view re-judges every peer's policy.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { MembershipFollower, MembershipSnapshot } from "../../src/chain/follower.ts";
import type { Member } from "../../src/model/member.ts";
import { createAttestedFollower } from "../../src/reattest/follower.ts";
import type { Reattestation } from "../../src/reattest/scheduler.ts";
import { testMember } from "../helpers.ts";

const member = testMember;

test("refused peers and stale members leave the view; this node never does; policy changes re-judge", async () => {
  const members = new Map<bigint, Member>([
    [1n, member(1n)],
    [2n, member(2n)],
    [3n, member(3n, { standing: "compose-hash-not-allowed" })],
    [4n, member(4n, { status: "evicted" })],
  ]);
  let snapshot: MembershipSnapshot = { block: 1n, blockHash: "0x00", members, changed: [], kind: "full" };
  const inner: MembershipFollower = {
    sync: async () => snapshot,
    current: () => snapshot,
    invalidate: () => {},
  };
  const refused = new Set<bigint>();
  let policyChanges = 0;
  const r = {
    refused: (m: Member) => refused.has(m.memberId),
    policyChanged: () => {
      policyChanges += 1;
    },
  } as unknown as Reattestation;
  const attested = createAttestedFollower(
    inner,
    () => r,
    () => 1n,
  );
  const ids = () => [...(attested.current()?.members.keys() ?? [])];
  assert.deepEqual(ids(), [1n, 2n, 4n], "the stale member is out at once; the evicted record passes through");
  assert.deepEqual(
    attested.certifiedMembers().map((m) => m.memberId),
    [1n, 2n, 3n],
    "the scheduler still attests the stale one (the owner may allow it again)",
  );
  refused.add(2n);
  assert.deepEqual(ids(), [1n, 2n, 4n], "cached until a refusal is announced");
  attested.refusalsChanged();
  assert.deepEqual(ids(), [1n, 4n]);
  // This node itself is never filtered, whatever it is judged.
  refused.add(1n);
  attested.refusalsChanged();
  assert.deepEqual(ids(), [1n, 4n]);
  const before = policyChanges;
  snapshot = { ...snapshot, members: new Map(members) };
  await attested.sync();
  assert.equal(policyChanges, before + 1, "a new certified view re-judges every peer");
});
