// The heartbeat datagram: round trip, and a refusal naming the field for malformed input of every field.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { getAddress } from "viem";
import {
  decodeHeartbeat,
  encodeHeartbeat,
  type Heartbeat,
  MAX_HEARD,
  verifyHeartbeat,
} from "../../src/heartbeat/codec.ts";
import { loadSodium, randomBytes, type SigningKey, signingKeyFromSeed } from "../../src/meshnet/crypto.ts";
import { WireError } from "../../src/meshnet/wire.ts";

const CLUSTER = getAddress("0x5fbdb2315678afecb367f032d93f642f64180aa3");
let key: SigningKey;
let other: SigningKey;

const base = (): Heartbeat => ({
  chainId: 31337,
  cluster: CLUSTER,
  senderId: 3n,
  epoch: 2n,
  holdsCsk: true,
  counter: 1_700_000_000_000_000n,
  timestampMs: 1_700_000_000_000n,
  heard: [1n, 2n, 7n],
});

function refusedAt(bytes: Uint8Array, field: string | RegExp): void {
  assert.throws(
    () => decodeHeartbeat(bytes),
    (error: unknown) =>
      error instanceof WireError &&
      (typeof field === "string" ? error.field === field : field.test(error.field)),
  );
}

/** Encodes, then lets `mutate` change the body bytes (offsets as in codec.ts) and re-signs. */
function mutated(mutate: (bytes: Uint8Array) => void): Uint8Array {
  const bytes = encodeHeartbeat(base(), key.sign);
  mutate(bytes);
  return bytes;
}

describe("heartbeat codec", () => {
  before(async () => {
    await loadSodium();
    key = signingKeyFromSeed(randomBytes(32));
    other = signingKeyFromSeed(randomBytes(32));
  });

  test("round trip: every field survives and the signature verifies with the sender's key only", () => {
    const bytes = encodeHeartbeat(base(), key.sign);
    assert.equal(bytes.length, 65 + 3 * 8 + 64);
    const hb = decodeHeartbeat(bytes);
    const { signature, signedBytes, ...fields } = hb;
    assert.deepEqual(fields, base());
    assert.equal(signature.length, 64);
    assert.ok(verifyHeartbeat(hb, key.publicKey));
    assert.ok(!verifyHeartbeat(hb, other.publicKey), "another key does not verify");
  });

  test("an empty heard set and holdsCsk false round-trip", () => {
    const hb = decodeHeartbeat(encodeHeartbeat({ ...base(), heard: [], holdsCsk: false }, key.sign));
    assert.deepEqual(hb.heard, []);
    assert.equal(hb.holdsCsk, false);
  });

  test("any flipped bit in the body or the signature breaks the signature", () => {
    const bytes = encodeHeartbeat(base(), key.sign);
    for (const offset of [2, 12, 35, 40, 47, 60, 70, bytes.length - 1]) {
      const copy = bytes.slice();
      copy[offset]! ^= 0x01;
      let valid: boolean;
      try {
        valid = verifyHeartbeat(decodeHeartbeat(copy), key.publicKey);
      } catch {
        valid = false;
      }
      assert.equal(valid, false, `bit flip at ${offset}`);
    }
  });

  test("every truncation is refused, naming the field that was cut", () => {
    const bytes = encodeHeartbeat(base(), key.sign);
    for (let length = 0; length < bytes.length; length++) {
      assert.throws(() => decodeHeartbeat(bytes.subarray(0, length)), WireError, `length ${length}`);
    }
    refusedAt(bytes.subarray(0, 1), "type");
    refusedAt(bytes.subarray(0, 9), "chainId");
    refusedAt(bytes.subarray(0, 29), "cluster");
    refusedAt(bytes.subarray(0, 37), "senderId");
    refusedAt(bytes.subarray(0, 45), "epoch");
    refusedAt(bytes.subarray(0, 46), "flags");
    refusedAt(bytes.subarray(0, 54), "counter");
    refusedAt(bytes.subarray(0, 62), "timestampMs");
    refusedAt(bytes.subarray(0, 64), "heardCount");
    refusedAt(bytes.subarray(0, 70), "heard");
    refusedAt(bytes.subarray(0, bytes.length - 1), "signature");
  });

  test("trailing bytes are refused", () => {
    const bytes = encodeHeartbeat(base(), key.sign);
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    refusedAt(longer, "length");
  });

  test("bad values of each field are refused", () => {
    refusedAt(
      mutated((b) => (b[0] = 2)),
      "version",
    );
    refusedAt(
      mutated((b) => (b[1] = 2)),
      "type",
    );
    refusedAt(
      mutated((b) => b.fill(0, 2, 10)),
      "chainId",
    );
    refusedAt(
      mutated((b) => b.fill(0xff, 2, 10)),
      "chainId",
    );
    refusedAt(
      mutated((b) => b.fill(0, 30, 38)),
      "senderId",
    );
    refusedAt(
      mutated((b) => (b[46] = 0x02)),
      "flags",
    );
    refusedAt(
      mutated((b) => {
        b[63] = 0xff;
        b[64] = 0xff;
      }),
      "heardCount",
    );
    // heard[1] := heard[0] (not strictly ascending)
    refusedAt(
      mutated((b) => b.copyWithin(73, 65, 73)),
      "heard",
    );
    // heard[0] := 0
    refusedAt(
      mutated((b) => b.fill(0, 65, 73)),
      "heard",
    );
    // heard[2] := the sender (3)
    refusedAt(
      mutated((b) => b.set([0, 0, 0, 0, 0, 0, 0, 3], 81)),
      "heard",
    );
  });

  test("the encoder refuses more than MAX_HEARD ids", () => {
    const heard = Array.from({ length: MAX_HEARD + 1 }, (_, i) => BigInt(i + 10));
    assert.throws(() => encodeHeartbeat({ ...base(), heard }, key.sign), WireError);
  });
});
