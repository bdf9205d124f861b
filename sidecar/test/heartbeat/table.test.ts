// The heartbeat receive path: what counts (signed by the on-chain key, fresh, this cluster, an active
// member) and what does not, liveness by timeout, and convergence.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { getAddress } from "viem";
import { encodeHeartbeat, type Heartbeat } from "../../src/heartbeat/codec.ts";
import { createHeartbeatTable, type HeartbeatTable } from "../../src/heartbeat/table.ts";
import { loadSodium, randomBytes, type SigningKey, signingKeyFromSeed } from "../../src/meshnet/crypto.ts";

const CLUSTER = getAddress("0x5fbdb2315678afecb367f032d93f642f64180aa3");
const OTHER_CLUSTER = getAddress("0x0000000000000000000000000000000000000bad");
const NOW = 1_700_000_000_000;
const keys = new Map<bigint, SigningKey>();
let stranger: SigningKey;

function table(self = 1n): HeartbeatTable {
  return createHeartbeatTable({
    self,
    cluster: { chainId: 31337, cluster: CLUSTER },
    timeoutMs: 6000,
    maxSkewMs: 6000,
    identityKey: (id) => keys.get(id)?.publicKey,
  });
}

let counter = 1000n;
function hb(sender: bigint, patch: Partial<Heartbeat> = {}, signer?: SigningKey): Uint8Array {
  counter += 1n;
  return encodeHeartbeat(
    {
      chainId: 31337,
      cluster: CLUSTER,
      senderId: sender,
      epoch: 0n,
      holdsCsk: true,
      counter,
      timestampMs: BigInt(NOW),
      heard: [],
      ...patch,
    },
    (signer ?? keys.get(sender)!).sign,
  );
}

const at = (monoMs: number, wallMs = NOW) => ({ wallMs, monoMs });

