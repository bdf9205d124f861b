// Messages facet: sealed member-to-member ciphertexts carried by events, the sender resolved from its
// member key's signature, each (recipient, envelope id) delivered once, nothing stored but that bit.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import {
  bytesToHex,
  encodeAbiParameters,
  type Hex,
  hexToBigInt,
  keccak256,
  parseEventLogs,
  toHex,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import {
  type ClusterFixture,
  type AdmittedNode as Member,
  admitNewNode as newMember,
  setupCluster,
} from "../../../test/helpers/cluster.ts";
import { expectRevert } from "../../../test/helpers/revert.ts";
import { memberCallSigner, type Signer, Status, signLeave, signMember } from "../utils/chain.ts";

const MAX_CIPHERTEXT_BYTES = 4096;

function sendMessage(senderId: bigint, recipientId: bigint, envelopeId: Hex, ciphertext: Hex) {
  return { senderId, recipientId, envelopeId, ciphertextHash: keccak256(ciphertext) };
}

function signSend(
  fx: ClusterFixture,
  signer: Signer,
  senderId: bigint,
  recipientId: bigint,
  envelopeId: Hex,
  ciphertext: Hex,
) {
  return signMember(fx, signer, "Send", sendMessage(senderId, recipientId, envelopeId, ciphertext));
}

/** The signer the contract recovers when `signature` is checked against these send fields. */
function sendSigner(fx: ClusterFixture, fields: Parameters<typeof sendMessage>, signature: Hex) {
  return memberCallSigner(fx, "Send", sendMessage(...fields), signature);
}

function envelope(): Hex {
  return bytesToHex(randomBytes(32));
}

function ciphertextOf(length: number): Hex {
  return bytesToHex(randomBytes(length));
}

/** Signs and submits a message from `sender` (through the relayer); returns the receipt. */
/** `sender`'s own signed send to `recipient` (sent, not awaited). */
async function sendAs(
  fx: ClusterFixture,
  sender: Member,
  recipient: Member,
  envelopeId: Hex,
  ciphertext: Hex,
) {
  const signature = await signSend(
    fx,
    sender.node.memberAccount,
    sender.id,
    recipient.id,
    envelopeId,
    ciphertext,
  );
  return fx.relayer.write.send([sender.id, recipient.id, envelopeId, ciphertext, signature]);
}

async function send(fx: ClusterFixture, sender: Member, recipient: Member, envelopeId: Hex, ciphertext: Hex) {
  const receipt = await fx.publicClient.waitForTransactionReceipt({
    hash: await sendAs(fx, sender, recipient, envelopeId, ciphertext),
  });
  assert.equal(receipt.status, "success");
  return receipt;
}

/** ERC-7201 slot of MessagesStorage, from its namespace (not from the contract's constant). */
function messagesStorageSlot(): bigint {
  const namespace = hexToBigInt(keccak256(toHex("attestmesh.storage.Messages"))) - 1n;
  return hexToBigInt(keccak256(encodeAbiParameters([{ type: "uint256" }], [namespace]))) & ~0xffn;
}

/** The storage slot of `delivered[keccak256(abi.encode(senderId, recipientId, envelopeId))]`. */
function deliveredSlot(senderId: bigint, recipientId: bigint, envelopeId: Hex): Hex {
  const key = keccak256(
    encodeAbiParameters(
      [{ type: "uint64" }, { type: "uint64" }, { type: "bytes32" }],
      [senderId, recipientId, envelopeId],
    ),
  );
  return keccak256(
    encodeAbiParameters([{ type: "bytes32" }, { type: "uint256" }], [key, messagesStorageSlot()]),
  );
}

