// The CSK request and response datagrams: round trips, and a refusal naming the field for malformed
// input of every field.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import {
  type CskRequest,
  type CskResponse,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  ResponseStatus,
  SEALED_CSK_BYTES,
  verifySigned,
} from "../../src/csk/codec.ts";
import type { SigningKey } from "../../src/meshnet/crypto.ts";
import { WireError } from "../../src/meshnet/wire.ts";
import { assertWireRefusal, TEST_CLUSTER, twoSigningKeys } from "../helpers.ts";

let key: SigningKey;
let other: SigningKey;

const request = (): CskRequest => ({
  ...TEST_CLUSTER,
  requesterId: 4n,
  serverId: 1n,
  epoch: 3n,
  timestampMs: 1_700_000_000_000n,
  nonce: new Uint8Array(16).fill(7),
});
const response = (patch: Partial<CskResponse> = {}): CskResponse => ({
  ...TEST_CLUSTER,
  serverId: 1n,
  requesterId: 4n,
  epoch: 3n,
  nonce: new Uint8Array(16).fill(7),
  status: ResponseStatus.Ok,
  sealed: new Uint8Array(SEALED_CSK_BYTES).fill(9),
  ...patch,
});

/**
 * Every truncation of `bytes` is refused, each cut at an offset of `fields` names that field, and
 * `trailing` extra bytes are refused as a wrong length.
 */
function refusesTruncations(
  decode: (b: Uint8Array) => unknown,
  bytes: Uint8Array,
  fields: ReadonlyArray<readonly [number, string]>,
  trailing: number,
): void {
  for (let n = 0; n < bytes.length; n++) assert.throws(() => decode(bytes.subarray(0, n)), WireError);
  for (const [n, field] of fields) assertWireRefusal(decode, bytes.subarray(0, n), field);
  const longer = new Uint8Array(bytes.length + trailing);
  longer.set(bytes);
  assertWireRefusal(decode, longer, "length");
}

describe("CSK request codec", () => {
  before(async () => {
    [key, other] = await twoSigningKeys();
  });

  test("round trip; the signature verifies with the requester's key only", () => {
    const bytes = encodeRequest(request(), key.sign);
    assert.equal(bytes.length, 142);
    const signed = decodeRequest(bytes);
    assert.deepEqual(signed.message, request());
    assert.ok(verifySigned(signed, key.publicKey));
    assert.ok(!verifySigned(signed, other.publicKey));
  });

  test("every truncation and trailing bytes are refused", () => {
    const bytes = encodeRequest(request(), key.sign);
    const fields = [
      [1, "type"],
      [9, "chainId"],
      [29, "cluster"],
      [37, "requesterId"],
      [45, "serverId"],
      [53, "epoch"],
      [61, "timestampMs"],
      [77, "nonce"],
      [141, "signature"],
    ] as const;
    refusesTruncations(decodeRequest, bytes, fields, 3);
  });

  test("bad values of each field are refused", () => {
    const bad = (mutate: (b: Uint8Array) => void) => {
      const b = encodeRequest(request(), key.sign);
      mutate(b);
      return b;
    };
    const cases: Array<[(b: Uint8Array) => unknown, string]> = [
      [(b) => (b[0] = 9), "version"],
      [(b) => (b[1] = 1), "type"],
      [(b) => b.fill(0, 2, 10), "chainId"],
      [(b) => b.fill(0, 30, 38), "requesterId"],
      [(b) => b.fill(0, 38, 46), "serverId"],
      [(b) => b.copyWithin(38, 30, 38), "serverId"],
    ];
    for (const [mutate, field] of cases) assertWireRefusal(decodeRequest, bad(mutate), field);
  });

  test("a tampered field no longer matches the signature", () => {
    for (const offset of [5, 20, 33, 41, 50, 58, 70, 100]) {
      const b = encodeRequest(request(), key.sign);
      b[offset]! ^= 0x10;
      let ok: boolean;
      try {
        ok = verifySigned(decodeRequest(b), key.publicKey);
      } catch {
        ok = false;
      }
      assert.equal(ok, false, `offset ${offset}`);
    }
  });

  test("the encoder refuses a nonce of the wrong length", () => {
    assert.throws(() => encodeRequest({ ...request(), nonce: new Uint8Array(15) }, key.sign), WireError);
  });
});

describe("CSK response codec", () => {
  test("round trip with a sealed key, and without (not held)", () => {
    const ok = decodeResponse(encodeResponse(response(), key.sign));
    assert.deepEqual(ok.message, response());
    assert.ok(verifySigned(ok, key.publicKey));
    assert.ok(!verifySigned(ok, other.publicKey));
    const none = response({ status: ResponseStatus.NotHeld, sealed: new Uint8Array(0) });
    const bytes = encodeResponse(none, key.sign);
    assert.equal(bytes.length, 73 + 64);
    assert.deepEqual(decodeResponse(bytes).message, none);
  });

  test("round trip of a not-attested-yet refusal, which carries no key", () => {
    const refusal = response({ status: ResponseStatus.NotAttestedYet, sealed: new Uint8Array(0) });
    const bytes = encodeResponse(refusal, key.sign);
    assert.equal(bytes.length, 73 + 64);
    const decoded = decodeResponse(bytes);
    assert.deepEqual(decoded.message, refusal);
    assert.ok(verifySigned(decoded, key.publicKey));
    assertWireRefusal(
      decodeResponse,
      encodeResponse(response({ status: ResponseStatus.NotAttestedYet }), key.sign),
      "sealedLength",
    );
  });

  test("every truncation and trailing bytes are refused", () => {
    const bytes = encodeResponse(response(), key.sign);
    const fields = [
      [37, "serverId"],
      [45, "requesterId"],
      [53, "epoch"],
      [69, "nonce"],
      [70, "status"],
      [72, "sealedLength"],
      [100, "sealed"],
      [bytes.length - 1, "signature"],
    ] as const;
    refusesTruncations(decodeResponse, bytes, fields, 1);
  });

  test("unknown status, and a sealed length that does not fit the status, are refused", () => {
    const b = encodeResponse(response(), key.sign);
    b[70] = 3;
    assertWireRefusal(decodeResponse, b, "status");
    assertWireRefusal(
      decodeResponse,
      encodeResponse(response({ sealed: new Uint8Array(79) }), key.sign),
      "sealedLength",
    );
    assertWireRefusal(
      decodeResponse,
      encodeResponse(response({ status: ResponseStatus.NotHeld }), key.sign),
      "sealedLength",
    );
    assertWireRefusal(
      decodeResponse,
      encodeResponse(response({ sealed: new Uint8Array(0) }), key.sign),
      "sealedLength",
    );
    const zero = encodeResponse(response(), key.sign);
    zero.fill(0, 30, 38);
    assertWireRefusal(decodeResponse, zero, "serverId");
  });
});
