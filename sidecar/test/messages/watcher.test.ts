// The message watcher against the cluster contract on the in-process Hardhat network: chain order,
// only this member's logs, ranges split by maxLogRange, a cursor that advances only past what was
// handled, restarts, rewinds caught by dedup, and an RPC failure halfway through a catch-up.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { IDENTITY_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { Registry } from "prom-client";
import {
  bytesToHex,
  type Chain,
  custom,
  type Hex,
  keccak256,
  type PublicClient,
  type Transport,
  zeroHash,
} from "viem";
import {
  admitNewNode,
  type ClusterFixture,
  type AdmittedNode as Member,
  setupCluster,
} from "../../../test/helpers/cluster.ts";
import type { ChainContext, GasWallet } from "../../src/chain/client.ts";
import { createClusterReader } from "../../src/chain/cluster.ts";
import { AttestmeshError, retryableError } from "../../src/errors.ts";
import type { NodeKeys } from "../../src/keys.ts";
import { type CursorStore, createMemoryCursorStore } from "../../src/messages/cursor.ts";
import { envelopeKey } from "../../src/messages/dedup.ts";
import { sealMessage } from "../../src/messages/envelope.ts";
import { createMessageMetrics } from "../../src/messages/metrics.ts";
import { sodiumReady, x25519FromEd25519Seed } from "../../src/messages/sealedBox.ts";
import { createMessageSender } from "../../src/messages/sender.ts";
import type { ReceivedMessage } from "../../src/messages/types.ts";
import { createMessageWatcher } from "../../src/messages/watcher.ts";
import type { Member as MemberRecord } from "../../src/model/member.ts";
import { createReattestation } from "../../src/reattest/scheduler.ts";
import type { Verdict, VerifiedEvidence } from "../../src/reattest/verdict.ts";
import { secret } from "../../src/secret.ts";
import { captureLogger, readsOver } from "../helpers.ts";

