// The connect timeout a never-judged peer's attestation fetch gets (issue 15): short at first, so a SYN
// sent before the newcomer's interface was up is not waited out (TCP resends it after 1 s), and growing
// with the failed tries, so a peer on a slow path is still reached.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ATTESTATION_FETCH_TIMEOUT_MS,
  FIRST_CONTACT_CONNECT_TIMEOUT_MS,
  firstContactConnectMs,
} from "../../src/reattest/service.ts";

test("a first contact's connect timeout: 400 ms for 8 tries, then doubling up to the fetch timeout", () => {
  assert.equal(FIRST_CONTACT_CONNECT_TIMEOUT_MS, 400);
  assert.ok(FIRST_CONTACT_CONNECT_TIMEOUT_MS < 1000, "under TCP's first SYN retransmission");
  const at = (failures: number) => firstContactConnectMs(failures);
  assert.deepEqual([0, 7, 8, 15, 16, 24, 32, 40].map(at), [400, 400, 800, 800, 1600, 3200, 6400, 10_000]);
  assert.equal(at(1000), ATTESTATION_FETCH_TIMEOUT_MS);
});
