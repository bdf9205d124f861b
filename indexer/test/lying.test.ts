// The test-only lying mode: refused unless its explicit switch is set, bad app ids refused, and the
// suppressor drops exactly the logs that name a suppressed app id in a topic.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { type Hex, pad } from "viem";
import type { FollowerEvent } from "../src/follower.ts";
import { createSuppressor, parseLyingMode, SUPPRESS_VAR, SWITCH_VALUE, SWITCH_VAR } from "../src/lying.ts";

const A = "0x5fbdb2315678afecb367f032d93f642f64180aa3";
const B = "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512";
const refused = (name: string) => (error: Error & { code?: string }) =>
  error.code === "InvalidConfig" && error.message.includes(name);

describe("indexer test-only lying mode", () => {
  test("off by default", () => {
    assert.equal(parseLyingMode({}), undefined);
  });

  test("refused without the test-only switch", () => {
    assert.throws(() => parseLyingMode({ [SUPPRESS_VAR]: A }), refused(SWITCH_VAR));
  });

  test("refused with a switch that is not the exact value", () => {
    for (const value of ["1", "true", "yes", `${SWITCH_VALUE}x`]) {
      assert.throws(() => parseLyingMode({ [SUPPRESS_VAR]: A, [SWITCH_VAR]: value }), refused(SWITCH_VAR));
    }
  });

  test("the attestmesh-indexer process refuses to start without the switch (exit 2, reason logged)", () => {
    const result = spawnSync(process.execPath, [new URL("../src/bin.mjs", import.meta.url).pathname], {
      env: {
        PATH: process.env.PATH,
        ATTESTMESH_INDEXER_RPC_URL: "http://127.0.0.1:1",
        ATTESTMESH_INDEXER_CLUSTERS: A,
        [SUPPRESS_VAR]: A,
      },
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(result.status, 2);
    assert.match(result.stdout, new RegExp(`refused unless ${SWITCH_VAR}=`));
  });

  test("the switch alone is refused too", () => {
    assert.throws(() => parseLyingMode({ [SWITCH_VAR]: SWITCH_VALUE }), refused(SUPPRESS_VAR));
  });

  test("bad app ids refused and named", () => {
    for (const value of ["0x1234", "node4", " , "]) {
      assert.throws(
        () => parseLyingMode({ [SUPPRESS_VAR]: value, [SWITCH_VAR]: SWITCH_VALUE }),
        refused(SUPPRESS_VAR),
      );
    }
  });

  test("on with the switch: app ids checksummed and deduplicated", () => {
    const mode = parseLyingMode({ [SUPPRESS_VAR]: `${A}, ${B},${A}`, [SWITCH_VAR]: SWITCH_VALUE });
    assert.deepEqual(mode?.suppressAppIds, [
      "0x5FbDB2315678afecb367f032d93F642f64180aa3",
      "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    ]);
  });

  test("the suppressor drops every log naming a suppressed app id in any topic, and nothing else", () => {
    const event = (topics: Hex[], logIndex: number): FollowerEvent =>
      ({ log: { topics, logIndex }, removed: false }) as unknown as FollowerEvent;
    const topic0 = `0x${"ab".repeat(32)}` as Hex;
    const memberId = pad("0x07", { size: 32 });
    const suppress = createSuppressor({ suppressAppIds: [A as Hex] });
    const events = [
      event([topic0, memberId, pad(A.toUpperCase().replace("0X", "0x") as Hex, { size: 32 })], 0),
      event([topic0, pad(A as Hex, { size: 32 })], 1),
      event([topic0, memberId, pad(B as Hex, { size: 32 })], 2),
      event([topic0], 3),
    ];
    assert.deepEqual(
      suppress(events).map((e) => e.log.logIndex),
      [2, 3],
    );
  });
});
