// The indexer against an in-process Hardhat network (snapshot/revert forks the chain), with its signing
// key from the dstack simulator through the official SDK, and subscribers over real WebSockets.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { type DstackSimulator, startDstackSimulator } from "@attestmesh/devnet/dstack-sim/server.ts";
import { createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { deployCluster } from "@attestmesh/scripts/deploy/cluster.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { type LogEnvelope, verifyEnvelopeSignature } from "@attestmesh/shared/indexer/envelope.ts";
import { CLOSE, formatCursor, quoteBindsKey } from "@attestmesh/shared/indexer/protocol.ts";
import { pino } from "pino";
import { type Address, custom, getAddress, getContract, type Hex, hexToBytes, keccak256, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import {
  type AdmittedNode,
  admitNewNode,
  type ClusterFixture,
  randomAppId,
  setupCluster,
  simulatedNode,
} from "../../test/helpers/cluster.ts";
import { parseConfig } from "../src/config.ts";
import { type Indexer, startIndexer } from "../src/main.ts";
import { subscribe, type TestSubscriber } from "./client.ts";

const silent = pino({ level: "silent" });

async function waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

const logsOf = (s: TestSubscriber) =>
  s.envelopes.filter((e): e is LogEnvelope & { sig: string } => e.kind === "log");

describe("indexer on a hardhat network", { timeout: 300_000 }, () => {
  let fx: ClusterFixture;
  let dir: string;
  let sim: DstackSimulator;
  let indexer: Indexer;
  let otherCluster: Address;
  let other: ReturnType<typeof clusterContract>;
  let getLogsCalls = 0;
  const members: AdmittedNode[] = [];
  let outsider: AdmittedNode;
  const subscribers: TestSubscriber[] = [];

  let ownerWallet: Awaited<ReturnType<ClusterFixture["viem"]["getWalletClients"]>>[number];

  function clusterContract(address: Address) {
    return getContract({
      address,
      abi: clusterAbi,
      client: { public: fx.publicClient, wallet: ownerWallet },
    });
  }

  async function mined(hash: Promise<Hex>) {
    const receipt = await fx.publicClient.waitForTransactionReceipt({ hash: await hash });
    assert.equal(receipt.status, "success");
    return receipt;
  }

  /** One owner transaction on the first cluster: one AppIdAdded log. */
  const event = () => mined(fx.owner.write.addAppId([randomAppId()]));

  async function sub(
    who: AdmittedNode,
    extra: Partial<Parameters<typeof subscribe>[0]> = {},
  ): Promise<TestSubscriber> {
    const s = await subscribe({
      url: indexer.url,
      chainId: fx.chainId,
      cluster: fx.deployed.diamond,
      memberId: who.id,
      account: who.node.memberAccount,
      ...extra,
    });
    subscribers.push(s);
    return s;
  }

  before(async () => {
    fx = await setupCluster();
    [ownerWallet] = (await fx.viem.getWalletClients()) as [typeof ownerWallet];
    dir = await mkdtemp(join(tmpdir(), "am-idx-"));
    const indexerApp = randomAppId();
    sim = await startDstackSimulator({
      socketPath: join(dir, "indexer.sock"),
      cvm: createSimulatedCvm({ kmsRoot: fx.kmsRoot, appId: hexToBytes(indexerApp) }),
      logger: silent,
    });
    for (let i = 0; i < 2; i++) members.push(await admitNewNode(fx));
    const deployed = await deployCluster({
      wallet: ownerWallet,
      client: fx.publicClient,
      params: { owner: fx.ownerAddress, meshCidr: "10.78.0.0/16", kmsRoots: [fx.kmsRoot.address] },
    });
    otherCluster = getAddress(deployed.diamond);
    other = clusterContract(otherCluster);
    const outsiderNode = simulatedNode(fx.kmsRoot);
    await mined(other.write.addAppId([outsiderNode.appId]));
    await mined(other.write.addComposeHash([outsiderNode.claims.composeHash]));
    await mined(other.write.setAllowAnyDevice([true]));
    const nonce = await other.read.registrationNonce([outsiderNode.appId]);
    const signature = await outsiderNode.memberAccount.signTypedData({
      domain: memberDomain(fx.chainId, otherCluster),
      types: memberTypes,
      primaryType: "Register",
      message: {
        appId: outsiderNode.appId,
        wireguardKey: outsiderNode.wireguardKey,
        identityKey: outsiderNode.identityKey,
        ...outsiderNode.claims,
        nonce,
      },
    });
    await mined(
      other.write.register([
        outsiderNode.proof,
        outsiderNode.wireguardKey,
        outsiderNode.identityKey,
        outsiderNode.claims,
        signature,
      ]),
    );
    outsider = { node: outsiderNode, id: (await other.read.memberOfApp([outsiderNode.appId]))[0] };

    // Events that happened before the indexer starts: caught up in batches from the deploy block.
    for (let i = 0; i < 12; i++) await event();

    const provider = fx.connection.provider;
    const transport = custom({
      request: (args: { method: string; params?: unknown }) => {
        if (args.method === "eth_getLogs") getLogsCalls += 1;
        return provider.request(args as never);
      },
    });
    indexer = await startIndexer(
      parseConfig({
        ATTESTMESH_INDEXER_RPC_URL: "http://unused.invalid",
        ATTESTMESH_INDEXER_CLUSTERS: `${fx.deployed.diamond},${otherCluster}`,
        ATTESTMESH_INDEXER_START_BLOCK: fx.deployed.deployBlock.toString(),
        ATTESTMESH_INDEXER_CONFIRMATIONS: "0",
        ATTESTMESH_INDEXER_BATCH_BLOCKS: "4",
        ATTESTMESH_INDEXER_POLL_INTERVAL_MS: "3600000",
        ATTESTMESH_INDEXER_HOST: "127.0.0.1",
        ATTESTMESH_INDEXER_PORT: "0",
        ATTESTMESH_INDEXER_WINDOW: "3",
        ATTESTMESH_INDEXER_ACK_TIMEOUT_MS: "500",
        DSTACK_SIMULATOR_ENDPOINT: join(dir, "indexer.sock"),
      }),
      { logger: silent, transport },
    );
  });

  after(async () => {
    for (const s of subscribers) s.close();
    await indexer?.stop();
    await sim?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("the signing key's dstack chain is accepted by the cluster's indexer registry", async () => {
    const { keys } = indexer;
    // The indexer's app id and compose hash carry the indexer role (IPolicy.AppRole.Indexer = 1).
    await mined(fx.owner.write.addAppIdFor([keys.appId, 1]));
    await mined(fx.owner.write.addComposeHashFor([keys.composeHash, 1]));
    await mined(
      fx.owner.write.setIndexer(["ws://127.0.0.1:1", keys.composeHash, keys.publicKeyHex, keys.proof]),
    );
    const record = await fx.owner.read.indexer();
    assert.equal(record.signingKey, keys.publicKeyHex);
    assert.equal(record.appId, keys.appId);
  });

  test("catches up from the start block in bounded getLogs batches", async () => {
    const head = await fx.publicClient.getBlockNumber();
    const onChain = await fx.publicClient.getLogs({
      address: fx.deployed.diamond,
      fromBlock: fx.deployed.deployBlock,
    });
    const stream = indexer.streams.get(fx.deployed.diamond.toLowerCase())!;
    // Everything up to the start of the indexer is in the stream, in chain order, each signed.
    const got: LogEnvelope[] = [];
    for (let s = stream.firstSeq(); s <= stream.lastSeq(); s++)
      got.push(stream.get(s)!.envelope as LogEnvelope);
    const before = onChain.filter((l) => got.some((e) => e.txHash === l.transactionHash));
    assert.equal(got.length, before.length);
    assert.ok(got.length >= 14, `at least the 12 events plus the registrations, got ${got.length}`);
    for (const e of got)
      assert.ok(
        verifyEnvelopeSignature(
          { ...e, sig: stream.get(BigInt(e.seq))!.envelope.sig },
          indexer.keys.publicKey,
        ),
      );
    const blocks = Number(head - fx.deployed.deployBlock + 1n);
    assert.ok(
      getLogsCalls >= Math.ceil(blocks / 4),
      `${getLogsCalls} getLogs calls for ${blocks} blocks in batches of 4`,
    );
  });

  test("a bad subscription is refused: wrong key, another member's id, a cluster not served, not a member", async () => {
    const stranger = privateKeyToAccount(generatePrivateKey());
    const cases: Array<[string, Partial<Parameters<typeof subscribe>[0]>, string]> = [
      ["signed by a key that is not the member's", { account: stranger }, "NotSignedByMemberKey"],
      ["member A claiming member B's id", { memberId: members[1]!.id }, "NotSignedByMemberKey"],
      ["signature for another member id", { signAsMemberId: members[1]!.id }, "NotSignedByMemberKey"],
      ["a cluster the indexer does not serve", { cluster: randomAppId() }, "ClusterNotServed"],
      ["a member id that does not exist", { memberId: 999n }, "MemberNotActive"],
    ];
    for (const [what, extra, reason] of cases) {
      const s = await sub(members[0]!, extra);
      const closed = await s.closed;
      assert.equal(closed.code, CLOSE.refused, what);
      assert.equal(s.errors[0]?.code, reason, what);
      assert.equal(s.envelopes.length, 0, `${what}: nothing sent`);
    }
    assert.equal(indexer.subscriberCount(), 0);
  });

  test("hello is signed, bound to the session, and carries a quote binding the signing key", async () => {
    const s = await sub(members[0]!);
    const hello = await waitFor("hello", () => s.envelopes[0]);
    assert.equal(hello.kind, "hello");
    assert.ok(verifyEnvelopeSignature(hello, indexer.keys.publicKey));
    if (hello.kind !== "hello") return;
    assert.equal(hello.memberId, members[0]!.id.toString());
    assert.equal(hello.gap, false);
    assert.ok(quoteBindsKey(hello.quote, indexer.keys.publicKey));
    assert.ok(!quoteBindsKey(hello.quote, new Uint8Array(32).fill(7)));
    s.close();
    await waitFor("gone", () => indexer.subscriberCount() === 0);
  });

  test("each subscriber gets its own cluster's events and only its own messages", async () => {
    const [a, b] = members as [(typeof members)[0], (typeof members)[0]];
    await indexer.tick(); // earlier tests' transactions: published before anyone subscribes
    const sa = await sub(a);
    const sb = await sub(b);
    const so = await subscribe({
      url: indexer.url,
      chainId: fx.chainId,
      cluster: otherCluster,
      memberId: outsider.id,
      account: outsider.node.memberAccount,
    });
    subscribers.push(so);
    await waitFor("three sessions", () => indexer.subscriberCount() === 3);

    const policy = await event();
    const ciphertext = toHex(new Uint8Array([1, 2, 3]));
    const envelopeId = keccak256(toHex("m1"));
    const signature = await a.node.memberAccount.signTypedData({
      domain: memberDomain(fx.chainId, fx.deployed.diamond),
      types: memberTypes,
      primaryType: "Send",
      message: { senderId: a.id, recipientId: b.id, envelopeId, ciphertextHash: keccak256(ciphertext) },
    });
    const message = await mined(fx.owner.write.send([a.id, b.id, envelopeId, ciphertext, signature]));
    const otherEvent = await mined(other.write.addAppId([randomAppId()]));
    await indexer.tick();

    await waitFor("b gets both", () => logsOf(sb).length === 2);
    await waitFor("a gets the policy event", () => logsOf(sa).length === 1);
    await waitFor("the other cluster's member gets its event", () => logsOf(so).length === 1);
    await delay(200);
    assert.deepEqual(
      logsOf(sa).map((e) => e.txHash),
      [policy.transactionHash],
    );
    assert.deepEqual(
      logsOf(sb).map((e) => e.txHash),
      [policy.transactionHash, message.transactionHash],
    );
    assert.deepEqual(
      logsOf(so).map((e) => e.txHash),
      [otherEvent.transactionHash],
    );
    assert.equal(logsOf(so)[0]!.cluster, otherCluster.toLowerCase());
    for (const e of [...logsOf(sa), ...logsOf(sb), ...logsOf(so)]) {
      assert.ok(verifyEnvelopeSignature(e, indexer.keys.publicKey));
    }
    // The repro stub reproduces the log from the chain.
    const e = logsOf(sb)[1]!;
    const reproduced = (await fx.connection.provider.request({
      method: e.repro.method,
      params: e.repro.params as never,
    })) as Array<{ transactionHash: string; logIndex: string; data: string }>;
    assert.ok(
      reproduced.some(
        (l) => l.transactionHash === e.txHash && Number(l.logIndex) === e.logIndex && l.data === e.log.data,
      ),
    );
    for (const s of [sa, sb, so]) s.close();
    await waitFor("sessions gone", () => indexer.subscriberCount() === 0);
  });

  test("resumes after a cursor with exactly the envelopes it missed; an unknown cursor is reported as a gap", async () => {
    const s1 = await sub(members[0]!);
    await waitFor("hello", () => s1.envelopes[0]);
    await event();
    await indexer.tick();
    const first = await waitFor("one event", () => logsOf(s1)[0]);
    s1.close();
    await waitFor("gone", () => indexer.subscriberCount() === 0);

    const missed = [await event(), await event()];
    await indexer.tick();
    const s2 = await sub(members[0]!, { cursor: formatCursor(first.epoch, first.seq) });
    await waitFor("the two missed events", () => logsOf(s2).length === 2);
    await delay(200);
    assert.deepEqual(
      logsOf(s2).map((e) => e.txHash),
      missed.map((r) => r.transactionHash),
    );
    const hello2 = s2.envelopes[0]!;
    assert.ok(hello2.kind === "hello" && hello2.gap === false && hello2.seq === first.seq);
    s2.close();

    const s3 = await sub(members[0]!, { cursor: formatCursor(`0x${"ab".repeat(16)}`, "5") });
    const hello3 = await waitFor("hello", () => s3.envelopes[0]);
    assert.ok(hello3.kind === "hello" && hello3.gap === true);
    s3.close();
    await waitFor("gone", () => indexer.subscriberCount() === 0);
  });

  test("a subscriber that stops acknowledging is cut off, not buffered for; others keep receiving", async () => {
    const stalled = await sub(members[0]!, { ack: false });
    const healthy = await sub(members[1]!);
    await waitFor("two sessions", () => indexer.subscriberCount() === 2);
    for (let i = 0; i < 10; i++) await event();
    await indexer.tick();
    const closed = await stalled.closed;
    assert.equal(closed.code, CLOSE.tooSlow);
    assert.equal(logsOf(stalled).length, 3, "exactly the window was sent");
    await waitFor("the healthy one gets all ten", () => logsOf(healthy).length === 10);
    const metrics = await indexer.metrics.registry.getSingleMetricAsString(
      "attestmesh_indexer_subscribers_cut_off_total",
    );
    assert.match(metrics, /no acknowledgement in time"} 1/);
    healthy.close();
    await waitFor("gone", () => indexer.subscriberCount() === 0);
  });

  test("a reorg retracts the orphaned logs (newest first) and emits the new fork's", async () => {
    const s = await sub(members[0]!);
    await waitFor("hello", () => s.envelopes[0]);
    const snapshot = (await fx.connection.provider.request({ method: "evm_snapshot" })) as Hex;
    const orphaned = [await event(), await event(), await event()];
    await indexer.tick();
    await waitFor("three events", () => logsOf(s).length === 3);

    await fx.connection.provider.request({ method: "evm_revert", params: [snapshot] });
    const replacement = [await event(), await event()];
    // Make the new fork longer than the old one, so the head is past the orphaned blocks.
    await fx.connection.provider.request({ method: "hardhat_mine", params: ["0x3"] });
    await indexer.tick();
    await waitFor("3 retractions and 2 new", () => logsOf(s).length === 8);
    const after = logsOf(s).slice(3);
    assert.deepEqual(
      after.slice(0, 3).map((e) => [e.txHash, e.removed]),
      orphaned.map((r) => [r.transactionHash, true]).reverse(),
    );
    assert.deepEqual(
      after.slice(3).map((e) => [e.txHash, e.removed, e.blockHash]),
      replacement.map((r) => [r.transactionHash, false, r.blockHash]),
    );
    const seqs = logsOf(s).map((e) => BigInt(e.seq));
    assert.ok(
      seqs.every((q, i) => i === 0 || q > seqs[i - 1]!),
      "seq strictly increases across the reorg",
    );
    const reorgs = await indexer.metrics.registry.getSingleMetricAsString("attestmesh_indexer_reorgs_total");
    assert.match(reorgs, / 1$/m);
    s.close();
  });

  test("/healthz and /metrics report lag, subscribers and pushes", async () => {
    const base = indexer.url.replace("ws://", "http://");
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    const body = (await health.json()) as { ok: boolean; signingKey: string; clusters: unknown[] };
    assert.equal(body.ok, true);
    assert.equal(body.signingKey, indexer.keys.publicKeyHex);
    assert.equal(body.clusters.length, 2);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    for (const name of [
      "attestmesh_indexer_lag_blocks",
      "attestmesh_indexer_subscribers",
      "attestmesh_indexer_pushes_total",
    ]) {
      assert.match(metrics, new RegExp(`^${name}`, "m"));
    }
  });
});