describe("heartbeat table", () => {
  before(async () => {
    await loadSodium();
    for (const id of [1n, 2n, 3n]) keys.set(id, signingKeyFromSeed(randomBytes(32)));
    stranger = signingKeyFromSeed(randomBytes(32));
  });

  test("a good heartbeat counts and makes the peer live until the timeout", () => {
    const t = table();
    const result = t.receive(hb(2n), at(0));
    assert.equal(result.ok, true);
    assert.ok(result.ok && result.becameLive);
    assert.deepEqual(t.live(5999), [2n]);
    assert.deepEqual(t.live(6000), [], "no heartbeat within the timeout: not live");
    assert.equal(t.entry(2n)?.holdsCsk, true);
  });

  test("malformed bytes are refused as malformed", () => {
    const r = table().receive(Uint8Array.of(1, 1, 0), at(0));
    assert.ok(!r.ok && r.reason === "malformed");
  });

  test("a heartbeat for another cluster or chain is refused", () => {
    const t = table();
    const a = t.receive(hb(2n, { cluster: OTHER_CLUSTER }), at(0));
    const b = t.receive(hb(2n, { chainId: 1 }), at(0));
    assert.ok(!a.ok && a.reason === "wrong-cluster");
    assert.ok(!b.ok && b.reason === "wrong-cluster");
    assert.deepEqual(t.live(0), []);
  });

  test("a heartbeat claiming this node's own id is refused", () => {
    const r = table(1n).receive(hb(1n), at(0));
    assert.ok(!r.ok && r.reason === "self");
  });

  test("a heartbeat from a member not active on chain is refused", () => {
    const r = table().receive(hb(9n, {}, stranger), at(0));
    assert.ok(!r.ok && r.reason === "unknown-member" && r.senderId === 9n);
  });

  test("a correctly signed heartbeat from another member's mesh IP is refused before the signature", () => {
    const t = createHeartbeatTable({
      self: 1n,
      cluster: { chainId: 31337, cluster: CLUSTER },
      timeoutMs: 6000,
      maxSkewMs: 6000,
      identityKey: (id) => keys.get(id)?.publicKey,
      meshIp: (id) => `10.77.0.${id}`,
    });
    const r = t.receive(hb(2n), at(0), "10.77.0.3");
    assert.ok(!r.ok && r.reason === "wrong-source" && r.senderId === 2n);
    const off = t.receive(hb(2n), at(0), "192.0.2.7");
    assert.ok(!off.ok && off.reason === "wrong-source", "an off-mesh source");
    assert.deepEqual(t.live(0), [], "nothing counted");
    assert.equal(t.receive(hb(2n), at(0), "10.77.0.2").ok, true, "from its own mesh IP it counts");
  });

  test("a heartbeat signed by a key other than the sender's on-chain key is refused", () => {
    const t = table();
    const r = t.receive(hb(2n, {}, keys.get(3n)), at(0));
    assert.ok(!r.ok && r.reason === "bad-signature");
    const s = t.receive(hb(2n, {}, stranger), at(0));
    assert.ok(!s.ok && s.reason === "bad-signature");
    assert.deepEqual(t.live(0), [], "nothing counted");
  });

  test("a stale or future timestamp is refused", () => {
    const t = table();
    const old = t.receive(hb(2n, { timestampMs: BigInt(NOW - 6001) }), at(0));
    const future = t.receive(hb(2n, { timestampMs: BigInt(NOW + 6001) }), at(0));
    assert.ok(!old.ok && old.reason === "stale");
    assert.ok(!future.ok && future.reason === "stale");
    assert.ok(t.receive(hb(2n, { timestampMs: BigInt(NOW - 5999) }), at(0)).ok, "inside the window");
  });

  test("a replay (the same bytes, or any counter not above the last counted) is refused", () => {
    const t = table();
    const bytes = hb(2n);
    assert.ok(t.receive(bytes, at(0)).ok);
    const again = t.receive(bytes, at(100));
    assert.ok(!again.ok && again.reason === "replay");
    const older = t.receive(hb(2n, { counter: 5n }), at(100));
    assert.ok(!older.ok && older.reason === "replay");
    assert.equal(t.entry(2n)?.lastHeardAt, 0, "the replay did not refresh liveness");
    assert.ok(t.receive(hb(2n), at(200)).ok, "a higher counter counts");
  });

  test("a replay after the peer went quiet is still a replay", () => {
    const t = table();
    const bytes = hb(2n);
    assert.ok(t.receive(bytes, at(0)).ok);
    const r = t.receive(bytes, at(60_000, NOW));
    assert.ok(!r.ok && r.reason === "replay");
    assert.deepEqual(t.live(60_000), []);
  });

  test("converged when every live peer reports the same live set; not when one disagrees", () => {
    const t = table(1n);
    assert.equal(t.converged(0), true, "alone: converged");
    t.receive(hb(2n, { heard: [1n] }), at(0));
    assert.equal(t.converged(0), true);
    t.receive(hb(3n, { heard: [1n] }), at(0));
    assert.equal(t.converged(0), false, "3 does not hear 2, and 2 does not hear 3");
    t.receive(hb(2n, { heard: [1n, 3n] }), at(1));
    t.receive(hb(3n, { heard: [1n, 2n] }), at(1));
    assert.equal(t.converged(1), true);
    t.receive(hb(3n, { heard: [1n, 2n, 9n] }), at(2));
    assert.equal(t.converged(2), false, "3 hears someone this node does not");
    assert.equal(t.converged(7000), true, "once both time out, this node is alone again");
  });

  test("retain forgets senders that are no longer members, counters included", () => {
    const t = table();
    const bytes = hb(2n);
    assert.ok(t.receive(bytes, at(0)).ok);
    assert.deepEqual(
      t.retain((id) => id !== 2n),
      [2n],
    );
    assert.equal(t.entry(2n), undefined);
    assert.deepEqual(t.live(0), []);
  });
});
