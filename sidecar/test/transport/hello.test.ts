// The gateway hello: its codec round-trips and refuses malformed bytes; its check accepts exactly a
// hello for this chain, cluster and node, from a current peer, fresh, signed by that peer's key over
// this TLS session's exporter value, and seen once. Each refusal is an attacker's attempt that fails.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { before, describe, it } from "node:test";
import { loadSodium, type SigningKey, signingKeyFromSeed } from "../../src/meshnet/crypto.ts";
import { createFrameDecoder } from "../../src/transport/frame.ts";
import {
  createHelloChecker,
  decodeHello,
  encodeHello,
  HELLO_BYTES,
  HELLO_VERSION,
  type Hello,
  type HelloCheckerOptions,
  verifyHelloSignature,
} from "../../src/transport/hello.ts";

const CLUSTER = "0x5FbDB2315678afecb367f032d93F642f64180aa3" as const;
const OTHER_CLUSTER = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512" as const;
const NOW = 1_800_000_000_000;

let alice: SigningKey;
let mallory: SigningKey;
const ekm = randomBytes(32);

function hello(overrides: Partial<Hello> = {}): Hello {
  return {
    chainId: 31337,
    cluster: CLUSTER,
    from: 2n,
    to: 1n,
    timestampMs: BigInt(NOW),
    nonce: randomBytes(16),
    ...overrides,
  };
}

/** The payload of the hello frame (what the ingress decodes). */
function payload(h: Hello, key: SigningKey = alice, boundTo: Uint8Array = ekm): Buffer {
  const [only] = createFrameDecoder().push(encodeHello(h, boundTo, key.sign));
  assert.ok(only);
  return only;
}

function checker(overrides: Partial<HelloCheckerOptions> = {}) {
  return createHelloChecker({
    chainId: 31337,
    cluster: CLUSTER,
    selfMemberId: () => 1n,
    identityKey: (id) => (id === 2n ? alice.publicKey : undefined),
    now: () => NOW,
    ...overrides,
  });
}

before(async () => {
  await loadSodium();
  alice = signingKeyFromSeed(new Uint8Array(32).fill(1));
  mallory = signingKeyFromSeed(new Uint8Array(32).fill(2));
});

describe("hello codec", () => {
  it("round-trips every field; the frame is 137 bytes of payload", () => {
    const h = hello({ from: 2n ** 64n - 1n, to: 7n, chainId: 8453 });
    const bytes = payload(h);
    assert.equal(bytes.length, HELLO_BYTES);
    assert.equal(HELLO_BYTES, 137);
    const decoded = decodeHello(bytes);
    assert.equal(decoded.chainId, 8453);
    assert.equal(decoded.cluster, CLUSTER);
    assert.equal(decoded.from, 2n ** 64n - 1n);
    assert.equal(decoded.to, 7n);
    assert.equal(decoded.timestampMs, BigInt(NOW));
    assert.deepEqual(Buffer.from(decoded.nonce), Buffer.from(h.nonce));
    assert.equal(decoded.signature.length, 64);
    assert.ok(verifyHelloSignature(decoded, ekm, alice.publicKey));
  });

  it("refuses wrong magic, another version, a wrong length and member id 0", () => {
    const good = payload(hello());
    const wrongMagic = Buffer.from(good);
    wrongMagic[0] = wrongMagic[0]! ^ 0xff;
    assert.throws(() => decodeHello(wrongMagic), { code: "TransportFrameInvalid", message: /magic/ });
    const version1 = Buffer.from(good);
    version1[4] = 1;
    assert.throws(() => decodeHello(version1), { code: "TransportFrameInvalid", message: /version 1/ });
    assert.equal(HELLO_VERSION, 2);
    assert.throws(() => decodeHello(good.subarray(0, HELLO_BYTES - 1)), { code: "TransportFrameInvalid" });
    assert.throws(() => decodeHello(Buffer.concat([good, Buffer.of(0)])), { code: "TransportFrameInvalid" });
    assert.throws(() => decodeHello(Buffer.alloc(0)), { code: "TransportFrameInvalid" });
    const fromZero = Buffer.from(good);
    fromZero.fill(0, 33, 41);
    assert.throws(() => decodeHello(fromZero), { code: "TransportFrameInvalid", message: /from/ });
    // The version-1 hello (two app ids, no signature) is refused as such.
    const legacy = Buffer.concat([Buffer.from("AMWG"), Buffer.of(1), Buffer.alloc(40, 0xaa)]);
    assert.throws(() => decodeHello(legacy), { code: "TransportFrameInvalid", message: /version 1/ });
  });

  it("refuses to encode a hello to itself, a zero id or a short nonce", () => {
    assert.throws(() => encodeHello(hello({ to: 2n }), ekm, alice.sign), { code: "TransportFrameInvalid" });
    assert.throws(() => encodeHello(hello({ from: 0n }), ekm, alice.sign), { code: "TransportFrameInvalid" });
    assert.throws(() => encodeHello(hello({ nonce: new Uint8Array(8) }), ekm, alice.sign), {
      code: "TransportFrameInvalid",
    });
  });

  it("a signature covers every byte and the exporter value: flipping any one breaks it", () => {
    const good = payload(hello());
    for (let i = 0; i < HELLO_BYTES; i++) {
      const bad = Buffer.from(good);
      bad[i] = bad[i]! ^ 0x01;
      let decoded: ReturnType<typeof decodeHello>;
      try {
        decoded = decodeHello(bad);
      } catch {
        continue; // the codec refused it already (magic, version, id 0)
      }
      assert.equal(verifyHelloSignature(decoded, ekm, alice.publicKey), false, `byte ${i} flipped`);
    }
    const decoded = decodeHello(good);
    const otherSession = Buffer.from(ekm);
    otherSession[31] = otherSession[31]! ^ 0x80;
    assert.equal(verifyHelloSignature(decoded, otherSession, alice.publicKey), false);
    assert.equal(verifyHelloSignature(decoded, ekm, mallory.publicKey), false);
    assert.equal(verifyHelloSignature(decoded, ekm, new Uint8Array(31)), false, "a malformed key is false");
  });
});

