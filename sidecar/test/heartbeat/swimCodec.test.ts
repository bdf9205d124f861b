// The liveness datagram and its statements: round trip, the size bound under the WireGuard MTU, a
// refusal naming the field for malformed input, and signatures that bind sender, reporter and cluster.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { getAddress } from "viem";
import {
  decodeLiveness,
  digestShare,
  encodeLiveness,
  HEADER_BYTES,
  type LivenessMessage,
  MAX_DATAGRAM_BYTES,
  MAX_STATEMENTS,
  ProbeKind,
  STATEMENT_BYTES,
  StatementKind,
  signStatement,
  verifyLiveness,
  verifyStatement,
} from "../../src/heartbeat/swimCodec.ts";
import type { SigningKey } from "../../src/meshnet/crypto.ts";
import { WireError } from "../../src/meshnet/wire.ts";
import { assertWireRefusal, twoSigningKeys } from "../helpers.ts";

const CLUSTER = getAddress("0x5fbdb2315678afecb367f032d93f642f64180aa3");
const ID = { chainId: 31337, cluster: CLUSTER };
let key: SigningKey;
let other: SigningKey;

const base = (statements: LivenessMessage["statements"] = []): LivenessMessage => ({
  ...ID,
  senderId: 3n,
  kind: ProbeKind.Ping,
  origin: 3n,
  target: 5n,
  seq: 4_000_000_000,
  incarnation: 1_700_000_000_000n,
  epoch: 2n,
  holdsCsk: true,
  digest: 0x0123_4567_89ab_cdefn,
  timestampMs: 1_700_000_000_123n,
  statements,
});

const refusedAt = (bytes: Uint8Array, field: string) => assertWireRefusal(decodeLiveness, bytes, field);

describe("liveness codec", () => {
  before(async () => {
    [key, other] = await twoSigningKeys();
  });

  test("round trip: every field survives; the signature verifies with the sender's key only", () => {
    const alive = signStatement(
      ID,
      { kind: StatementKind.Alive, subject: 3n, incarnation: 9n, reporter: 3n },
      key.sign,
    );
    const bytes = encodeLiveness(base([alive]), key.sign);
    assert.equal(bytes.length, HEADER_BYTES + STATEMENT_BYTES + 64);
    const m = decodeLiveness(bytes);
    const { signature, signedBytes, statements, ...fields } = m;
    const { statements: _s, ...expected } = base();
    assert.deepEqual(fields, expected);
    assert.equal(statements.length, 1);
    assert.deepEqual(
      { ...statements[0]!, bytes: undefined },
      { kind: StatementKind.Alive, subject: 3n, incarnation: 9n, reporter: 3n, bytes: undefined },
    );
    assert.ok(verifyLiveness(m, key.publicKey));
    assert.ok(!verifyLiveness(m, other.publicKey));
    assert.ok(verifyStatement(ID, statements[0]!, key.publicKey));
    assert.ok(!verifyStatement(ID, statements[0]!, other.publicKey));
  });

  test("the largest datagram fits one packet under the WireGuard MTU; one more statement is refused", () => {
    const s = signStatement(
      ID,
      { kind: StatementKind.Suspect, subject: 7n, incarnation: 1n, reporter: 3n },
      key.sign,
    );
    const full = encodeLiveness(base(Array(MAX_STATEMENTS).fill(s)), key.sign);
    assert.ok(full.length <= MAX_DATAGRAM_BYTES, `${full.length} bytes`);
    assert.ok(full.length + 28 <= 1420, "with IPv4 and UDP headers, under WireGuard's MTU");
    assert.throws(() => encodeLiveness(base(Array(MAX_STATEMENTS + 1).fill(s)), key.sign), WireError);
    // A forged count above the bound is refused before the statements are read.
    const forged = full.slice();
    forged[HEADER_BYTES - 1] = MAX_STATEMENTS + 1;
    refusedAt(forged, "statementCount");
    const huge = new Uint8Array(MAX_DATAGRAM_BYTES + 1);
    refusedAt(huge, "length");
  });

  test("a statement signed for another cluster does not verify here", () => {
    const elsewhere = { chainId: 31337, cluster: getAddress("0x00000000000000000000000000000000000000aa") };
    const s = signStatement(
      elsewhere,
      { kind: StatementKind.Dead, subject: 7n, incarnation: 1n, reporter: 3n },
      key.sign,
    );
    assert.ok(verifyStatement(elsewhere, s, key.publicKey));
    assert.ok(!verifyStatement(ID, s, key.publicKey));
  });

  test("only a member says it is alive; nobody suspects or buries itself", () => {
    for (const [kind, subject, refusal] of [
      [StatementKind.Alive, 5n, /only a member itself/],
      [StatementKind.Suspect, 3n, /cannot suspect or bury itself/],
    ] as const) {
      assert.throws(
        () => signStatement(ID, { kind, subject, incarnation: 1n, reporter: 3n }, key.sign),
        refusal,
      );
    }
    // The same refusals on the wire: an alive statement about 5 reported by 3, forged byte by byte.
    const s = signStatement(
      ID,
      { kind: StatementKind.Suspect, subject: 5n, incarnation: 1n, reporter: 3n },
      key.sign,
    );
    const bytes = encodeLiveness(base([s]), key.sign);
    bytes[HEADER_BYTES] = StatementKind.Alive;
    refusedAt(bytes, "statement");
    bytes[HEADER_BYTES] = 9;
    refusedAt(bytes, "statement.kind");
  });

  test("malformed headers are refused naming the field", () => {
    const good = () => encodeLiveness(base(), key.sign);
    const at = (offset: number, value: number, field: string) => {
      const b = good();
      b[offset] = value;
      refusedAt(b, field);
    };
    at(0, 2, "version");
    at(1, 1, "type");
    at(38, 0, "kind");
    at(38, 7, "kind");
    at(75, 2, "flags");
    const noSender = good();
    noSender.fill(0, 30, 38);
    refusedAt(noSender, "senderId");
    const noTarget = good();
    noTarget.fill(0, 47, 55);
    refusedAt(noTarget, "target");
    refusedAt(good().slice(0, 100), "signature");
    const trailing = new Uint8Array(good().length + 1);
    trailing.set(good(), 0);
    refusedAt(trailing, "length");
    // An ack must name its sender as the target; a ping-req comes from its origin.
    assert.throws(
      () => decodeLiveness(encodeLiveness({ ...base(), kind: ProbeKind.Ack }, key.sign)),
      WireError,
    );
    assert.throws(
      () => decodeLiveness(encodeLiveness({ ...base(), kind: ProbeKind.PingReq, origin: 4n }, key.sign)),
      WireError,
    );
    assert.throws(
      () => decodeLiveness(encodeLiveness({ ...base(), kind: ProbeKind.SyncReq, seq: 97 }, key.sign)),
      WireError,
    );
  });

  test("the live-set digest is an order-free XOR of per-member shares", () => {
    const a = digestShare(1n) ^ digestShare(2n) ^ digestShare(3n);
    const b = digestShare(3n) ^ digestShare(1n) ^ digestShare(2n);
    assert.equal(a, b);
    assert.notEqual(a, digestShare(1n) ^ digestShare(2n));
  });
});
