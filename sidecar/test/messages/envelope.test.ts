// The sealed-message codec: seal/open round trips, and every field of a malformed or re-addressed
// envelope is refused with the field named.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { before, describe, test } from "node:test";
import { ed25519 } from "@noble/curves/ed25519";
import { type Address, bytesToHex, type Hex } from "viem";
import { AttestmeshError } from "../../src/errors.ts";
import {
  decodeEnvelope,
  ENVELOPE_HEADER_BYTES,
  type EnvelopeHeader,
  encodeEnvelope,
  maxPayloadBytes,
  openMessage,
  sealMessage,
} from "../../src/messages/envelope.ts";
import {
  open,
  SEAL_OVERHEAD,
  seal,
  sodiumReady,
  x25519FromEd25519PublicKey,
  x25519FromEd25519Seed,
} from "../../src/messages/sealedBox.ts";

const CLUSTER: Address = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
/** The sender's identity seed and its public key (what its certified record holds). */
const SENDER_SEED = new Uint8Array(randomBytes(32));
const SENDER_KEY = bytesToHex(ed25519.getPublicKey(SENDER_SEED));

function identity() {
  const seed = new Uint8Array(randomBytes(32));
  return { seed, publicKey: bytesToHex(ed25519.getPublicKey(seed)), keyPair: x25519FromEd25519Seed(seed) };
}

function header(overrides: Partial<EnvelopeHeader> = {}): EnvelopeHeader {
  return {
    chainId: 31337n,
    cluster: CLUSTER,
    senderId: 1n,
    recipientId: 2n,
    envelopeId: bytesToHex(randomBytes(32)),
    ...overrides,
  };
}

