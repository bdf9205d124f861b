// Desired WireGuard peers against current ones: the smallest set of changes, removals applied last.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import type { PeerConfig, PeerStatus } from "../../src/model/wireguard.ts";
import { applyDiff, diffPeers, isEmptyDiff } from "../../src/reconcile/diff.ts";
import { wireguardKeyPair } from "../../src/wireguard/keys.ts";
import { createMemoryBackend } from "../../src/wireguard/memory.ts";

const key = () => wireguardKeyPair(randomBytes(32)).publicKeyBase64;
const peer = (publicKey: string, host: number, extra: Partial<PeerConfig> = {}): PeerConfig => ({
  publicKey,
  allowedIps: [`10.77.0.${host}/32`],
  endpoint: `198.18.0.${host}:51820`,
  keepaliveSeconds: 25,
  ...extra,
});
const status = (config: PeerConfig, extra: Partial<PeerStatus> = {}): PeerStatus => ({
  ...config,
  latestHandshake: 1_700_000_000,
  rxBytes: 10n,
  txBytes: 20n,
  ...extra,
});

describe("diffPeers", () => {
  const [a, b, c] = [key(), key(), key()];

  it("adds every desired peer to an empty interface", () => {
    const desired = [peer(a, 2), peer(b, 3)];
    assert.deepEqual(diffPeers([], desired), { add: desired, update: [], remove: [] });
  });

  it("removes peers that are no longer desired", () => {
    const diff = diffPeers([status(peer(a, 2)), status(peer(b, 3))], [peer(a, 2)]);
    assert.deepEqual(diff, { add: [], update: [], remove: [b] });
  });

  it("is empty when nothing changed, whatever the runtime counters and the order", () => {
    const current = [status(peer(a, 2)), status(peer(b, 3), { latestHandshake: 0, rxBytes: 0n })];
    const diff = diffPeers(current, [peer(b, 3), peer(a, 2)]);
    assert.deepEqual(diff, { add: [], update: [], remove: [] });
    assert.ok(isEmptyDiff(diff));
  });

  it("turns a key change into remove old + add new", () => {
    const diff = diffPeers([status(peer(a, 2))], [peer(c, 2)]);
    assert.deepEqual(diff, { add: [peer(c, 2)], update: [], remove: [a] });
  });

  it("updates a peer whose allowed IPs changed, ignoring their order and spelling", () => {
    const current = [status(peer(a, 2, { allowedIps: ["10.77.0.2/32", "10.88.0.0/16"] }))];
    assert.ok(isEmptyDiff(diffPeers(current, [peer(a, 2, { allowedIps: ["10.88.7.7/16", "10.77.0.2"] })])));
    const moved = peer(a, 9);
    assert.deepEqual(diffPeers(current, [moved]), { add: [], update: [moved], remove: [] });
    const fewer = peer(a, 2, { allowedIps: ["10.77.0.2/32"] });
    assert.deepEqual(diffPeers(current, [fewer]).update, [fewer]);
  });

  it("updates a peer whose endpoint changed, but leaves a learned endpoint alone", () => {
    const current = [status(peer(a, 2))];
    const moved = peer(a, 2, { endpoint: "198.18.5.5:51820" });
    assert.deepEqual(diffPeers(current, [moved]).update, [moved]);
    const { endpoint: _, ...unknownEndpoint } = peer(a, 2);
    assert.ok(isEmptyDiff(diffPeers(current, [unknownEndpoint])));
    const { endpoint: __, ...noEndpoint } = status(peer(a, 2));
    assert.deepEqual(diffPeers([noEndpoint], [peer(a, 2)]).update, [peer(a, 2)]);
  });

  it("updates a peer whose keepalive changed; absent and 0 both mean off", () => {
    const current = [status(peer(a, 2))];
    const { keepaliveSeconds: _, ...noKeepalive } = peer(a, 2);
    assert.deepEqual(diffPeers(current, [noKeepalive]).update, [noKeepalive]);
    assert.deepEqual(diffPeers(current, [peer(a, 2, { keepaliveSeconds: 5 })]).update.length, 1);
    assert.ok(isEmptyDiff(diffPeers([status(noKeepalive)], [peer(a, 2, { keepaliveSeconds: 0 })])));
  });

  it("rejects desired state that can never converge", () => {
    assert.throws(
      () => diffPeers([], [peer(a, 2), peer(a, 3)]),
      (error) => isAttestmeshError(error, "DuplicatePeerKey"),
    );
    assert.throws(
      () => diffPeers([], [peer(a, 2), peer(b, 2)]),
      (error) => isAttestmeshError(error, "DuplicateAllowedIp"),
    );
  });
});

describe("applyDiff", () => {
  it("applies adds and updates before removals and counts one operation per changed peer", async () => {
    const [a, b, c, d] = [key(), key(), key(), key()];
    const backend = createMemoryBackend();
    await backend.up({
      name: "am0",
      privateKey: randomBytes(32),
      listenPort: 51820,
      address: "10.77.0.1/16",
    });
    for (const config of [peer(a, 2), peer(b, 3), peer(c, 4)]) await backend.setPeer(config);
    backend.operations.length = 0;

    // b is evicted, c rotates its key to d (same address), a moves its endpoint.
    const desired = [peer(a, 2, { endpoint: "198.18.9.9:51820" }), peer(d, 4)];
    const diff = diffPeers(await backend.peers(), desired);
    assert.equal(await applyDiff(backend, diff), 4);
    assert.deepEqual(
      backend.operations.map((op) => (op.kind === "setPeer" ? `set ${op.peer.publicKey}` : `${op.kind}`)),
      [`set ${d}`, `set ${a}`, "removePeer", "removePeer"],
    );
    assert.deepEqual(
      backend.operations.flatMap((op) => (op.kind === "removePeer" ? [op.publicKey] : [])).sort(),
      [b, c].sort(),
    );
    const after = await backend.peers();
    assert.deepEqual(after.map((p) => p.publicKey).sort(), [a, d].sort());
    assert.ok(isEmptyDiff(diffPeers(after, desired)), "converged");

    backend.operations.length = 0;
    assert.equal(await applyDiff(backend, diffPeers(after, desired)), 0);
    assert.deepEqual(backend.operations, []);
  });

  it("removes nothing when an add fails", async () => {
    const [a, b, c] = [key(), key(), key()];
    const backend = createMemoryBackend();
    await backend.up({
      name: "am0",
      privateKey: randomBytes(32),
      listenPort: 51820,
      address: "10.77.0.1/16",
    });
    await backend.setPeer(peer(a, 2));
    backend.failNext("setPeer", new Error("wg set failed"));
    await assert.rejects(applyDiff(backend, diffPeers(await backend.peers(), [peer(b, 3), peer(c, 4)])));
    assert.deepEqual(
      (await backend.peers()).map((p) => p.publicKey),
      [a],
    );
  });
});
