// The indexer protocol's steps without a socket: frames in, steps out. A challenge that is missing,
// malformed or names another key is rejected; a good one is answered by a subscribe signed over this
// member, challenge, key and cursor; then only envelopes the verifier accepts pass, the hello first, and
// a rejected frame changes nothing (the next good frame still passes, the position does not move).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { MESSAGE_SENT_TOPIC } from "@attestmesh/shared/contracts/events.ts";
import {
  type Envelope,
  type LogEnvelope,
  reproFor,
  signEnvelope,
  toHex,
} from "@attestmesh/shared/indexer/envelope.ts";
import { quoteReportData } from "@attestmesh/shared/indexer/protocol.ts";
import { ed25519 } from "@noble/curves/ed25519";
import { getAddress, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { createSubscriptionProtocol, type ProtocolStep } from "../../src/intake/protocol.ts";

const CLUSTER = getAddress("0x5fbdb2315678afecb367f032d93f642f64180aa3");
const CHAIN_ID = 31337;
const MEMBER = 7n;
const EPOCH = toHex(randomBytes(16));

function indexerKey() {
  const secret = ed25519.utils.randomPrivateKey();
  return { secret, publicKey: toHex(ed25519.getPublicKey(secret)) as Hex };
}

const key = indexerKey();
const other = indexerKey();
const challenge = toHex(randomBytes(32)) as Hex;

function protocol(position?: { epoch: string; seq: bigint }) {
  return createSubscriptionProtocol({
    signingKey: key.publicKey,
    chainId: CHAIN_ID,
    cluster: CLUSTER,
    memberId: MEMBER,
    messageSentTopic: MESSAGE_SENT_TOPIC,
    position,
  });
}

const frame = (value: unknown) => Buffer.from(JSON.stringify(value));
const challengeFrame = (signingKey: string = key.publicKey, value: string = challenge) =>
  frame({ type: "challenge", challenge: value, chainId: CHAIN_ID, signingKey });

function hello(options: { seq?: bigint; session?: string; signer?: typeof key } = {}): Envelope {
  const quote = `0x${"00".repeat(16)}${Buffer.from(quoteReportData(Buffer.from(key.publicKey.slice(2), "hex"))).toString("hex")}`;
  return signEnvelope(
    {
      v: 1,
      kind: "hello",
      chainId: CHAIN_ID,
      cluster: CLUSTER.toLowerCase(),
      epoch: EPOCH,
      seq: (options.seq ?? 0n).toString(),
      blockNumber: "0",
      blockHash: `0x${"00".repeat(32)}`,
      session: options.session ?? challenge,
      memberId: MEMBER.toString(),
      quote,
      gap: false,
    },
    (options.signer ?? key).secret,
  );
}

function log(seq: bigint, overrides: Partial<LogEnvelope> = {}): Envelope {
  const fields = { address: CLUSTER.toLowerCase(), topics: [`0x${"11".repeat(32)}`], data: "0x" };
  return signEnvelope(
    {
      v: 1,
      kind: "log",
      chainId: CHAIN_ID,
      cluster: CLUSTER.toLowerCase(),
      epoch: EPOCH,
      seq: seq.toString(),
      blockNumber: "12",
      blockHash: `0x${"22".repeat(32)}`,
      txHash: `0x${"33".repeat(32)}`,
      logIndex: 0,
      removed: false,
      log: fields,
      repro: reproFor(fields, 12n),
      ...overrides,
    },
    key.secret,
  );
}

const envelopeFrame = (envelope: Envelope) => frame({ type: "envelope", envelope });

function expectReject(step: ProtocolStep, reason: string): void {
  assert.equal(step.kind, "reject");
  assert.equal(step.kind === "reject" && step.reason, reason);
}

/** A protocol past the challenge, with its subscribe step. */
function subscribed(position?: { epoch: string; seq: bigint }) {
  const p = protocol(position);
  const step = p.receive(challengeFrame());
  assert.equal(step.kind, "subscribe");
  return { p, step: step as Extract<ProtocolStep, { kind: "subscribe" }> };
}

describe("indexer protocol: the challenge", () => {
  for (const [name, data, reason] of [
    ["not JSON", Buffer.from("{nope"), "NotJson"],
    ["a JSON array", frame([1, 2]), "NotJson"],
    ["an envelope before any challenge", envelopeFrame(hello()), "NoChallenge"],
    ["a challenge without its value", frame({ type: "challenge", signingKey: key.publicKey }), "NoChallenge"],
    [
      "a challenge that is not 32 bytes of lowercase hex",
      challengeFrame(key.publicKey, "0x1234"),
      "BadChallenge",
    ],
    ["a challenge naming another key", challengeFrame(other.publicKey), "NotTheRegisteredKey"],
  ] as const) {
    test(`${name}: ${reason}, and the protocol still waits for a good challenge`, () => {
      const p = protocol();
      expectReject(p.receive(data), reason);
      assert.equal(p.receive(challengeFrame()).kind, "subscribe");
    });
  }

  test("a good challenge: a subscribe signed by the member key over member, challenge, key and cursor", async () => {
    const { step } = subscribed();
    assert.equal(step.typedData.primaryType, "IndexerSubscribe");
    assert.deepEqual(step.typedData.message, {
      memberId: MEMBER,
      challenge,
      signingKey: key.publicKey,
      cursor: "",
    });
    const account = privateKeyToAccount(`0x${"42".repeat(32)}`);
    const signature = await account.signTypedData(step.typedData);
    assert.deepEqual(step.message(signature), {
      type: "subscribe",
      cluster: CLUSTER.toLowerCase(),
      memberId: "7",
      signature,
    });
  });

  test("a position from an earlier session becomes the cursor", () => {
    const { step } = subscribed({ epoch: EPOCH, seq: 41n });
    assert.equal(step.typedData.message.cursor, `${EPOCH}:41`);
    assert.equal(step.message("0xsig").cursor, `${EPOCH}:41`);
  });
});

describe("indexer protocol: envelopes", () => {
  test("the hello, then logs in order; each accepted one moves the position", () => {
    const { p } = subscribed();
    const first = p.receive(envelopeFrame(hello({ seq: 3n })));
    assert.equal(first.kind, "hello");
    assert.deepEqual(first.kind === "hello" && p.accept(first.envelope), { epoch: EPOCH, seq: 3n });
    const next = p.receive(envelopeFrame(log(4n)));
    assert.equal(next.kind, "log");
    assert.deepEqual(next.kind === "log" && p.accept(next.envelope), { epoch: EPOCH, seq: 4n });
  });

  test("an indexer's error frame is a refusal, not a rejection", () => {
    const { p } = subscribed();
    assert.deepEqual(p.receive(frame({ type: "error", code: "Refused", message: "no" })), {
      kind: "refused",
      code: "Refused",
      message: "no",
    });
  });

  for (const [name, make, reason] of [
    ["a frame that is not an envelope", () => frame({ type: "ack", seq: "1" }), "UnexpectedMessage"],
    ["a log before the hello", () => envelopeFrame(log(1n)), "NoHello"],
    [
      "a hello of another session",
      () => envelopeFrame(hello({ session: `0x${"ab".repeat(32)}` })),
      "HelloForAnotherSession",
    ],
    ["a hello signed by another key", () => envelopeFrame(hello({ signer: other })), "BadSignature"],
  ] as const) {
    test(`${name}: ${reason}, and nothing changed`, () => {
      const { p } = subscribed();
      expectReject(p.receive(make()), reason);
      assert.equal(p.receive(envelopeFrame(hello())).kind, "hello", "the good hello still passes");
    });
  }

  test("after the hello: a second hello, a replay and a forged repro are rejected; the position stays", () => {
    const { p } = subscribed();
    const h = p.receive(envelopeFrame(hello({ seq: 5n })));
    assert.ok(h.kind === "hello");
    p.accept(h.envelope);
    expectReject(p.receive(envelopeFrame(hello({ seq: 6n }))), "SecondHello");
    expectReject(p.receive(envelopeFrame(log(5n))), "Replayed");
    expectReject(
      p.receive(
        envelopeFrame(
          log(6n, {
            repro: reproFor(
              { address: CLUSTER.toLowerCase(), topics: [`0x${"11".repeat(32)}`], data: "0x" },
              11n,
            ),
          }),
        ),
      ),
      "ReproNotTheLogs",
    );
    const ok = p.receive(envelopeFrame(log(6n)));
    assert.equal(ok.kind, "log");
    assert.deepEqual(ok.kind === "log" && p.accept(ok.envelope), { epoch: EPOCH, seq: 6n });
  });
});
