// The in-memory WireGuard backend: wg(8)'s observable semantics, and a record of every change.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import type { InterfaceConfig } from "../../src/model/wireguard.ts";
import { wireguardKeyPair } from "../../src/wireguard/keys.ts";
import { createMemoryBackend } from "../../src/wireguard/memory.ts";

const key = () => wireguardKeyPair(randomBytes(32)).publicKeyBase64;
const config = (overrides: Partial<InterfaceConfig> = {}): InterfaceConfig => ({
  name: "attestmesh0",
  privateKey: randomBytes(32),
  listenPort: 51820,
  address: "10.77.0.1/16",
  ...overrides,
});

describe("createMemoryBackend", () => {
  it("records every change in order, with the public key instead of the private one", async () => {
    const backend = createMemoryBackend();
    const iface = config();
    const [a, b] = [key(), key()];
    await backend.up(iface);
    await backend.setPeer({ publicKey: a, allowedIps: ["10.77.0.2/32"], endpoint: "198.18.0.2:51820" });
    await backend.setPeer({ publicKey: b, allowedIps: ["10.77.0.3/32"] });
    await backend.peers();
    await backend.removePeer(a);
    await backend.down();
    const publicKey = wireguardKeyPair(iface.privateKey).publicKeyBase64;
    assert.deepEqual(backend.operations, [
      { kind: "up", name: "attestmesh0", listenPort: 51820, address: "10.77.0.1/16", publicKey },
      {
        kind: "setPeer",
        peer: { publicKey: a, allowedIps: ["10.77.0.2/32"], endpoint: "198.18.0.2:51820" },
      },
      { kind: "setPeer", peer: { publicKey: b, allowedIps: ["10.77.0.3/32"] } },
      { kind: "removePeer", publicKey: a },
      { kind: "down" },
    ]);
    const recorded = JSON.stringify(backend.operations);
    assert.ok(!recorded.includes(Buffer.from(iface.privateKey).toString("base64")));
    assert.ok(!recorded.includes(Buffer.from(iface.privateKey).toString("hex")));
  });

  it("keeps per-peer route MTUs as the real backend does: recorded on change, dropped with the address", async () => {
    const backend = createMemoryBackend();
    await assert.rejects(backend.setRouteMtus?.(new Map([["10.77.0.2/32", 4064]])), (error: unknown) =>
      isAttestmeshError(error, "WireGuardNotUp"),
    );
    await backend.up(config());
    backend.operations.length = 0;
    await backend.setRouteMtus?.(new Map([["10.77.0.2/32", 4064]]));
    await backend.setRouteMtus?.(new Map([["10.77.0.2/32", 4064]]));
    assert.deepEqual(backend.routes, new Map([["10.77.0.2/32", 4064]]));
    assert.equal(backend.operations.length, 1, "an unchanged set is not a change");
    for (const bad of [
      new Map([["10.77.0.2/32", 1279]]),
      new Map([["10.77.0.2/32", 4065]]),
      new Map([["10.77.0.2/32", 1420.5]]),
      new Map([["10.77.0.2/32; reboot", 1420]]),
    ]) {
      await assert.rejects(backend.setRouteMtus?.(bad), (error: unknown) =>
        isAttestmeshError(error, "WireGuardInvalidConfig"),
      );
    }
    assert.deepEqual(backend.routes, new Map([["10.77.0.2/32", 4064]]), "bad input changes nothing");
    await backend.up(config());
    assert.equal(backend.routes.size, 1, "the same address keeps them");
    await backend.up(config({ address: "10.77.0.9/16" }));
    assert.equal(backend.routes.size, 0, "a new address drops them");
    await backend.setRouteMtus?.(new Map([["10.77.0.2/32", 4064]]));
    await backend.down();
    assert.equal(backend.routes.size, 0);
  });

  it("reports peers as WireGuard would, with test-controlled handshakes and counters", async () => {
    const backend = createMemoryBackend();
    const a = key();
    await backend.up(config());
    await backend.setPeer({ publicKey: a, allowedIps: ["10.99.1.1/16"], keepaliveSeconds: 0 });
    assert.deepEqual(await backend.peers(), [
      { publicKey: a, allowedIps: ["10.99.0.0/16"], latestHandshake: 0, rxBytes: 0n, txBytes: 0n },
    ]);
    backend.setHandshake(a, 1_700_000_123);
    backend.setTransfer(a, 5n, 7n);
    await backend.setPeer({ publicKey: a, allowedIps: ["10.77.0.2/32"], keepaliveSeconds: 25 });
    const [status] = await backend.peers();
    assert.equal(status?.latestHandshake, 1_700_000_123, "a change keeps the session");
    assert.equal(status?.rxBytes, 5n);
    assert.equal(status?.keepaliveSeconds, 25);
    assert.throws(() => backend.setHandshake(key(), 1), /no peer/);
  });

  it("keeps an endpoint when a change names none, and moves an allowed IP to its new owner", async () => {
    const backend = createMemoryBackend();
    const [a, b] = [key(), key()];
    await backend.up(config());
    await backend.setPeer({
      publicKey: a,
      allowedIps: ["10.77.0.2/32", "10.99.0.0/16"],
      endpoint: "1.2.3.4:5",
    });
    await backend.setPeer({ publicKey: a, allowedIps: ["10.77.0.2/32", "10.99.0.0/16"] });
    await backend.setPeer({ publicKey: b, allowedIps: ["10.77.0.2/32"] });
    const peers = await backend.peers();
    assert.deepEqual(
      peers.map((p) => [p.publicKey, p.allowedIps, p.endpoint]),
      [
        [a, ["10.99.0.0/16"], "1.2.3.4:5"],
        [b, ["10.77.0.2/32"], undefined],
      ],
    );
  });

  it("is idempotent: up twice keeps peers, removing an absent peer and down twice are fine", async () => {
    const backend = createMemoryBackend();
    const a = key();
    const iface = config();
    await backend.up(iface);
    await backend.setPeer({ publicKey: a, allowedIps: ["10.77.0.2/32"] });
    await backend.up(iface);
    assert.equal((await backend.peers()).length, 1);
    await backend.removePeer(key());
    await backend.down();
    await backend.down();
    assert.equal(backend.interface, undefined);
  });

  it("refuses peer operations while down, and input wg(8) would refuse", async () => {
    const backend = createMemoryBackend();
    const notUp = (error: unknown) => isAttestmeshError(error, "WireGuardNotUp");
    await assert.rejects(backend.peers(), notUp);
    await assert.rejects(backend.setPeer({ publicKey: key(), allowedIps: [] }), notUp);
    await assert.rejects(backend.removePeer(key()), notUp);
    const invalid = (error: unknown) => isAttestmeshError(error, "WireGuardInvalidConfig");
    await assert.rejects(backend.up(config({ name: "an-interface-name-too-long" })), invalid);
    await assert.rejects(backend.up(config({ privateKey: new Uint8Array(31) })), invalid);
    await backend.up(config());
    await assert.rejects(backend.setPeer({ publicKey: "not a key", allowedIps: [] }), invalid);
    await assert.rejects(backend.setPeer({ publicKey: key(), allowedIps: ["10.77.0.300/32"] }), invalid);
    await assert.rejects(backend.setPeer({ publicKey: key(), allowedIps: [], endpoint: "nope" }), invalid);
  });

  it("fails the next call of a kind once, on request", async () => {
    const backend = createMemoryBackend();
    await backend.up(config());
    backend.failNext("peers", new Error("boom"));
    await assert.rejects(backend.peers(), /boom/);
    assert.deepEqual(await backend.peers(), []);
  });
});