describe("message watcher", () => {
  let fx: ClusterFixture;
  let alice: Member;
  let bob: Member;
  let carol: Member;
  const sent: Array<{ from: Member; to: Member; text: string; envelopeId: Hex }> = [];

  async function send(
    from: Member,
    to: Member,
    text: string,
    envelopeId: Hex = bytesToHex(randomBytes(32)),
  ): Promise<void> {
    const ciphertext = bytesToHex(
      sealMessage(
        {
          header: {
            chainId: BigInt(fx.chainId),
            cluster: fx.deployed.diamond,
            senderId: from.id,
            recipientId: to.id,
            envelopeId,
          },
          payload: new TextEncoder().encode(text),
        },
        to.node.identityKey,
        from.node.identitySecret,
      ),
    );
    const signature = await from.node.memberAccount.signTypedData({
      domain: memberDomain(fx.chainId, fx.deployed.diamond),
      types: memberTypes,
      primaryType: "Send",
      message: { senderId: from.id, recipientId: to.id, envelopeId, ciphertextHash: keccak256(ciphertext) },
    });
    const hash = await fx.relayer.write.send([from.id, to.id, envelopeId, ciphertext, signature]);
    await fx.publicClient.waitForTransactionReceipt({ hash });
    sent.push({ from, to, text, envelopeId });
  }

  function watcherFor(
    member: Member,
    store: CursorStore,
    options: {
      transport?: Transport;
      startBlock?: bigint;
      memberId?: () => bigint | undefined;
      registry?: Registry;
      /** Runs before a message is recorded as delivered; throwing refuses it (a full inbox). */
      refuse?: (m: ReceivedMessage) => void;
      knownMember?: (memberId: bigint) => MemberRecord | undefined;
      senderRefused?: (senderId: bigint, blockNumber: bigint) => boolean;
    } = {},
  ) {
    const delivered: ReceivedMessage[] = [];
    const reads = readsOver(options.transport ?? custom(fx.connection.provider, { retryCount: 0 }));
    const log = captureLogger("debug");
    const watcher = createMessageWatcher({
      reads,
      chainId: fx.chainId,
      cluster: fx.deployed.diamond,
      reader: createClusterReader(reads, fx.deployed.diamond),
      store,
      keyPair: x25519FromEd25519Seed(
        member.node.cvm.getKey(IDENTITY_KEY.path, IDENTITY_KEY.purpose, "ed25519").key,
      ),
      confirmations: 0,
      logger: log.logger,
      metrics: createMessageMetrics(options.registry ?? new Registry()),
      memberId: options.memberId ?? (() => member.id),
      ...(options.knownMember === undefined ? {} : { knownMember: options.knownMember }),
      ...(options.senderRefused === undefined ? {} : { senderRefused: options.senderRefused }),
      deliver: (m) => {
        options.refuse?.(m);
        delivered.push(m);
      },
      startBlock: options.startBlock,
      maxLogRange: 2n,
    });
    return { watcher, delivered, log };
  }

  const texts = (delivered: readonly ReceivedMessage[]) =>
    delivered.map((m) => new TextDecoder().decode(m.payload));

  before(async () => {
    await sodiumReady();
    fx = await setupCluster();
    alice = await admitNewNode(fx);
    bob = await admitNewNode(fx);
    carol = await admitNewNode(fx);
  });

  test("delivers this member's messages in chain order, across ranges of at most maxLogRange blocks", async () => {
    const store = createMemoryCursorStore();
    const { watcher, delivered } = watcherFor(bob, store);
    await watcher.init();
    const start = watcher.cursorBlock()!;
    assert.equal(start, await fx.publicClient.getBlockNumber(), "a new cursor starts at the head");
    await send(alice, bob, "one");
    await send(carol, bob, "two");
    await send(alice, carol, "not for bob");
    await send(alice, bob, "three");
    await send(carol, bob, "four");
    await watcher.pass();
    assert.deepEqual(texts(delivered), ["one", "two", "three", "four"]);
    assert.deepEqual(
      delivered.map((m) => m.senderId),
      [alice.id, carol.id, alice.id, carol.id],
    );
    assert.equal(delivered[0]!.senderAppId, alice.node.appId, "the sender's app id, read from the chain");
    assert.equal(delivered[1]!.recipientId, bob.id);
    const head = await fx.publicClient.getBlockNumber();
    assert.equal(watcher.cursorBlock(), head);
    assert.deepEqual((await store.load())?.block, head);
    await watcher.pass();
    assert.equal(delivered.length, 4, "a second pass delivers nothing new");
  });

  test("a message the inbox refuses (full, unwritable) keeps the cursor before it; the next pass delivers it", async () => {
    const store = createMemoryCursorStore();
    let refuse = true;
    const { watcher, delivered } = watcherFor(bob, store, {
      startBlock: 1n,
      refuse: (m) => {
        if (refuse && new TextDecoder().decode(m.payload) === "three") {
          throw retryableError("InboxFull", "the inbox is full");
        }
      },
    });
    await watcher.init();
    await assert.rejects(watcher.pass(), /the inbox is full/);
    assert.deepEqual(texts(delivered), ["one", "two"]);
    const saved = (await store.load())!;
    const three = sent.find((s) => s.text === "three")!;
    assert.ok(
      !saved.recent.includes(envelopeKey(three.from.id, bob.id, three.envelopeId)),
      "the refused message is not remembered as delivered",
    );
    refuse = false;
    await watcher.pass();
    assert.deepEqual(texts(delivered), ["one", "two", "three", "four"], "once each, in order");
  });

  test("a restart with the same cursor delivers nothing twice, and then the next message", async () => {
    const store = createMemoryCursorStore();
    const first = watcherFor(bob, store, { startBlock: 1n });
    await first.watcher.init();
    await first.watcher.pass();
    assert.deepEqual(
      texts(first.delivered),
      ["one", "two", "three", "four"],
      "startBlock replays from there",
    );
    const second = watcherFor(bob, store);
    await second.watcher.init();
    await second.watcher.pass();
    assert.deepEqual(second.delivered, []);
    await send(alice, bob, "five");
    await second.watcher.pass();
    assert.deepEqual(texts(second.delivered), ["five"]);
  });

  test("a cursor rewound below delivered messages drops them as duplicates", async () => {
    const store = createMemoryCursorStore();
    const recent = sent.filter((s) => s.to === bob).map((s) => envelopeKey(s.from.id, bob.id, s.envelopeId));
    await store.save({ block: 0n, recent });
    const registry = new Registry();
    const { watcher, delivered, log } = watcherFor(bob, store, { registry });
    await watcher.init();
    await watcher.pass();
    assert.deepEqual(delivered, []);
    assert.equal(log.lines().filter((l) => l.msg === "duplicate message dropped").length, recent.length);
    assert.match(
      await registry.metrics(),
      new RegExp(`attestmesh_messages_dropped_total\\{reason="duplicate"\\} ${recent.length}`),
    );
  });

  test("a cursor ahead of the chain (a reset chain) is rewound to the start, dedup intact", async () => {
    const store = createMemoryCursorStore();
    const five = sent.find((s) => s.text === "five")!;
    await store.save({ block: 1_000_000n, recent: [envelopeKey(five.from.id, bob.id, five.envelopeId)] });
    const { watcher, delivered, log } = watcherFor(bob, store);
    await watcher.init();
    assert.equal(watcher.cursorBlock(), 0n);
    assert.ok(log.lines().some((l) => /ahead of the chain/.test(l.msg) && l.level === 40));
    await watcher.pass();
    assert.deepEqual(texts(delivered), ["one", "two", "three", "four"], "everything but the remembered one");
  });

  test("two senders that use the same envelope id for one recipient are both delivered (issue 13)", async () => {
    // The chain keys the delivered bit by (sender, recipient, envelope id), so a member that copies
    // another's pending id does not burn it; dedup must not drop the second, genuine message either.
    const store = createMemoryCursorStore();
    const { watcher, delivered } = watcherFor(carol, store);
    await watcher.init();
    const shared = bytesToHex(randomBytes(32));
    await send(bob, carol, "copied id", shared);
    await send(alice, carol, "genuine", shared);
    await watcher.pass();
    assert.deepEqual(texts(delivered), ["copied id", "genuine"]);
    assert.deepEqual(
      delivered.map((m) => [m.senderId, m.envelopeId]),
      [
        [bob.id, shared],
        [alice.id, shared],
      ],
    );
    await watcher.pass();
    assert.equal(delivered.length, 2, "each delivered once");
  });

  test("no member id: nothing is read and the cursor stays", async () => {
    const store = createMemoryCursorStore();
    const { watcher, delivered } = watcherFor(bob, store, { startBlock: 1n, memberId: () => undefined });
    await watcher.init();
    await watcher.pass();
    assert.equal(watcher.cursorBlock(), 0n);
    assert.deepEqual(delivered, []);
  });

  test("an RPC failure halfway through a catch-up keeps what was handled; the next pass finishes once", async () => {
    let calls = 0;
    const provider = fx.connection.provider;
    const flaky = custom(
      {
        request: async (args: { method: string; params?: unknown }) => {
          if (args.method === "eth_getLogs" && ++calls === 3) throw new Error("connection reset");
          return provider.request(args as Parameters<typeof provider.request>[0]);
        },
      },
      { retryCount: 0 },
    );
    const store = createMemoryCursorStore();
    const { watcher, delivered } = watcherFor(bob, store, { transport: flaky, startBlock: 1n });
    await watcher.init();
    // The one provider failed: no quorum for the range, a retryable RpcError (its cause not echoed).
    await assert.rejects(watcher.pass(), (error: unknown) => {
      assert.ok(error instanceof AttestmeshError && error.code === "RpcError" && error.retryable);
      return true;
    });
    const stoppedAt = watcher.cursorBlock()!;
    assert.equal(stoppedAt, 4n, "two ranges of two blocks were handled");
    assert.equal((await store.load())?.block, stoppedAt);
    await watcher.pass();
    assert.deepEqual(texts(delivered), ["one", "two", "three", "four", "five"]);
  });

  test("the recipient's own key is needed: a watcher with another member's key drops everything", async () => {
    const store = createMemoryCursorStore();
    // Carol's key, reading Bob's logs (as if she could subscribe to them): nothing opens.
    const { watcher, delivered, log } = watcherFor(carol, store, { startBlock: 1n, memberId: () => bob.id });
    await watcher.init();
    await watcher.pass();
    assert.deepEqual(delivered, []);
    const drops = log.lines().filter((l) => l.reason === "Undecryptable");
    assert.equal(drops.length, sent.filter((s) => s.to === bob).length);
  });

  describe("sender", () => {
    function senderFor(
      member: Member,
      options: {
        client?: PublicClient<Transport, Chain>;
        wallet?: "none";
        memberId?: bigint | undefined;
      } = {},
    ) {
      const client = options.client ?? (fx.publicClient as unknown as PublicClient<Transport, Chain>);
      const reads = readsOver(custom(fx.connection.provider, { retryCount: 0 }));
      const chain: ChainContext = {
        chainId: fx.chainId,
        chain: client.chain,
        cluster: fx.deployed.diamond,
        reads,
        publicClient: client,
        wallet: options.wallet === "none" ? undefined : (gasWallet as unknown as GasWallet),
      };
      const memberSecret = secret(bytesToHex(member.node.memberSecret));
      return createMessageSender({
        chain,
        reader: createClusterReader(reads, fx.deployed.diamond),
        keys: {
          member: { secret: memberSecret } as NodeKeys["member"],
          identity: { secret: secret(member.node.identitySecret) } as NodeKeys["identity"],
        },
        logger: captureLogger("silent").logger,
        memberId: () => ("memberId" in options ? options.memberId : member.id),
      });
    }
    let gasWallet: unknown;
    before(async () => {
      const wallets = await fx.viem.getWalletClients();
      gasWallet = wallets[5];
    });

    const code = (expected: string, retryable?: boolean) => (e: unknown) =>
      e instanceof AttestmeshError &&
      e.code === expected &&
      (retryable === undefined || e.retryable === retryable);

    test("concurrent sends are serialised, each with a fresh envelope id, and all arrive", async () => {
      const store = createMemoryCursorStore();
      const { watcher, delivered } = watcherFor(bob, store);
      await watcher.init();
      const sender = senderFor(alice);
      const results = await Promise.all(
        ["s1", "s2", "s3"].map((text) => sender.send(bob.id, new TextEncoder().encode(text))),
      );
      assert.equal(new Set(results.map((r) => r.envelopeId)).size, 3);
      for (const r of results) assert.match(r.envelopeId, /^0x[0-9a-f]{64}$/);
      await watcher.pass();
      assert.deepEqual(texts(delivered).sort(), ["s1", "s2", "s3"]);
      assert.deepEqual(
        delivered.map((m) => m.senderId),
        [alice.id, alice.id, alice.id],
      );
    });

    test("refusals before anything is sent: too large, unknown recipient, not registered, no gas key", async () => {
      const before = await fx.publicClient.getBlockNumber();
      const sender = senderFor(alice);
      await assert.rejects(sender.send(bob.id, new Uint8Array(3968)), code("PayloadTooLarge", false));
      assert.equal(sender.maxPayloadBytes(), 3903);
      await assert.rejects(sender.send(999n, new Uint8Array([1])), code("RecipientNotFound", false));
      await assert.rejects(
        senderFor(alice, { memberId: undefined }).send(bob.id, new Uint8Array([1])),
        code("NotRegistered", true),
      );
      await assert.rejects(
        senderFor(alice, { wallet: "none" }).send(bob.id, new Uint8Array([1])),
        code("GasKeyMissing", false),
      );
      assert.equal(await fx.publicClient.getBlockNumber(), before, "no transaction was sent");
    });

    test("a chain that does not answer is a retryable RpcError, and the next send works", async () => {
      const real = fx.publicClient as unknown as PublicClient<Transport, Chain>;
      let fail = true;
      const flaky = new Proxy(real, {
        get(target, property, receiver) {
          if (property === "readContract" && fail)
            return () => Promise.reject(new Error("connection refused"));
          return Reflect.get(target, property, receiver);
        },
      });
      const sender = senderFor(alice, { client: flaky });
      await assert.rejects(sender.send(bob.id, new Uint8Array([1])), code("RpcError", true));
      fail = false;
      const sent = await sender.send(bob.id, new Uint8Array([2]));
      assert.equal(sent.recipientId, bob.id);
    });
  });

  describe("senders this node refuses (issue 14)", () => {
    let mallory: Member;
    let rita: Member;
    const malloryDevice = randomBytes(32);
    const PERIOD = 600_000;
    const passed: Verdict = { ok: true, kind: "simulated", composeHash: "ab".repeat(32), detail: "ok" };
    const evidence: VerifiedEvidence = { kind: "simulated", composeHash: "ab".repeat(32) };
    const withdrawn: Verdict = {
      ok: false,
      cause: "policy",
      reason: "ComposeHashNotAllowed",
      detail: "the owner withdrew its compose hash",
    };
    const reader = () =>
      createClusterReader(readsOver(custom(fx.connection.provider, { retryCount: 0 })), fx.deployed.diamond);
    const dropped = async (registry: Registry, reason: string) => {
      const line = (await registry.metrics())
        .split("\n")
        .find((l) => l.startsWith(`attestmesh_messages_dropped_total{reason="${reason}"}`));
      return line === undefined ? 0 : Number(line.split(" ").at(-1));
    };

    before(async () => {
      // Mallory runs on a device of her own, so the owner can revoke it without touching the others.
      mallory = await admitNewNode(fx, { deviceId: malloryDevice });
      rita = await admitNewNode(fx);
    });

    test("attacker: a sender re-attestation refuses is never delivered, at any sample, nor once the refusal ends; what it sends later is", async () => {
      const records = new Map<bigint, MemberRecord>();
      for (const m of [mallory, alice]) records.set(m.id, (await reader().member(m.id))!);
      let clock = 1_000_000;
      let policy: Verdict = passed;
      const r = createReattestation({
        peers: () => [...records.values()],
        fetch: async () => ({}),
        judge: async () => ({ verdict: passed, verified: evidence }),
        rejudge: async (m) => (m.memberId === mallory.id ? policy : passed),
        head: () => fx.publicClient.getBlockNumber(),
        periodMs: PERIOD,
        concurrency: 10,
        logger: captureLogger("silent").logger,
        now: () => clock,
      });
      await r.tick();
      const registry = new Registry();
      const store = createMemoryCursorStore();
      // As main.ts wires it: the attested view (refused members left out) and the verdict for the rest.
      const { watcher, delivered, log } = watcherFor(rita, store, {
        registry,
        knownMember: (id) => {
          const m = records.get(id);
          return m !== undefined && !r.refused(m) ? m : undefined;
        },
        senderRefused: (id, block) => r.messagesRefused(id, block),
      });
      await watcher.init();
      const fromMallory = () => delivered.filter((m) => m.senderId === mallory.id).map((m) => texts([m])[0]);
      await send(mallory, rita, "m: attested");
      await send(alice, rita, "a0");
      await watcher.pass();
      assert.deepEqual(texts(delivered), ["m: attested", "a0"], "an attested sender is delivered");

      // The owner withdraws Mallory's compose hash; this node's re-attestation refuses her.
      policy = withdrawn;
      r.policyChanged();
      await r.tick();
      assert.equal(r.refused(records.get(mallory.id)!), true);
      // The attack: she keeps sending, interleaved with an honest sender, while the watcher runs.
      const violations: string[] = [];
      let attacking = true;
      let samples = 0;
      const sampler = (async () => {
        while (attacking) {
          await watcher.pass();
          samples += 1;
          const seen = fromMallory();
          if (seen.length !== 1) violations.push(`sample ${samples}: ${seen.join(", ")}`);
          await delay(5);
        }
      })();
      try {
        for (let i = 1; i <= 6; i++) {
          await send(mallory, rita, `m: refused ${i}`);
          await send(alice, rita, `a${i}`);
          // At least one whole pass between sends, so every message is sampled while the attack runs.
          const after = samples;
          while (samples < after + 2) await delay(5);
        }
      } finally {
        attacking = false;
        await sampler;
      }
      await watcher.pass();
      assert.ok(samples >= 12, `sampled ${samples} times during the attack`);
      assert.deepEqual(violations, [], "no refused message was delivered at any sample");
      assert.deepEqual(fromMallory(), ["m: attested"]);
      assert.deepEqual(
        delivered.filter((m) => m.senderId === alice.id).map((m) => texts([m])[0]),
        ["a0", "a1", "a2", "a3", "a4", "a5", "a6"],
        "the honest sender kept being delivered",
      );
      assert.equal(await dropped(registry, "SenderRefused"), 6);
      const warned = log.lines().filter((l) => l.reason === "SenderRefused");
      assert.equal(warned.length, 6);
      assert.ok(warned.every((l) => l.level === 40 && l.senderId === mallory.id.toString() && l.envelopeId));

      // Sent while refused, read only after the owner allowed her again: still not delivered.
      await send(mallory, rita, "m: sent while refused, read later");
      policy = passed;
      clock += PERIOD + 1;
      await r.tick(); // the policy admits her again: pending, fence not read yet
      assert.equal(r.refused(records.get(mallory.id)!), false);
      await watcher.pass();
      assert.deepEqual(fromMallory(), ["m: attested"], "fence unread: fail closed");
      await r.tick(); // the fence is read (the head now) and she is attested afresh
      assert.equal(r.get(mallory.id)?.status, "passed");
      await send(mallory, rita, "m: after the fence");
      await watcher.pass();
      assert.deepEqual(fromMallory(), ["m: attested", "m: after the fence"]);
      assert.equal(await dropped(registry, "SenderRefused"), 7);

      // A restart that reads the whole range again, with no verdict at all (re-attestation not
      // running yet): the refused messages were remembered as handled and stay undelivered.
      const saved = (await store.load())!;
      const replay = createMemoryCursorStore();
      await replay.save({ block: 0n, recent: saved.recent });
      const again = watcherFor(rita, replay);
      await again.watcher.init();
      await again.watcher.pass();
      assert.deepEqual(again.delivered, [], "nothing refused resurfaces");
    });

    test("attacker: a sender the owner's revocation reached is dropped with no re-attestation running, even while the view still lists it", async () => {
      const record = (await reader().member(mallory.id))!;
      const registry = new Registry();
      const { watcher, delivered, log } = watcherFor(rita, createMemoryCursorStore(), {
        registry,
        // A view that has not caught up with the revocation yet still lists her in good standing.
        knownMember: (id) => (id === mallory.id ? { ...record, standing: "good" } : undefined),
      });
      await watcher.init();
      await fx.owner.write.revokeDevice([bytesToHex(malloryDevice), zeroHash]);
      await send(mallory, rita, "m: revoked device");
      await send(alice, rita, "a: after the revocation");
      await watcher.pass();
      assert.deepEqual(texts(delivered), ["a: after the revocation"]);
      assert.equal(await dropped(registry, "SenderNotStanding"), 1);
      const line = log.lines().find((l) => l.reason === "SenderNotStanding");
      assert.equal(line?.standing, "device-revoked");
      // And outside the view (the fallback read of her record): the same.
      const outside = watcherFor(rita, createMemoryCursorStore(), { registry: new Registry() });
      await outside.watcher.init();
      await send(mallory, rita, "m: still revoked");
      await outside.watcher.pass();
      assert.deepEqual(outside.delivered, []);
      assert.ok(outside.log.lines().some((l) => l.reason === "SenderNotStanding"));
    });
  });
});
