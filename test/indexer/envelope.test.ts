// The indexer envelope codec both ends share: what the signature covers, the domain separation, the
// shape checks, and the quote binding.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ENVELOPE_DOMAIN,
  type Envelope,
  envelopeSigningBytes,
  type LogEnvelope,
  parseEnvelope,
  reproFor,
  signEnvelope,
  toHex,
  verifyEnvelopeSignature,
} from "@attestmesh/shared/indexer/envelope.ts";
import {
  formatCursor,
  parseCursor,
  quoteBindsKey,
  quoteReportData,
} from "@attestmesh/shared/indexer/protocol.ts";
import { ed25519 } from "@noble/curves/ed25519";

const secret = new Uint8Array(32).fill(1);
const publicKey = ed25519.getPublicKey(secret);
const log = {
  address: `0x${"11".repeat(20)}`,
  topics: [`0x${"22".repeat(32)}`, `0x${"00".repeat(31)}07`],
  data: "0x0102",
};
const unsigned: LogEnvelope = {
  v: 1,
  kind: "log",
  chainId: 31337,
  cluster: `0x${"11".repeat(20)}`,
  epoch: `0x${"33".repeat(16)}`,
  seq: "42",
  blockNumber: "100",
  blockHash: `0x${"44".repeat(32)}`,
  txHash: `0x${"55".repeat(32)}`,
  logIndex: 3,
  removed: false,
  log,
  repro: reproFor(log, 100n),
};

describe("indexer envelope", () => {
  test("signs and verifies; the signed bytes are the domain tag and the JCS of every other field", () => {
    const envelope = signEnvelope(unsigned, secret);
    assert.ok(verifyEnvelopeSignature(envelope, publicKey));
    const bytes = new TextDecoder().decode(
      envelopeSigningBytes(envelope as unknown as Record<string, unknown>),
    );
    assert.ok(bytes.startsWith(ENVELOPE_DOMAIN));
    const json = bytes.slice(ENVELOPE_DOMAIN.length);
    assert.equal(json.indexOf('"blockHash"') < json.indexOf('"blockNumber"'), true, "keys sorted");
    assert.ok(!json.includes('"sig"'));
    assert.deepEqual(JSON.parse(json), unsigned);
  });

  test("changing any field, nested ones included, or adding one breaks the signature", () => {
    const envelope = signEnvelope(unsigned, secret);
    const variants: Array<[string, Envelope]> = [
      ["seq", { ...envelope, seq: "43" }],
      ["cluster", { ...envelope, cluster: `0x${"12".repeat(20)}` }],
      ["removed", { ...envelope, removed: true } as Envelope],
      ["log.data", { ...envelope, log: { ...log, data: "0x0103" } } as Envelope],
      ["log.topics", { ...envelope, log: { ...log, topics: [log.topics[0]!] } } as Envelope],
      ["repro", { ...envelope, repro: reproFor(log, 101n) } as Envelope],
      ["extra field", { ...envelope, note: "hi" } as unknown as Envelope],
    ];
    for (const [what, variant] of variants)
      assert.equal(verifyEnvelopeSignature(variant, publicKey), false, what);
    const other = ed25519.getPublicKey(new Uint8Array(32).fill(2));
    assert.equal(verifyEnvelopeSignature(envelope, other), false, "another key");
  });

  test("a signature over the same fields without the domain tag does not verify", () => {
    const bytes = envelopeSigningBytes(unsigned as unknown as Record<string, unknown>).slice(
      ENVELOPE_DOMAIN.length,
    );
    const envelope = { ...unsigned, sig: toHex(ed25519.sign(bytes, secret)) } as Envelope;
    assert.equal(verifyEnvelopeSignature(envelope, publicKey), false);
  });

  test("parseEnvelope refuses malformed envelopes with a clear error", () => {
    const envelope = signEnvelope(unsigned, secret);
    const bad: Array<[string, unknown]> = [
      ["not an object", "hello"],
      ["unknown kind", { ...envelope, kind: "block" }],
      ["uppercase hex", { ...envelope, txHash: `0x${"AB".repeat(32)}` }],
      ["short block hash", { ...envelope, blockHash: "0x1234" }],
      ["seq as number", { ...envelope, seq: 42 }],
      ["five topics", { ...envelope, log: { ...log, topics: Array(5).fill(log.topics[0]) } }],
      ["no signature", { ...envelope, sig: undefined }],
    ];
    for (const [what, value] of bad) {
      assert.throws(() => parseEnvelope(value), { code: "InvalidEnvelope" }, what);
    }
    assert.deepEqual(parseEnvelope(JSON.parse(JSON.stringify(envelope))), envelope);
  });

  test("the quote binding is checked at byte alignment only", () => {
    const reportData = quoteReportData(publicKey);
    const quote = toHex(new Uint8Array([9, ...reportData, 9]));
    assert.ok(quoteBindsKey(quote, publicKey));
    assert.ok(!quoteBindsKey(quote, new Uint8Array(32).fill(3)));
    // The same digits shifted by one hex digit are not the report data.
    const shifted = `0x0${Buffer.from(reportData).toString("hex")}0`;
    assert.ok(!quoteBindsKey(shifted, publicKey));
  });

  test("cursors round-trip and malformed ones are refused", () => {
    const cursor = formatCursor(`0x${"ab".repeat(16)}`, "17");
    assert.deepEqual(parseCursor(cursor), { epoch: `0x${"ab".repeat(16)}`, seq: 17n });
    for (const bad of ["", "0xab:1", `0x${"ab".repeat(16)}:-1`, `0x${"ab".repeat(16)}:01`]) {
      assert.equal(parseCursor(bad), undefined, bad);
    }
  });
});
