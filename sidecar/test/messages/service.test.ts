// Sealed messages end to end on the in-process Hardhat network (Base's rules), with three sidecars in
// this process (dstack simulator keys, in-memory WireGuard) and their application APIs on real unix
// sockets: a message round-trips; a third member can neither receive nor open it; a member re-sending
// someone else's ciphertext, or garbage, is dropped; a restarted recipient replays what it missed
// exactly once after the application acknowledged the rest; a rewound cursor delivers nothing twice;
// no plaintext ever appears on chain.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { IDENTITY_KEY, MEMBER_KEY } from "@attestmesh/shared/keys/purposes.ts";
import type { PinnedTrust } from "@attestmesh/shared/service/pinned.ts";
import { ed25519 } from "@noble/curves/ed25519";
import {
  type Address,
  bytesToHex,
  custom,
  type Hex,
  hexToBytes,
  keccak256,
  parseEventLogs,
  toHex,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { createMemberApp, fixtureTrust } from "../../../test/helpers/certs.ts";
import { type ClusterFixture, setupCluster } from "../../../test/helpers/cluster.ts";
import { parseConfig } from "../../src/config.ts";
import { AttestmeshError } from "../../src/errors.ts";
import { type Sidecar, startSidecar } from "../../src/main.ts";
import { openMessage } from "../../src/messages/envelope.ts";
import { sodiumReady, x25519FromEd25519Seed } from "../../src/messages/sealedBox.ts";
import { createMemoryBackend } from "../../src/wireguard/memory.ts";
import { apiRequest, type NdjsonStream, openStream, postJson } from "../api-client.ts";
import {
  type CapturedLogger,
  captureLogger,
  simulatorKeySource,
  TEST_SIDECAR_ENV,
  waitFor,
} from "../helpers.ts";

/** Hardhat's development accounts #3..#5 pay the sidecars' gas (#0..#2 are the fixture's). */
const GAS_KEYS: readonly Hex[] = [
  "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
  "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
  "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
];

interface Node {
  readonly name: string;
  readonly appId: Address;
  readonly sidecar: Sidecar;
  readonly log: CapturedLogger;
  readonly socket: string;
  memberId(): bigint;
  stop(): Promise<void>;
}

describe("sealed messages between sidecars", { timeout: 240_000 }, () => {
  let fx: ClusterFixture;
  let dir: string;
  const running = new Set<Node>();
  const plaintexts: string[] = [];
  /** Member apps of the cluster (created in `before`), so each node's certificate verifies. */
  const apps = {} as Record<"a" | "b" | "c", Address>;
  let trust: PinnedTrust;
  let a: Node;
  let b: Node;
  let c: Node;

  /** A fresh, unmistakable plaintext, remembered for the on-chain scan. */
  const plaintext = (label: string) => {
    const text = `attestmesh-plaintext-${label}-${randomBytes(8).toString("hex")}`;
    plaintexts.push(text);
    return text;
  };

  async function startNode(
    name: keyof typeof apps,
    gasKey: Hex,
    stateDir = join(dir, `state-${name}`),
  ): Promise<Node> {
    const appId = apps[name];
    const cvm = createSimulatedCvm({ kmsRoot: fx.kmsRoot, appId: hexToBytes(appId) });
    const log = captureLogger();
    const socket = join(dir, `${name}.sock`);
    const config = parseConfig({
      ATTESTMESH_RPC_URL: "http://127.0.0.1:1",
      ATTESTMESH_CLUSTER: fx.deployed.diamond,
      ATTESTMESH_CHAIN_ID: String(fx.chainId),
      ATTESTMESH_CONFIRMATIONS: "0",
      ATTESTMESH_POLL_INTERVAL_MS: "150",
      ATTESTMESH_GAS_KEY: gasKey,
      ...TEST_SIDECAR_ENV,
      ATTESTMESH_API_SOCKET: socket,
      ATTESTMESH_STATE_DIR: stateDir,
    });
    const sidecar = await startSidecar(config, {
      logger: log.logger,
      backend: createMemoryBackend(),
      keySource: simulatorKeySource(cvm),
      trust,
      transport: custom(fx.connection.provider),
      initialBackoffMs: 100,
    });
    const node: Node = {
      name,
      appId,
      sidecar,
      log,
      socket,
      memberId: () => {
        const id = sidecar.status().memberId;
        assert.ok(id !== undefined, `${name} is registered`);
        return id;
      },
      async stop() {
        running.delete(node);
        assert.equal(await sidecar.stop("test over"), true, "clean shutdown");
        await sidecar.done;
      },
    };
    running.add(node);
    await waitFor(`${name} to register`, () => sidecar.status().memberId !== undefined, 60_000);
    return node;
  }

  /** The member's own identity seed and X25519 key pair, as its TEE derives them. */
  function identityOf(name: keyof typeof apps) {
    const cvm = createSimulatedCvm({ kmsRoot: fx.kmsRoot, appId: hexToBytes(apps[name]) });
    return x25519FromEd25519Seed(cvm.getKey(IDENTITY_KEY.path, IDENTITY_KEY.purpose, "ed25519").key);
  }

  function identityKeyOf(name: keyof typeof apps): Hex {
    const cvm = createSimulatedCvm({ kmsRoot: fx.kmsRoot, appId: hexToBytes(apps[name]) });
    return bytesToHex(
      ed25519.getPublicKey(cvm.getKey(IDENTITY_KEY.path, IDENTITY_KEY.purpose, "ed25519").key),
    );
  }

  function memberAccountOf(name: keyof typeof apps) {
    const cvm = createSimulatedCvm({ kmsRoot: fx.kmsRoot, appId: hexToBytes(apps[name]) });
    return privateKeyToAccount(bytesToHex(cvm.getKey(MEMBER_KEY.path, MEMBER_KEY.purpose, "secp256k1").key));
  }

  async function messageLogs() {
    const logs = await fx.publicClient.getLogs({ address: fx.deployed.diamond, fromBlock: 0n });
    return parseEventLogs({ abi: clusterAbi, logs, eventName: "MessageSent" });
  }

  /** Submits `send` as `sender` signed by its member key, relayed by an unrelated account. */
  async function relaySend(
    sender: keyof typeof apps,
    senderId: bigint,
    recipientId: bigint,
    ciphertext: Hex,
  ) {
    const envelopeId = bytesToHex(randomBytes(32));
    const signature = await memberAccountOf(sender).signTypedData({
      domain: memberDomain(fx.chainId, fx.deployed.diamond),
      types: memberTypes,
      primaryType: "Send",
      message: { senderId, recipientId, envelopeId, ciphertextHash: keccak256(ciphertext) },
    });
    const hash = await fx.stranger.write.send([senderId, recipientId, envelopeId, ciphertext, signature]);
    const receipt = await fx.publicClient.waitForTransactionReceipt({ hash });
    assert.equal(receipt.status, "success");
    return envelopeId;
  }

  const messagesIn = (stream: NdjsonStream) => stream.lines.filter((l) => l.type === "message");

  /** The application acknowledges everything `node` received so far; returns the inbox status. */
  async function ackAll(node: Node): Promise<{ space: string; lastSeq: number }> {
    const status = (await apiRequest(node.socket, "GET", "/v1/status")).body as {
      messages: { space: string; lastSeq: number };
    };
    if (status.messages.lastSeq > 0) {
      const res = await postJson(node.socket, "/v1/messages/ack", { seq: status.messages.lastSeq });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal((res.body as { pending: number }).pending, 0);
    }
    return status.messages;
  }

  /** A sends `node` a fresh message (labelled `label`); it arrives on `node`'s stream, and only it. */
  async function receivesFromA(node: Node, label: string): Promise<void> {
    const stream = await openStream(node.socket, "/v1/messages/stream");
    const text = plaintext(label);
    assert.equal(
      (await postJson(a.socket, "/v1/messages", { to: node.memberId().toString(), text })).status,
      200,
    );
    await waitFor(`${node.name} to receive it`, () => messagesIn(stream).length >= 1);
    assert.deepEqual(
      messagesIn(stream).map((m) => m.text),
      [text],
    );
    stream.close();
  }

  before(async () => {
    await sodiumReady();
    dir = await mkdtemp(join(tmpdir(), "am-msg-"));
    fx = await setupCluster();
    trust = await fixtureTrust(fx);
    for (const name of ["a", "b", "c"] as const) apps[name] = (await createMemberApp(fx)).appId;
    a = await startNode("a", GAS_KEYS[0]!);
    b = await startNode("b", GAS_KEYS[1]!);
    c = await startNode("c", GAS_KEYS[2]!);
  });

  after(async () => {
    for (const node of [...running]) await node.stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });

  test("a message round-trips through the chain; a third member neither receives nor can open it", async () => {
    const streamB = await openStream(b.socket, "/v1/messages/stream");
    const streamC = await openStream(c.socket, "/v1/messages/stream");
    const text = plaintext("hello");
    const res = await postJson(a.socket, "/v1/messages", { to: b.memberId().toString(), text });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const sent = res.body as { envelopeId: Hex; from: string; to: string; txHash: Hex };
    assert.equal(sent.from, a.memberId().toString());
    assert.equal(sent.to, b.memberId().toString());

    const [got] = await waitFor("B to receive it", () => {
      const m = messagesIn(streamB);
      return m.length > 0 && m;
    });
    assert.equal(got!.text, text);
    assert.equal(got!.envelopeId, sent.envelopeId);
    assert.deepEqual(got!.from, { memberId: a.memberId().toString(), appId: a.appId });
    assert.equal(got!.txHash, sent.txHash);

    // C follows the same chain but the message is not addressed to it; nor can its key open it.
    await c.sidecar.wake("test");
    await delay(500);
    assert.equal(messagesIn(streamC).length, 0);
    const onChain = (await messageLogs()).find((l) => l.args.envelopeId === sent.envelopeId)!;
    assert.equal(onChain.args.senderId, a.memberId());
    const expected = {
      chainId: BigInt(fx.chainId),
      cluster: fx.deployed.diamond,
      senderId: a.memberId(),
      recipientId: b.memberId(),
      envelopeId: sent.envelopeId,
    };
    assert.throws(
      () => openMessage(hexToBytes(onChain.args.ciphertext), identityOf("c"), expected, identityKeyOf("a")),
      (e: unknown) => e instanceof AttestmeshError && e.code === "Undecryptable",
    );
    assert.equal(
      new TextDecoder().decode(
        openMessage(hexToBytes(onChain.args.ciphertext), identityOf("b"), expected, identityKeyOf("a")),
      ),
      text,
    );
    streamB.close();
    streamC.close();
  });

  test("a member re-sending another's ciphertext under its own name, or garbage, is dropped; B keeps receiving", async () => {
    const stream = await openStream(b.socket, "/v1/messages/stream?since=latest");
    const original = (await messageLogs()).find((l) => l.args.recipientId === b.memberId())!;
    // C is a member: the chain accepts its signature, but the sealed header names A as the sender.
    const replayed = await relaySend("c", c.memberId(), b.memberId(), original.args.ciphertext);
    const garbage = await relaySend("c", c.memberId(), b.memberId(), toHex(randomBytes(120)));
    await waitFor("both to be dropped", () => {
      const lines = b.log.lines().filter((l) => /message dropped/.test(l.msg));
      return lines.length >= 2 && lines;
    });
    const dropped = b.log.lines().filter((l) => /message dropped/.test(l.msg));
    assert.deepEqual(
      dropped.map((l) => [l.envelopeId, l.reason]),
      [
        [replayed, "EnvelopeMismatch"],
        [garbage, "Undecryptable"],
      ],
    );
    const text = plaintext("after-attack");
    assert.equal(
      (await postJson(a.socket, "/v1/messages", { to: b.memberId().toString(), text })).status,
      200,
    );
    await waitFor("B to receive the next message", () => messagesIn(stream).length >= 1);
    assert.deepEqual(
      messagesIn(stream).map((m) => m.text),
      [text],
      "only the genuine message reached the application",
    );
    const metrics = await (await fetch(`${b.sidecar.healthUrl}/metrics`)).text();
    assert.match(metrics, /attestmesh_messages_dropped_total\{reason="EnvelopeMismatch"\} 1/);
    assert.match(metrics, /attestmesh_messages_dropped_total\{reason="Undecryptable"\} 1/);
    assert.match(metrics, /attestmesh_messages_received_total 2/);
    stream.close();
  });

  test("a recipient that was down replays what it missed, exactly once", async () => {
    const bId = b.memberId();
    const before = await ackAll(b);
    await b.stop();
    const missed = [plaintext("missed-1"), plaintext("missed-2")];
    for (const text of missed) {
      const res = await postJson(a.socket, "/v1/messages", { to: bId.toString(), text });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    }
    b = await startNode("b", GAS_KEYS[1]!);
    assert.equal(b.memberId(), bId, "same member after the restart");
    const stream = await openStream(b.socket, "/v1/messages/stream");
    await waitFor("B to replay both", () => messagesIn(stream).length >= 2, 30_000);
    await b.sidecar.wake("test");
    await delay(600);
    assert.deepEqual(
      messagesIn(stream).map((m) => [m.seq, m.text]),
      missed.map((text, i) => [before.lastSeq + 1 + i, text]),
      "exactly the missed messages, once each, in chain order, numbered on from the acknowledged ones",
    );
    assert.equal(stream.lines[0]!.space, before.space, "the same sequence space after the restart");
    assert.ok(b.log.lines().some((l) => l.msg === "message cursor loaded; replaying from it"));
    stream.close();
  });

  test("a cursor rewound to block 0 delivers nothing twice: the persisted envelope ids drop every duplicate", async () => {
    const bId = b.memberId();
    await ackAll(b);
    await b.stop();
    const [file] = (await readdir(join(dir, "state-b"))).filter((f) => f.startsWith("messages-cursor-"));
    const cursorPath = join(dir, "state-b", file!);
    const cursor = JSON.parse(await readFile(cursorPath, "utf8")) as { block: string; recent: string[] };
    assert.ok(!JSON.stringify(cursor).includes("attestmesh-plaintext"), "the cursor holds no plaintext");
    await writeFile(cursorPath, JSON.stringify({ ...cursor, block: "0" }));
    b = await startNode("b", GAS_KEYS[1]!);
    assert.equal(b.memberId(), bId);
    const stream = await openStream(b.socket, "/v1/messages/stream");
    const all = (await messageLogs()).filter((l) => l.args.recipientId === bId).length;
    await waitFor(
      "B to re-read every message log",
      () => b.log.lines().filter((l) => l.msg === "duplicate message dropped").length >= all,
      30_000,
    );
    await delay(300);
    assert.equal(messagesIn(stream).length, 0);
    stream.close();
  });

  test("a corrupt cursor is kept aside and a new one started; the node still joins and receives", async () => {
    await c.stop();
    const stateDir = join(dir, "state-c");
    const [file] = (await readdir(stateDir)).filter((f) => f.startsWith("messages-cursor-"));
    await writeFile(join(stateDir, file!), "{ not json");
    c = await startNode("c", GAS_KEYS[2]!);
    assert.ok(c.log.lines().some((l) => /message cursor is corrupt/.test(l.msg) && l.level === 50));
    const files = await readdir(stateDir);
    assert.ok(
      files.some((f) => f.startsWith(`${file}.corrupt-`)),
      "the corrupt cursor is kept for inspection",
    );
    assert.ok(files.includes(file!), "a new cursor was written");
    await receivesFromA(c, "after-corrupt-cursor");
  });

  test("an unusable state directory keeps the cursor and the inbox in memory: logged, and messages still arrive", async () => {
    await c.stop();
    const blocker = join(dir, "a-file");
    await writeFile(blocker, "not a directory");
    c = await startNode("c", GAS_KEYS[2]!, join(blocker, "state"));
    assert.ok(
      c.log
        .lines()
        .some((l) => /cursor cannot be kept in ATTESTMESH_STATE_DIR/.test(l.msg) && l.level === 50),
    );
    assert.ok(
      c.log.lines().some((l) => /inbox cannot be kept in ATTESTMESH_STATE_DIR/.test(l.msg) && l.level === 50),
      "the inbox falls back to memory too, and says so",
    );
    await receivesFromA(c, "memory-cursor");
  });

  test("sending to a member that does not exist is a 404 and sends nothing", async () => {
    const before = (await messageLogs()).length;
    const res = await postJson(a.socket, "/v1/messages", { to: "999", text: plaintext("nobody") });
    assert.equal(res.status, 404);
    assert.equal((res.body as { error: { code: string } }).error.code, "RecipientNotFound");
    assert.equal((await messageLogs()).length, before);
  });

  test("sends racing each other from one node all land, once each: one gas key, one nonce sequence", async () => {
    // The node's loops and its application submit at the same moment; two transactions priced from the
    // same pending nonce would refuse each other ("nonce too low").
    const stream = await openStream(b.socket, "/v1/messages/stream?since=latest");
    const texts = [1, 2, 3, 4].map((i) => plaintext(`racing-${i}`));
    const results = await Promise.all(
      texts.map((text) => postJson(a.socket, "/v1/messages", { to: b.memberId().toString(), text })),
    );
    for (const res of results) assert.equal(res.status, 200, JSON.stringify(res.body));
    const hashes = new Set(results.map((res) => (res.body as { txHash: Hex }).txHash));
    assert.equal(hashes.size, texts.length, "one transaction each");
    await waitFor("B to receive all four", () => messagesIn(stream).length >= texts.length);
    await delay(300);
    assert.deepEqual(
      messagesIn(stream)
        .map((m) => m.text)
        .sort(),
      [...texts].sort(),
    );
    stream.close();
  });

  test("no plaintext appears in any event or transaction of the run", async () => {
    const latest = await fx.publicClient.getBlockNumber();
    const logs = await fx.publicClient.getLogs({ fromBlock: 0n, toBlock: latest });
    assert.ok(logs.length > 0);
    const eventBytes = logs
      .map((l) => [l.data, ...l.topics].join(""))
      .join("")
      .toLowerCase();
    let calldata = "";
    for (let n = 0n; n <= latest; n++) {
      const block = await fx.publicClient.getBlock({ blockNumber: n, includeTransactions: true });
      for (const tx of block.transactions) calldata += tx.input.toLowerCase();
    }
    assert.ok(plaintexts.length >= 4);
    for (const text of plaintexts) {
      for (const needle of [
        Buffer.from(text).toString("hex"),
        Buffer.from(text.slice(-16)).toString("hex"),
      ]) {
        assert.ok(!eventBytes.includes(needle), `no event carries ${text}`);
        assert.ok(!calldata.includes(needle), `no transaction carries ${text}`);
      }
    }
    for (const node of [a, b, c]) {
      for (const text of plaintexts)
        assert.ok(!node.log.text().includes(text), `${node.name}'s log never shows a payload`);
    }
    const sent = (await messageLogs()).length;
    assert.ok(sent >= 5, `${sent} MessageSent events scanned`);
  });

  test("the API's self and peers views agree with the chain", async () => {
    const self = (await apiRequest(a.socket, "GET", "/v1/self")).body as Record<string, string>;
    assert.equal(self.memberId, a.memberId().toString());
    assert.equal(self.appId, a.appId);
    assert.equal(self.x25519PublicKey, bytesToHex(identityOf("a").publicKey));
    const peers = (await apiRequest(a.socket, "GET", "/v1/peers")).body as {
      source: string;
      peers: Array<{ memberId: string; appId: string; live: boolean }>;
    };
    // WireGuard handshakes until signed heartbeats are wired in; then the heartbeat table.
    assert.ok(["wireguard-handshake", "heartbeat"].includes(peers.source), peers.source);
    assert.deepEqual(
      peers.peers.map((p) => [p.memberId, p.appId]),
      [
        [b.memberId().toString(), b.appId],
        [c.memberId().toString(), c.appId],
      ].sort((x, y) => Number(x[0]) - Number(y[0])),
    );
    for (const p of peers.peers) assert.equal(typeof p.live, "boolean");
  });
});