describe("messages", async () => {
  const fx = await setupCluster();
  const alice = await newMember(fx);
  const bob = await newMember(fx);
  const carol = await newMember(fx);

  /** The delivery bits of `envelopeId` to `recipientId` from every member of this suite. */
  const deliveredFromAnyone = (recipientId: bigint, envelopeId: Hex) =>
    Promise.all([alice, bob, carol].map((s) => fx.owner.read.isDelivered([s.id, recipientId, envelopeId])));

  /** Expects `call` to revert with `errorName(args)` and no delivery bit of the envelope to change. */
  async function refused(
    call: () => Promise<unknown>,
    recipientId: bigint,
    envelopeId: Hex,
    errorName: string,
    args?: unknown[],
  ) {
    const before = await deliveredFromAnyone(recipientId, envelopeId);
    await expectRevert(call(), errorName, args);
    assert.deepEqual(await deliveredFromAnyone(recipientId, envelopeId), before);
  }

  it("delivers a sealed message as MessageSent, with the sender resolved from its signature", async () => {
    const envelopeId = envelope();
    const ciphertext = ciphertextOf(80);
    assert.equal(await fx.owner.read.isDelivered([alice.id, bob.id, envelopeId]), false);
    const signature = await signSend(fx, alice.node.memberAccount, alice.id, bob.id, envelopeId, ciphertext);
    // A stranger relays it: msg.sender plays no part in who the sender is.
    const hash = await fx.stranger.write.send([alice.id, bob.id, envelopeId, ciphertext, signature]);
    const receipt = await fx.publicClient.waitForTransactionReceipt({ hash });
    const events = parseEventLogs({ abi: clusterAbi, logs: receipt.logs, eventName: "MessageSent" });
    assert.deepEqual(
      events.map((e) => e.args),
      [{ recipientId: bob.id, senderId: alice.id, envelopeId, ciphertext }],
    );
    assert.equal(receipt.logs.length, 1, "one event, nothing else");
    assert.equal(await fx.owner.read.isDelivered([alice.id, bob.id, envelopeId]), true);
    assert.equal(await fx.owner.read.isDelivered([carol.id, bob.id, envelopeId]), false, "keyed by sender");
    assert.equal(await fx.owner.read.isDelivered([alice.id, carol.id, envelopeId]), false);
    assert.equal(await fx.owner.read.isDelivered([bob.id, alice.id, envelopeId]), false);
  });

  it("refuses an empty ciphertext with MessageEmpty", async () => {
    const envelopeId = envelope();
    await refused(
      async () => sendAs(fx, alice, bob, envelopeId, "0x"),
      bob.id,
      envelopeId,
      "MessageEmpty",
      [],
    );
  });

  it("accepts exactly 4096 bytes of ciphertext and refuses 4097 with MessageTooLarge", async () => {
    assert.equal(await fx.owner.read.maxCiphertextBytes(), BigInt(MAX_CIPHERTEXT_BYTES));
    const largest = ciphertextOf(MAX_CIPHERTEXT_BYTES);
    const fits = envelope();
    const receipt = await send(fx, alice, bob, fits, largest);
    const [event] = parseEventLogs({ abi: clusterAbi, logs: receipt.logs, eventName: "MessageSent" });
    assert.equal(event?.args.ciphertext, largest);

    const tooLarge = ciphertextOf(MAX_CIPHERTEXT_BYTES + 1);
    const envelopeId = envelope();
    await refused(
      async () => sendAs(fx, alice, bob, envelopeId, tooLarge),
      bob.id,
      envelopeId,
      "MessageTooLarge",
      [MAX_CIPHERTEXT_BYTES + 1, MAX_CIPHERTEXT_BYTES],
    );
    // One byte is enough.
    await send(fx, alice, bob, envelope(), ciphertextOf(1));
  });

  it("refuses a recipient or a sender that was never a member with MemberNotActive", async () => {
    const [, , lastId] = await fx.owner.read.meshConfig();
    const ghost = lastId + 100n;
    const outsider = privateKeyToAccount(generatePrivateKey());
    const ciphertext = ciphertextOf(32);
    const envelopeId = envelope();
    await refused(
      async () =>
        fx.relayer.write.send([
          alice.id,
          ghost,
          envelopeId,
          ciphertext,
          await signSend(fx, alice.node.memberAccount, alice.id, ghost, envelopeId, ciphertext),
        ]),
      ghost,
      envelopeId,
      "MemberNotActive",
      [ghost, Status.None],
    );
    await refused(
      async () =>
        fx.relayer.write.send([
          ghost,
          bob.id,
          envelopeId,
          ciphertext,
          await signSend(fx, outsider, ghost, bob.id, envelopeId, ciphertext),
        ]),
      bob.id,
      envelopeId,
      "MemberNotActive",
      [ghost, Status.None],
    );
  });

  it("refuses a sender's second delivery of an envelope id to the same recipient", async () => {
    const envelopeId = envelope();
    await send(fx, alice, bob, envelopeId, ciphertextOf(40));
    const ciphertext = ciphertextOf(40);
    await refused(
      async () => sendAs(fx, alice, bob, envelopeId, ciphertext),
      bob.id,
      envelopeId,
      "EnvelopeAlreadyDelivered",
      [alice.id, bob.id, envelopeId],
    );
  });

  it("front-running: a member that burns another's pending envelope id first does not block that send (issue 13)", async () => {
    // Alice is about to send `envelopeId` to Bob; Carol sees it (a pending transaction, a reused id)
    // and delivers the same id to Bob first. Under the old (recipient, envelope) key Alice's send
    // reverted EnvelopeAlreadyDelivered; now only Alice's own sends can collide with hers.
    const envelopeId = envelope();
    await send(fx, carol, bob, envelopeId, ciphertextOf(40));
    assert.equal(
      await fx.owner.read.isDelivered([alice.id, bob.id, envelopeId]),
      false,
      "Alice's id is not burnt",
    );
    const receipt = await send(fx, alice, bob, envelopeId, ciphertextOf(40));
    const [event] = parseEventLogs({ abi: clusterAbi, logs: receipt.logs, eventName: "MessageSent" });
    assert.deepEqual(
      {
        recipientId: event?.args.recipientId,
        senderId: event?.args.senderId,
        envelopeId: event?.args.envelopeId,
      },
      { recipientId: bob.id, senderId: alice.id, envelopeId },
    );
    assert.equal(await fx.owner.read.isDelivered([alice.id, bob.id, envelopeId]), true);
    assert.equal(await fx.owner.read.isDelivered([carol.id, bob.id, envelopeId]), true);
  });

  it("delivers the same envelope id once to each recipient", async () => {
    const envelopeId = envelope();
    await send(fx, alice, bob, envelopeId, ciphertextOf(40));
    await send(fx, alice, carol, envelopeId, ciphertextOf(40));
    await send(fx, bob, alice, envelopeId, ciphertextOf(40));
    for (const [sender, recipient] of [
      [alice, bob],
      [alice, carol],
      [bob, alice],
    ] as const) {
      assert.equal(await fx.owner.read.isDelivered([sender.id, recipient.id, envelopeId]), true);
    }
  });

  it("binds the signature to ciphertext, recipient, envelope id and sender: any change is MemberSignatureMismatch", async () => {
    const envelopeId = envelope();
    const ciphertext = ciphertextOf(64);
    const signature = await signSend(fx, alice.node.memberAccount, alice.id, bob.id, envelopeId, ciphertext);
    const tamperedBytes = Uint8Array.from(Buffer.from(ciphertext.slice(2), "hex"));
    tamperedBytes[10]! ^= 0x01;
    const tampered = bytesToHex(tamperedBytes);
    const otherEnvelope = envelope();
    const cases: { fields: Parameters<typeof sendMessage>; recipient: bigint; envelope: Hex }[] = [
      { fields: [alice.id, bob.id, envelopeId, tampered], recipient: bob.id, envelope: envelopeId },
      { fields: [alice.id, bob.id, envelopeId, ciphertextOf(65)], recipient: bob.id, envelope: envelopeId },
      { fields: [alice.id, carol.id, envelopeId, ciphertext], recipient: carol.id, envelope: envelopeId },
      { fields: [alice.id, bob.id, otherEnvelope, ciphertext], recipient: bob.id, envelope: otherEnvelope },
      // Carol claims Alice's message as her own.
      { fields: [carol.id, bob.id, envelopeId, ciphertext], recipient: bob.id, envelope: envelopeId },
    ];
    for (const { fields, recipient, envelope: id } of cases) {
      await refused(
        () => fx.relayer.write.send([...fields, signature]),
        recipient,
        id,
        "MemberSignatureMismatch",
        [fields[0], await sendSigner(fx, fields, signature)],
      );
    }
    // Bob signs a message in Alice's name.
    await refused(
      async () =>
        fx.relayer.write.send([
          alice.id,
          carol.id,
          envelopeId,
          ciphertext,
          await signSend(fx, bob.node.memberAccount, alice.id, carol.id, envelopeId, ciphertext),
        ]),
      carol.id,
      envelopeId,
      "MemberSignatureMismatch",
      [alice.id, bob.node.memberAccount.address],
    );
    // The untouched message still goes through.
    await fx.relayer.write.send([alice.id, bob.id, envelopeId, ciphertext, signature]);
    assert.equal(await fx.owner.read.isDelivered([alice.id, bob.id, envelopeId]), true);
  });

  it("refuses messages to or from an evicted member, and from a member that left", async () => {
    const evicted = await newMember(fx);
    const leaver = await newMember(fx);
    const outbox = { envelopeId: envelope(), ciphertext: ciphertextOf(48) };
    // Signed while both were members, submitted after they are gone.
    const fromEvicted = await signSend(
      fx,
      evicted.node.memberAccount,
      evicted.id,
      alice.id,
      outbox.envelopeId,
      outbox.ciphertext,
    );
    const fromLeaver = await signSend(
      fx,
      leaver.node.memberAccount,
      leaver.id,
      alice.id,
      outbox.envelopeId,
      outbox.ciphertext,
    );
    const toEvicted = await signSend(
      fx,
      alice.node.memberAccount,
      alice.id,
      evicted.id,
      outbox.envelopeId,
      outbox.ciphertext,
    );
    await fx.owner.write.evict([evicted.id, 1]);
    const leave = await signLeave(fx, leaver.node.memberAccount, leaver.id);
    await fx.relayer.write.leaveCluster([leaver.id, leave]);

    const { envelopeId, ciphertext } = outbox;
    for (const [sender, recipient, signature, inactive, status] of [
      [alice, evicted, toEvicted, evicted, Status.Evicted],
      [evicted, alice, fromEvicted, evicted, Status.Evicted],
      [leaver, alice, fromLeaver, leaver, Status.Left],
    ] as const) {
      await refused(
        () => fx.relayer.write.send([sender.id, recipient.id, envelopeId, ciphertext, signature]),
        recipient.id,
        envelopeId,
        "MemberNotActive",
        [inactive.id, status],
      );
    }
  });

  it("stores nothing but the delivered bit: one storage write, at delivered[sender, recipient, envelope]", async () => {
    const envelopeId = envelope();
    const ciphertext = ciphertextOf(200);
    const slot = deliveredSlot(bob.id, carol.id, envelopeId);
    const readSlot = () => fx.publicClient.getStorageAt({ address: fx.deployed.diamond, slot });
    assert.equal(hexToBigInt((await readSlot()) ?? "0x0"), 0n);
    const receipt = await send(fx, bob, carol, envelopeId, ciphertext);
    assert.equal(hexToBigInt((await readSlot()) ?? "0x0"), 1n);

    const trace = (await fx.publicClient.request({
      method: "debug_traceTransaction",
      params: [receipt.transactionHash],
    } as never)) as { structLogs: { op: string; stack?: Hex[] }[] };
    const stores = trace.structLogs
      .filter((step) => step.op === "SSTORE")
      .map((step) => {
        const stack = step.stack ?? [];
        return { slot: hexToBigInt(stack.at(-1)!), value: hexToBigInt(stack.at(-2)!) };
      });
    assert.deepEqual(stores, [{ slot: hexToBigInt(slot), value: 1n }]);
  });
});