describe("hello check: attackers who try and fail", () => {
  it("accepts a current peer's fresh hello on its own session, once", () => {
    const check = checker();
    const good = decodeHello(payload(hello()));
    assert.deepEqual(check.check(good, ekm), { ok: true, from: 2n });
    assert.deepEqual(check.check(good, ekm), { ok: false, reason: "replayed-hello" });
  });

  it("refuses a hello claiming a peer, signed by someone else or not at all", () => {
    const check = checker();
    assert.equal(check.check(decodeHello(payload(hello(), mallory)), ekm).ok, false);
    assert.deepEqual(check.check(decodeHello(payload(hello(), mallory)), ekm), {
      ok: false,
      reason: "bad-signature",
    });
    const unsigned = payload(hello());
    unsigned.fill(0, HELLO_BYTES - 64);
    assert.deepEqual(check.check(decodeHello(unsigned), ekm), { ok: false, reason: "bad-signature" });
  });

  it("refuses a captured hello on another TLS session (exporter mismatch)", () => {
    const check = checker();
    const captured = decodeHello(payload(hello()));
    assert.deepEqual(check.check(captured, randomBytes(32)), { ok: false, reason: "bad-signature" });
    // Its nonce was not remembered: the genuine session still gets through.
    assert.equal(check.check(captured, ekm).ok, true);
  });

  it("refuses a stale hello and one from the future, at the window's edge exactly", () => {
    const check = checker({ maxSkewMs: 30_000 });
    const at = (ms: number) => decodeHello(payload(hello({ timestampMs: BigInt(ms) })));
    assert.equal(check.check(at(NOW - 30_000), ekm).ok, true);
    assert.equal(check.check(at(NOW + 30_000), ekm).ok, true);
    assert.deepEqual(check.check(at(NOW - 30_001), ekm), {
      ok: false,
      reason: "stale-hello",
      detail: "-30001 ms off",
    });
    assert.equal(check.check(at(NOW + 30_001), ekm).ok, false);
    assert.equal(check.check(at(0), ekm).ok, false);
  });

  it("refuses a hello for another chain, another cluster or another node, validly signed", () => {
    const check = checker();
    assert.equal(check.check(decodeHello(payload(hello({ chainId: 8453 }))), ekm).ok, false);
    assert.deepEqual(check.check(decodeHello(payload(hello({ chainId: 8453 }))), ekm), {
      ok: false,
      reason: "wrong-chain",
      detail: "chain 8453",
    });
    assert.deepEqual(check.check(decodeHello(payload(hello({ cluster: OTHER_CLUSTER }))), ekm), {
      ok: false,
      reason: "wrong-cluster",
      detail: OTHER_CLUSTER,
    });
    assert.deepEqual(check.check(decodeHello(payload(hello({ to: 3n }))), ekm), {
      ok: false,
      reason: "not-for-this-node",
      detail: "to 3",
    });
  });

  it("refuses a hello from a member that is not a current peer, and every hello while unregistered", () => {
    const stranger = decodeHello(payload(hello({ from: 9n }), mallory));
    assert.deepEqual(checker().check(stranger, ekm), { ok: false, reason: "unknown-peer", detail: "from 9" });
    const unregistered = checker({ selfMemberId: () => undefined });
    assert.deepEqual(unregistered.check(decodeHello(payload(hello())), ekm), {
      ok: false,
      reason: "not-registered",
    });
  });

  it("takes the expected key as hex too (the chain's form)", () => {
    const check = checker({ identityKey: () => `0x${Buffer.from(alice.publicKey).toString("hex")}` });
    assert.equal(check.check(decodeHello(payload(hello())), ekm).ok, true);
  });

  it("keeps its nonce memory bounded and forgets what is stale anyway", () => {
    let now = NOW;
    const check = checker({ maxNonces: 8, maxSkewMs: 1000, now: () => now });
    for (let i = 0; i < 50; i++) {
      assert.equal(check.check(decodeHello(payload(hello({ timestampMs: BigInt(now) }))), ekm).ok, true);
    }
    // A replay inside the window is still caught right after it was seen.
    const h = decodeHello(payload(hello({ timestampMs: BigInt(now) })));
    assert.equal(check.check(h, ekm).ok, true);
    assert.deepEqual(check.check(h, ekm), { ok: false, reason: "replayed-hello" });
    now += 5000;
    assert.deepEqual(check.check(h, ekm), { ok: false, reason: "stale-hello", detail: "-5000 ms off" });
  });
});
