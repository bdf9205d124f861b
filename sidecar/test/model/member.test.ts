// `isSameNode` is the one test of "this node's record" that register.ts (a receipt's log) and the
// reconciler (its view, while the member id is read back) share: all four keys, caselessly.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isSameNode, type MemberKeys } from "../../src/model/member.ts";

const NODE: MemberKeys = {
  appId: "0xaBcDef0123456789aBcDEF0123456789ABcDeF01",
  memberKey: "0x1111111111111111111111111111111111111111",
  wireguardKey: `0x${"2a".repeat(32)}`,
  identityKey: `0x${"3b".repeat(32)}`,
};

/** `NODE` with every letter in `key` upper- or lower-cased (a checksummed address, a hex key of either case). */
const recased = (key: keyof MemberKeys, upper: boolean): MemberKeys => ({
  ...NODE,
  [key]: `0x${upper ? NODE[key].slice(2).toUpperCase() : NODE[key].slice(2).toLowerCase()}`,
});

describe("isSameNode", () => {
  test("the same four keys are the same node, in whatever case each is written", () => {
    assert.equal(isSameNode(NODE, { ...NODE }), true);
    for (const key of ["appId", "memberKey", "wireguardKey", "identityKey"] as const) {
      for (const upper of [true, false]) {
        assert.equal(
          isSameNode(NODE, recased(key, upper)),
          true,
          `${key} ${upper ? "upper" : "lower"}-cased`,
        );
        assert.equal(isSameNode(recased(key, upper), NODE), true, `${key} recased, either side`);
      }
    }
  });

  test("attacker: a record differing in any one key is another node's, whatever else it copies", () => {
    // Anyone can register this node's public WireGuard and identity keys under another member key, or
    // state them in a receipt's log: one key that differs is enough to refuse it.
    const other: MemberKeys = {
      appId: "0x9999999999999999999999999999999999999999",
      memberKey: "0x8888888888888888888888888888888888888888",
      wireguardKey: `0x${"77".repeat(32)}`,
      identityKey: `0x${"66".repeat(32)}`,
    };
    for (const key of ["appId", "memberKey", "wireguardKey", "identityKey"] as const) {
      const impostor = { ...NODE, [key]: other[key] };
      assert.equal(isSameNode(NODE, impostor), false, `another ${key}`);
      assert.equal(isSameNode(impostor, NODE), false, `another ${key}, either side`);
    }
    assert.equal(isSameNode(NODE, other), false, "every key another");
  });
});