function refusal(fn: () => unknown): AttestmeshError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof AttestmeshError, `expected an AttestmeshError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected a refusal");
}

describe("sealed message codec", () => {
  before(sodiumReady);

  test("a message sealed to a member's on-chain identity key opens with its seed, header checked", () => {
    const bob = identity();
    const h = header();
    const payload = new TextEncoder().encode("hello bob");
    const ciphertext = sealMessage({ header: h, payload }, bob.publicKey, SENDER_SEED);
    assert.equal(ciphertext.length, SEAL_OVERHEAD + ENVELOPE_HEADER_BYTES + payload.length + 64);
    assert.deepEqual(openMessage(ciphertext, bob.keyPair, h, SENDER_KEY), payload);
    assert.ok(!Buffer.from(ciphertext).includes(Buffer.from("hello bob")), "no plaintext in the box");
  });

  test("every seal is fresh: the same message twice gives different ciphertexts", () => {
    const bob = identity();
    const envelope = { header: header(), payload: new Uint8Array([1, 2, 3]) };
    assert.notDeepEqual(
      sealMessage(envelope, bob.publicKey, SENDER_SEED),
      sealMessage(envelope, bob.publicKey, SENDER_SEED),
    );
  });

  test("an empty payload and the largest payload round-trip", () => {
    const bob = identity();
    const h = header();
    const max = maxPayloadBytes(4096);
    assert.equal(max, 4096 - 48 - 81 - 64);
    for (const payload of [new Uint8Array(0), new Uint8Array(randomBytes(max))]) {
      const ciphertext = sealMessage({ header: h, payload }, bob.publicKey, SENDER_SEED);
      assert.ok(ciphertext.length <= 4096);
      assert.deepEqual(openMessage(ciphertext, bob.keyPair, h, SENDER_KEY), payload);
    }
    assert.equal(maxPayloadBytes(100), 0);
  });

  test("a third member cannot open a message sealed to another", () => {
    const bob = identity();
    const carol = identity();
    const h = header();
    const ciphertext = sealMessage({ header: h, payload: new Uint8Array([9]) }, bob.publicKey, SENDER_SEED);
    assert.equal(open(ciphertext, carol.keyPair), undefined);
    assert.equal(refusal(() => openMessage(ciphertext, carol.keyPair, h, SENDER_KEY)).code, "Undecryptable");
  });

  test("any flipped byte of the ciphertext, a truncation or an extension is Undecryptable", () => {
    const bob = identity();
    const h = header();
    const ciphertext = sealMessage(
      { header: h, payload: new Uint8Array([1, 2, 3, 4]) },
      bob.publicKey,
      SENDER_SEED,
    );
    for (let i = 0; i < ciphertext.length; i++) {
      const altered = ciphertext.slice();
      altered[i]! ^= 0x01;
      assert.equal(
        refusal(() => openMessage(altered, bob.keyPair, h, SENDER_KEY)).code,
        "Undecryptable",
        `byte ${i}`,
      );
    }
    for (const altered of [
      ciphertext.subarray(0, ciphertext.length - 1),
      ciphertext.subarray(0, SEAL_OVERHEAD - 1),
      new Uint8Array(0),
      new Uint8Array([...ciphertext, 0]),
      new Uint8Array(randomBytes(200)),
    ]) {
      assert.equal(refusal(() => openMessage(altered, bob.keyPair, h, SENDER_KEY)).code, "Undecryptable");
    }
  });

  test("a box that opens but does not hold an envelope is MalformedEnvelope, naming the field", () => {
    const bob = identity();
    const h = header();
    const good = encodeEnvelope({ header: h, payload: new Uint8Array([7]) }, SENDER_SEED);
    const cases: Array<[string, Uint8Array]> = [
      ["length", good.subarray(0, ENVELOPE_HEADER_BYTES + 63)],
      ["length", new Uint8Array(0)],
      ["magic", Uint8Array.from(good, (b, i) => (i === 0 ? 0x42 : b))],
      ["version", Uint8Array.from(good, (b, i) => (i === 4 ? 1 : b))],
      ["chainId", Uint8Array.from(good, (b, i) => (i >= 5 && i < 13 ? 0 : b))],
      ["senderId", Uint8Array.from(good, (b, i) => (i >= 33 && i < 41 ? 0 : b))],
      ["recipientId", Uint8Array.from(good, (b, i) => (i >= 41 && i < 49 ? 0 : b))],
    ];
    for (const [field, plaintext] of cases) {
      const error = refusal(() =>
        openMessage(seal(plaintext, bob.keyPair.publicKey), bob.keyPair, h, SENDER_KEY),
      );
      assert.equal(error.code, "MalformedEnvelope", field);
      assert.equal(error.details.field, field);
      assert.equal(refusal(() => decodeEnvelope(plaintext)).details.field, field);
    }
  });

  test("an envelope re-sent under another sender, recipient, envelope id, cluster or chain is EnvelopeMismatch", () => {
    const bob = identity();
    const h = header({ senderId: 5n, recipientId: 6n });
    const ciphertext = sealMessage({ header: h, payload: new Uint8Array([1]) }, bob.publicKey, SENDER_SEED);
    const others: Array<[keyof EnvelopeHeader, Partial<EnvelopeHeader>]> = [
      ["senderId", { senderId: 7n }],
      ["recipientId", { recipientId: 8n }],
      ["envelopeId", { envelopeId: bytesToHex(randomBytes(32)) }],
      ["cluster", { cluster: "0x0000000000000000000000000000000000000001" }],
      ["chainId", { chainId: 8453n }],
    ];
    for (const [field, change] of others) {
      const error = refusal(() => openMessage(ciphertext, bob.keyPair, { ...h, ...change }, SENDER_KEY));
      assert.equal(error.code, "EnvelopeMismatch");
      assert.equal(error.details.field, field);
    }
    // The address check ignores case (checksummed and lowercase are the same address).
    assert.deepEqual(
      openMessage(ciphertext, bob.keyPair, { ...h, cluster: CLUSTER.toLowerCase() as Address }, SENDER_KEY),
      new Uint8Array([1]),
    );
  });

  test("a message not signed by the sender's certified identity key is SenderSignatureInvalid (a forged MessageSent)", () => {
    const bob = identity();
    const h = header({ senderId: 3n });
    // The attacker seals a well-formed envelope naming member 3 as sender, but cannot sign as member 3.
    const attackerSeed = new Uint8Array(randomBytes(32));
    const forged = sealMessage(
      { header: h, payload: new Uint8Array([6, 6, 6]) },
      bob.publicKey,
      attackerSeed,
    );
    const error = refusal(() => openMessage(forged, bob.keyPair, h, SENDER_KEY));
    assert.equal(error.code, "SenderSignatureInvalid");
    assert.equal(error.details.senderId, "3");
    // A signature that is not over this header and payload fails too: flip one payload byte and re-seal.
    const plaintext = encodeEnvelope({ header: h, payload: new Uint8Array([1, 2]) }, SENDER_SEED);
    plaintext[ENVELOPE_HEADER_BYTES]! ^= 0x01;
    assert.equal(
      refusal(() => openMessage(seal(plaintext, bob.keyPair.publicKey), bob.keyPair, h, SENDER_KEY)).code,
      "SenderSignatureInvalid",
    );
    // The genuine sender's message opens.
    const genuine = sealMessage({ header: h, payload: new Uint8Array([1, 2]) }, bob.publicKey, SENDER_SEED);
    assert.deepEqual(openMessage(genuine, bob.keyPair, h, SENDER_KEY), new Uint8Array([1, 2]));
  });

  test("encode refuses header values it cannot represent", () => {
    const payload = new Uint8Array(1);
    const bad: Array<[string, Partial<EnvelopeHeader>]> = [
      ["chainId", { chainId: 0n }],
      ["chainId", { chainId: 1n << 64n }],
      ["senderId", { senderId: 0n }],
      ["senderId", { senderId: -1n }],
      ["recipientId", { recipientId: 1n << 64n }],
      ["envelopeId", { envelopeId: "0x1234" }],
      ["envelopeId", { envelopeId: `0x${"zz".repeat(32)}` as Hex }],
      ["cluster", { cluster: "0x1234" as Address }],
    ];
    for (const [field, change] of bad) {
      const error = refusal(() => encodeEnvelope({ header: header(change), payload }, SENDER_SEED));
      assert.equal(error.code, "MalformedEnvelope");
      assert.equal(error.details.field, field);
    }
  });

  test("decode returns exactly what was encoded", () => {
    const h = header({ chainId: (1n << 64n) - 1n, senderId: (1n << 64n) - 1n, recipientId: 1n });
    const payload = new Uint8Array(randomBytes(50));
    const decoded = decodeEnvelope(encodeEnvelope({ header: h, payload }, SENDER_SEED));
    assert.deepEqual(decoded.payload, payload);
    assert.equal(decoded.header.chainId, h.chainId);
    assert.equal(decoded.header.senderId, h.senderId);
    assert.equal(decoded.header.recipientId, h.recipientId);
    assert.equal(decoded.header.envelopeId, h.envelopeId.toLowerCase());
    assert.equal(decoded.header.cluster, CLUSTER);
  });

  test("an identity key that is not an Ed25519 point, or not 32 bytes, is refused", () => {
    assert.equal(refusal(() => x25519FromEd25519PublicKey(new Uint8Array(31))).code, "InvalidIdentityKey");
    assert.equal(refusal(() => x25519FromEd25519PublicKey(new Uint8Array(32))).code, "InvalidIdentityKey");
    assert.equal(
      refusal(() =>
        sealMessage({ header: header(), payload: new Uint8Array(1) }, `0x${"00".repeat(32)}`, SENDER_SEED),
      ).code,
      "InvalidIdentityKey",
    );
  });

  test("the X25519 key pair is libsodium's conversion of the same Ed25519 key", () => {
    const bob = identity();
    assert.deepEqual(
      x25519FromEd25519PublicKey(Buffer.from(bob.publicKey.slice(2), "hex")),
      bob.keyPair.publicKey,
    );
    assert.equal(String(bob.keyPair.secretKey), "[secret]");
  });
});
