// The sidecar's indexer intake against an in-process Hardhat network and a scripted indexer: a real
// WebSocket server speaking the protocol, whose envelopes the test writes and signs with keys that the
// cluster's registry really holds (dstack simulator chains). Every adversarial push is rejected, tears the
// subscription down, and changes nothing: no wake-up, no recorded block, no moved cursor.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { type DstackSimulator, startDstackSimulator } from "@attestmesh/devnet/dstack-sim/server.ts";
import { createSimulatedCvm, type SimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { parseConfig as parseIndexerConfig } from "@attestmesh/indexer/config.ts";
import { type Indexer, startIndexer } from "@attestmesh/indexer/main.ts";
import { fixedCollateral } from "@attestmesh/shared/attestation/collateral.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import {
  type Envelope,
  type LogEnvelope,
  signEnvelope,
  toHex,
  unsignedLogEnvelope,
} from "@attestmesh/shared/indexer/envelope.ts";
import { parseFrame, quoteReportData } from "@attestmesh/shared/indexer/protocol.ts";
import { INDEXER_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { ed25519 } from "@noble/curves/ed25519";
import { Registry } from "prom-client";
import { custom, getAbiItem, type Hex, hexToBytes, type Log, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { type WebSocket, WebSocketServer } from "ws";
import { loadNearMpcAttestation } from "../../../test/fixtures/tdx/fixtures.ts";
import {
  type AdmittedNode,
  admit,
  admitNewNode,
  type ClusterFixture,
  randomAppId,
  setupCluster,
  signRegistration,
  simulatedNode,
} from "../../../test/helpers/cluster.ts";
import { readIndexerRecords } from "../../src/chain/indexerRecord.ts";
import type { Concern } from "../../src/intake/concerns.ts";
import { type Intake, type IntakeOptions, type IntakeStatus, startIntake } from "../../src/intake/intake.ts";
import { createIndexerQuoteCheck, type IndexerQuoteCheck } from "../../src/intake/quote.ts";
import type { IndexerRecord } from "../../src/intake/registry.ts";
import { agreedAttestationPolicy } from "../../src/reattest/policy.ts";
import { captureLogger, readsOver, waitFor } from "../helpers.ts";

interface IndexerKey {
  readonly cvm: SimulatedCvm;
  readonly secret: Uint8Array;
  readonly publicKey: Hex;
  readonly appId: Hex;
}

interface Conn {
  readonly ws: WebSocket;
  readonly challenge: Hex;
  readonly acks: string[];
  readonly closed: Promise<void>;
  send(envelope: Envelope): void;
}

type Script = (conn: Conn) => void;

/** A script waiting for the next connection that subscribes, and who to tell which connection ran it. */
interface Queued {
  readonly script: Script;
  readonly ran: (conn: Conn) => void;
}

/** Bounds every wait on the scripted server, so a harness or intake fault fails fast and says what. */
const WAIT_MS = 20_000;

function within<T>(what: string, promise: Promise<T>, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const EPOCH = toHex(randomBytes(16));
/** A log of a mined transaction's receipt: every field of its place on the chain is set. */
type ReceiptLog = Log<bigint, number, false>;

interface FixtureIntake extends Intake {
  /** The reason of every wake-up so far. */
  readonly wakes: readonly string[];
  /** The pollers each wake-up named, in the same order. */
  readonly woken: readonly (readonly Concern[])[];
  /** Every member a push named as changed: member id, block, and how many wake-ups had happened before. */
  readonly changes: readonly (readonly [bigint, bigint, number])[];
  /** Aborts the intake and waits for its loop to end. */
  stop(): Promise<void>;
}

/**
 * The intake of `member` on the fixture's cluster, with no confirmations: the registry and the indexer
 * quote rules read from the fixture's chain (a quorum of one), quotes checked against the fixture's TDX
 * collateral, and every wake-up recorded.
 */
function startFixtureIntake(
  fx: ClusterFixture,
  member: AdmittedNode,
  options: Pick<IntakeOptions, "onStatus" | "logger" | "reproSampleRate" | "backoff"> &
    Partial<Pick<IntakeOptions, "registry" | "subscriptions">>,
): FixtureIntake {
  const abort = new AbortController();
  const wakes: string[] = [];
  const woken: Concern[][] = [];
  const changes: [bigint, bigint, number][] = [];
  const reads = readsOver(custom(fx.connection.provider, { retryCount: 0 }));
  const intake = startIntake({
    client: fx.publicClient,
    readIndexerRecords: () => readIndexerRecords(reads, fx.deployed.diamond),
    cluster: fx.deployed.diamond,
    chainId: fx.chainId,
    memberId: () => member.id,
    account: member.node.memberAccount,
    wake: async (reason, concerns) => {
      wakes.push(reason);
      woken.push([...concerns].sort());
    },
    onMemberChanged: (memberId, block) => changes.push([memberId, block, wakes.length]),
    signal: abort.signal,
    lagThresholdMs: 60_000,
    confirmations: 0,
    registryRetryMs: 100,
    indexerQuote: createIndexerQuoteCheck({
      policy: agreedAttestationPolicy(reads, fx.deployed.diamond),
      collateral: fixedCollateral(loadNearMpcAttestation().collateral, "fixture collateral"),
    }),
    ...options,
  });
  return {
    status: () => intake.status(),
    stopped: intake.stopped,
    wakes,
    woken,
    changes,
    async stop() {
      abort.abort();
      await intake.stopped;
    },
  };
}

describe("sidecar indexer intake", { timeout: 300_000 }, () => {
  let fx: ClusterFixture;
  let member: AdmittedNode;
  let keyA: IndexerKey;
  let keyB: IndexerKey;
  let wss: WebSocketServer;
  let endpoint: string;
  /** The key the scripted server names in its challenge. */
  let offeredKey: Hex;
  /** Scripts in order; each runs on exactly one connection, the next to subscribe. */
  const scripts: Queued[] = [];
  const conns: Conn[] = [];
  const statuses: IntakeStatus[] = [];
  const registry = new Registry();
  const log = captureLogger();
  let intake: FixtureIntake;
  let seq = 0n;
  /** A real log of the cluster, for envelopes that should reproduce. */
  let realLog: ReceiptLog;

  function indexerKey(): IndexerKey {
    const appId = randomAppId();
    // Each indexer runs its own code: its compose hash is the code id the registry records.
    const cvm = createSimulatedCvm({
      kmsRoot: fx.kmsRoot,
      appId: hexToBytes(appId),
      composeHash: randomBytes(32),
    });
    const { key } = cvm.getKey(INDEXER_KEY.path, INDEXER_KEY.purpose, "ed25519");
    return { cvm, secret: key, publicKey: toHex(ed25519.getPublicKey(key)) as Hex, appId };
  }

  async function register(key: IndexerKey, at = endpoint): Promise<void> {
    const { signatureChain } = key.cvm.getKey(INDEXER_KEY.path, INDEXER_KEY.purpose, "ed25519");
    // The indexer's app id and code id carry the indexer role (IPolicy.AppRole.Indexer = 1).
    const codeId = toHex(key.cvm.info().composeHash) as Hex;
    await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.owner.write.addAppIdFor([key.appId, 1]),
    });
    await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.owner.write.addComposeHashFor([codeId, 1]),
    });
    const hash = await fx.owner.write.setIndexer([
      at,
      codeId,
      key.publicKey,
      {
        appId: key.appId,
        appPubkey: toHex(key.cvm.appPublicKey) as Hex,
        appSignature: toHex(signatureChain[0]) as Hex,
        kmsSignature: toHex(signatureChain[1]) as Hex,
        guestApiVersion: 0,
      },
    ]);
    await fx.publicClient.waitForTransactionReceipt({ hash });
  }

  function hello(key: IndexerKey, challenge: Hex, options: { seq?: bigint; quoteKey?: IndexerKey } = {}) {
    const quoteKey = options.quoteKey ?? key;
    return signEnvelope(
      {
        v: 1,
        kind: "hello",
        chainId: fx.chainId,
        cluster: fx.deployed.diamond.toLowerCase(),
        epoch: EPOCH,
        seq: (options.seq ?? seq).toString(),
        blockNumber: "0",
        blockHash: `0x${"00".repeat(32)}`,
        session: challenge,
        memberId: member.id.toString(),
        quote: toHex(quoteKey.cvm.getQuote(quoteReportData(hexToBytes(quoteKey.publicKey)))),
        gap: false,
      },
      key.secret,
    );
  }

  function logEnvelope(key: IndexerKey, source: ReceiptLog, overrides: Partial<LogEnvelope> = {}): Envelope {
    seq += 1n;
    const stream = { chainId: fx.chainId, cluster: fx.deployed.diamond.toLowerCase(), epoch: EPOCH, seq };
    return signEnvelope({ ...unsignedLogEnvelope(stream, source, false), ...overrides }, key.secret);
  }

  /** Closes every connection the server holds, including one still between challenge and subscribe. */
  function closeAll(): void {
    for (const ws of wss.clients) ws.close();
  }

  /**
   * Closes the current connections and resolves with the connection that ran `script`: the next one to
   * subscribe. Not "the newest connection": once the script's push is rejected, the intake's own backoff
   * reconnect can subscribe again (no script, stays open) before anyone looks, and waiting for that
   * connection to close would hang.
   */
  async function reconnectWith(script: Script): Promise<Conn> {
    const ran = new Promise<Conn>((resolve) => scripts.push({ script, ran: resolve }));
    closeAll();
    return within("the intake to reconnect and subscribe to the scripted connection", ran);
  }

  /** Waits until the intake tore `conn` down (or it closed otherwise), bounded. */
  const closed = (conn: Conn, what: string) => within(`${what}: the connection to close`, conn.closed);

  const rejected = async (reason: string) => {
    const metric = await registry.getSingleMetric("attestmesh_indexer_pushes_rejected_total")!.get();
    return metric.values.find((v) => v.labels.reason === reason)?.value ?? 0;
  };

  /**
   * Runs `script` on a fresh connection and checks its push was rejected: the connection closed, the
   * `times`-th rejection for `reason` counted, and nothing changed.
   */
  async function pushRejected(what: string, reason: string, script: Script, times = 1) {
    const before = snapshot();
    const conn = await reconnectWith(script);
    await closed(conn, what);
    assert.equal(await rejected(reason), times);
    assert.deepEqual(snapshot(), before);
    return { conn, before };
  }

  /** What an adversarial push must not change. */
  function snapshot() {
    return { wakes: intake.wakes.length, lastBlock: intake.status().lastVerifiedPushBlock };
  }

  before(async () => {
    fx = await setupCluster();
    member = await admitNewNode(fx);
    const receipt = await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.owner.write.addAppId([randomAppId()]),
    });
    realLog = receipt.logs[0]!;
    keyA = indexerKey();
    keyB = indexerKey();

    wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
    const address = wss.address();
    endpoint = `ws://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`;
    offeredKey = keyA.publicKey;
    wss.on("connection", (ws) => {
      const challenge = toHex(randomBytes(32)) as Hex;
      const acks: string[] = [];
      const closed = new Promise<void>((resolve) => ws.on("close", () => resolve()));
      const conn: Conn = {
        ws,
        challenge,
        acks,
        closed,
        send: (e) => ws.send(JSON.stringify({ type: "envelope", envelope: e })),
      };
      ws.on("message", (data) => {
        const message = parseFrame(data);
        if (message?.type === "subscribe") {
          conns.push(conn);
          const queued = scripts.shift();
          if (queued !== undefined) {
            queued.script(conn);
            queued.ran(conn);
          }
        } else if (message?.type === "ack") {
          acks.push(String(message.seq));
        }
      });
      ws.send(JSON.stringify({ type: "challenge", challenge, chainId: fx.chainId, signingKey: offeredKey }));
    });
    await register(keyA);

    intake = startFixtureIntake(fx, member, {
      onStatus: (s) => statuses.push(s),
      logger: log.logger,
      registry,
      reproSampleRate: 1,
      backoff: { initialMs: 20, maxMs: 100 },
    });
  });

  after(async () => {
    await intake?.stop();
    for (const client of wss?.clients ?? []) client.terminate();
    await new Promise<void>((resolve) => wss?.close(() => resolve()));
  });

  test("a verified push wakes the reconcile loop, is acknowledged and shown; its payload is not kept", async () => {
    const conn = await reconnectWith((c) => {
      c.send(hello(keyA, c.challenge));
      c.send(logEnvelope(keyA, realLog));
    });
    await waitFor("the wake-up", () => intake.wakes.length === 1);
    await waitFor("the ack", () => conn.acks.length === 1);
    assert.equal(conn.acks[0], seq.toString());
    assert.deepEqual(intake.wakes, ["indexer push"]);
    assert.equal(intake.status().indexerSubscribed, true);
    assert.equal(intake.status().lastVerifiedPushBlock, realLog.blockNumber);
    const repro = await registry.getSingleMetric("attestmesh_indexer_repro_checks_total")!.get();
    assert.equal(repro.values.find((v) => v.labels.outcome === "reproduced")?.value, 1);
  });

  // Issue 15: a registration's two logs woke every sidecar twice, and the second pass only loaded the
  // providers while the join's every node read.
  test("a block's later logs wake nothing more; the next block's log and a retraction do", async () => {
    const evicted = await admitNewNode(fx);
    const eviction = await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.owner.write.evict([evicted.id, 3]),
    });
    const [first, second] = eviction.logs.filter(
      (l) => l.address.toLowerCase() === fx.deployed.diamond.toLowerCase(),
    );
    assert.ok(first && second, "an eviction emits two logs of the cluster in one block");
    const later = (
      await fx.publicClient.waitForTransactionReceipt({
        hash: await fx.owner.write.addAppId([randomAppId()]),
      })
    ).logs[0]!;
    const before = snapshot();
    const conn = await reconnectWith((c) => {
      c.send(hello(keyA, c.challenge));
      c.send(logEnvelope(keyA, first));
      c.send(logEnvelope(keyA, second));
      c.send(logEnvelope(keyA, later));
      seq += 1n;
      const stream = { chainId: fx.chainId, cluster: fx.deployed.diamond.toLowerCase(), epoch: EPOCH, seq };
      c.send(signEnvelope(unsignedLogEnvelope(stream, later, true), keyA.secret));
    });
    await waitFor("every push acknowledged", () => conn.acks.length === 4);
    await waitFor("the wake-ups", () => intake.wakes.length === before.wakes + 3);
    await delay(100);
    assert.equal(intake.wakes.length, before.wakes + 3, "the eviction's second log woke nothing");
    assert.equal(intake.status().lastVerifiedPushBlock, later.blockNumber);
  });

  // Issue 15: every push woke the CSK and message pollers too, whose reads queued ahead of the
  // reconcile pass's while every node added a newcomer.
  test("a registration wakes the reconcile loop alone; another event of its block wakes the rest", async () => {
    const node = simulatedNode(fx.kmsRoot);
    await fx.publicClient.waitForTransactionReceipt({ hash: await fx.owner.write.addAppId([node.appId]) });
    const signature = await signRegistration(fx, node, {
      nonce: await fx.owner.read.registrationNonce([node.appId]),
    });
    const provider = fx.connection.provider;
    await provider.request({ method: "evm_setAutomine", params: [false] });
    let hashes: Hex[];
    try {
      hashes = [
        await fx.relayer.write.register([
          node.proof,
          node.wireguardKey,
          node.identityKey,
          node.claims,
          signature,
        ]),
        await fx.owner.write.addAppId([randomAppId()]),
      ];
      await provider.request({ method: "evm_mine", params: [] });
    } finally {
      await provider.request({ method: "evm_setAutomine", params: [true] });
    }
    const receipts = await Promise.all(hashes.map((hash) => fx.publicClient.getTransactionReceipt({ hash })));
    assert.equal(receipts[0]!.blockNumber, receipts[1]!.blockNumber, "one block");
    const ours = (r: (typeof receipts)[number]) =>
      r.logs.filter((l) => l.address.toLowerCase() === fx.deployed.diamond.toLowerCase());
    const registered = ours(receipts[0]!).at(-1)!;
    const added = ours(receipts[1]!)[0]!;
    const next = (
      await fx.publicClient.waitForTransactionReceipt({
        hash: await fx.owner.write.addAppId([randomAppId()]),
      })
    ).logs[0]!;
    const before = intake.woken.length;
    const conn = await reconnectWith((c) => {
      c.send(hello(keyA, c.challenge));
      c.send(logEnvelope(keyA, registered));
      c.send(logEnvelope(keyA, registered));
      c.send(logEnvelope(keyA, added));
      c.send(logEnvelope(keyA, added));
      c.send(logEnvelope(keyA, next));
    });
    await waitFor("every push acknowledged", () => conn.acks.length === 5);
    await waitFor("the wake-ups", () => intake.woken.length === before + 3);
    await delay(100);
    assert.deepEqual(intake.woken.slice(before), [
      ["membership"],
      ["csk", "messages"],
      ["csk", "membership", "messages"],
    ]);
  });

  test("a registration's push names its member and block before the wake-up it brings; other logs none", async () => {
    const node = simulatedNode(fx.kmsRoot);
    const id = await admit(fx, node);
    const [registered] = await fx.publicClient.getLogs({
      address: fx.deployed.diamond,
      event: getAbiItem({ abi: clusterAbi, name: "MemberRegistered" }),
      args: { memberId: id },
      fromBlock: 0n,
    });
    const other = (
      await fx.publicClient.waitForTransactionReceipt({
        hash: await fx.owner.write.addAppId([randomAppId()]),
      })
    ).logs[0]!;
    const wakesBefore = intake.wakes.length;
    const namedBefore = intake.changes.length;
    const conn = await reconnectWith((c) => {
      c.send(hello(keyA, c.challenge));
      c.send(logEnvelope(keyA, registered as ReceiptLog));
      c.send(logEnvelope(keyA, other));
    });
    await waitFor("both pushes acknowledged", () => conn.acks.length === 2);
    await waitFor("the wake-ups", () => intake.wakes.length === wakesBefore + 2);
    assert.deepEqual(intake.changes.slice(namedBefore), [[id, registered!.blockNumber, wakesBefore]]);
  });

  test("a forged signature is rejected as adversarial and tears the subscription down", async () => {
    const forger = { ...keyA, secret: ed25519.utils.randomPrivateKey() };
    const { conn } = await pushRejected("the forged push rejected", "BadSignature", (c) => {
      c.send(hello(keyA, c.challenge));
      c.send(logEnvelope(forger, realLog));
    });
    assert.equal(conn.acks.length, 0);
    assert.ok(
      log.lines().some((l) => l.adversarial === true && l.reason === "BadSignature"),
      "logged as adversarial",
    );
    await waitFor("subscribed flag dropped", () => statuses.at(-1)?.indexerSubscribed === false);
  });

  test("a replayed envelope (already accepted in an earlier session) is rejected", async () => {
    const before = snapshot();
    const accepted = logEnvelope(keyA, realLog);
    const first = await reconnectWith((c) => {
      c.send(hello(keyA, c.challenge, { seq: BigInt(accepted.seq) - 1n }));
      c.send(accepted);
    });
    await waitFor("accepted", () => first.acks.length === 1);
    const afterAccept = snapshot();
    assert.equal(afterAccept.wakes, before.wakes + 1);
    // A new session: a man in the middle (or a lying indexer) replays the same signed envelope.
    const second = await reconnectWith((c) => {
      c.send(hello(keyA, c.challenge, { seq: BigInt(accepted.seq) - 1n }));
      c.send(accepted);
    });
    await closed(second, "the replayed envelope rejected");
    assert.equal(await rejected("Replayed"), 1);
    assert.deepEqual(snapshot(), afterAccept);
    // A hello from another session cannot be replayed either.
    let stolenHello: Envelope | undefined;
    const third = await reconnectWith((c) => {
      stolenHello = hello(keyA, first.challenge);
      c.send(stolenHello);
    });
    await closed(third, "the stolen hello rejected");
    assert.equal(await rejected("HelloForAnotherSession"), 1);
    assert.deepEqual(snapshot(), afterAccept);
  });

  test("after rotation, envelopes signed by the old indexer key are rejected", async () => {
    await register(keyB);
    offeredKey = keyB.publicKey;
    const { before } = await pushRejected(
      "the old key's push rejected",
      "BadSignature",
      (c) => {
        c.send(hello(keyA, c.challenge, { quoteKey: keyA }));
        c.send(logEnvelope(keyA, realLog));
      },
      2,
    );
    // An endpoint that still names the old key in its challenge is refused before anything is signed.
    offeredKey = keyA.publicKey;
    // Closing again on every poll: a reconnect already past its challenge (naming keyB) when the key
    // changed would otherwise subscribe and stay up, and the stale key would never be offered.
    await waitFor("the stale key refused", async () => {
      closeAll();
      return (await rejected("NotTheRegisteredKey")) >= 1;
    });
    offeredKey = keyB.publicKey;
    assert.deepEqual(snapshot(), before);
  });

  test("a signed envelope whose repro stub does not reproduce is rejected", async () => {
    const { conn, before } = await pushRejected(
      "the unreproducible push rejected",
      "ReproDoesNotReproduce",
      (c) => {
        c.send(hello(keyB, c.challenge));
        // A log the chain never had: a real block, a made-up transaction.
        c.send(logEnvelope(keyB, realLog, { txHash: toHex(randomBytes(32)) }));
      },
    );
    assert.equal(conn.acks.length, 0);

    // The same indexer key, honest this time, is accepted again.
    const honest = await reconnectWith((c) => {
      c.send(hello(keyB, c.challenge));
      c.send(logEnvelope(keyB, realLog));
    });
    await waitFor("accepted", () => honest.acks.length === 1);
    assert.equal(intake.wakes.length, before.wakes + 1);
  });

  test("a hello whose quote comes from other code than the registry's code id is rejected", async () => {
    // The same app (so the same signing key, bound in the report data), running another compose.
    const otherCode = createSimulatedCvm({
      kmsRoot: fx.kmsRoot,
      appId: hexToBytes(keyB.appId),
      composeHash: randomBytes(32),
    });
    await pushRejected("the other code's hello rejected", "ComposeHashNotExpected", (c) => {
      c.send(hello(keyB, c.challenge, { quoteKey: { ...keyB, cvm: otherCode } }));
      c.send(logEnvelope(keyB, realLog));
    });
    assert.ok(log.lines().some((l) => l.reason === "ComposeHashNotExpected" && l.check === "code-id"));
  });

  test("a verified hello says its quote is simulated", () => {
    assert.ok(
      log
        .lines()
        .some((l) => l.msg === "indexer subscription verified" && String(l.quote).startsWith("SIMULATED")),
    );
  });

  test("a log of another contract is rejected", async () => {
    const other = { ...realLog, address: randomAppId() };
    await pushRejected("the other contract's log rejected", "NotTheClustersLog", (c) => {
      c.send(hello(keyB, c.challenge));
      c.send(logEnvelope(keyB, other));
    });
  });

  test("a registry endpoint that is not a WebSocket URL leaves the intake polling, and alive", async () => {
    await register(keyB, "not a url");
    // Closing again on every poll: a reconnect that read the registry before the change may still land.
    await waitFor("the bad endpoint noticed", () => {
      closeAll();
      return log.lines().some((l) => String(l.msg).includes("not a WebSocket URL"));
    });
    const before = conns.length;
    await register(keyB);
    await waitFor("reconnected to the fixed endpoint", () => conns.length > before);
  });

  test("a simulated quote is refused once the owner no longer allows the simulator's KMS root", async () => {
    await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.owner.write.removeKmsRoot([fx.kmsRoot.address]),
    });
    try {
      await pushRejected("the simulated hello rejected", "SimulatorNotAllowed", (c) => {
        c.send(hello(keyB, c.challenge));
        c.send(logEnvelope(keyB, realLog));
      });
    } finally {
      await fx.publicClient.waitForTransactionReceipt({
        hash: await fx.owner.write.addKmsRoot([fx.kmsRoot.address]),
      });
    }
  });
});

// Two real indexers (the indexer package, in process, each with its own dstack simulator key) both in
// the registry: the intake subscribes to both, a push from either wakes it, and when one indexer dies
// the wake-ups continue from the other; each link reports its own state.
describe("sidecar intake with two registered indexers", { timeout: 300_000 }, () => {
  let fx: ClusterFixture;
  let dir: string;
  const indexers: Indexer[] = [];
  const sims: DstackSimulator[] = [];
  let intake: FixtureIntake;

  async function startOne(name: string): Promise<Indexer> {
    const appId = randomAppId();
    const sim = await startDstackSimulator({
      socketPath: join(dir, `${name}.sock`),
      cvm: createSimulatedCvm({ kmsRoot: fx.kmsRoot, appId: hexToBytes(appId) }),
      logger: captureLogger("silent").logger,
    });
    sims.push(sim);
    const indexer = await startIndexer(
      parseIndexerConfig({
        ATTESTMESH_INDEXER_RPC_URL: "http://unused.invalid",
        ATTESTMESH_INDEXER_CLUSTERS: fx.deployed.diamond,
        ATTESTMESH_INDEXER_START_BLOCK: (await fx.publicClient.getBlockNumber()).toString(),
        ATTESTMESH_INDEXER_CONFIRMATIONS: "0",
        ATTESTMESH_INDEXER_POLL_INTERVAL_MS: "100",
        ATTESTMESH_INDEXER_HOST: "127.0.0.1",
        ATTESTMESH_INDEXER_PORT: "0",
        DSTACK_SIMULATOR_ENDPOINT: join(dir, `${name}.sock`),
      }),
      { logger: captureLogger("silent").logger, transport: custom(fx.connection.provider) },
    );
    indexers.push(indexer);
    const { keys } = indexer;
    const mined = async (hash: Promise<Hex>) =>
      fx.publicClient.waitForTransactionReceipt({ hash: await hash });
    await mined(fx.owner.write.addAppIdFor([keys.appId, 1]));
    await mined(fx.owner.write.addComposeHashFor([keys.composeHash, 1]));
    await mined(fx.owner.write.addIndexer([indexer.url, keys.composeHash, keys.publicKeyHex, keys.proof]));
    return indexer;
  }

  /** A cluster event (an allowlist change): every indexer pushes it to every subscriber. */
  async function event(): Promise<bigint> {
    const receipt = await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.owner.write.addAppId([randomAppId()]),
    });
    return receipt.blockNumber;
  }

  const links = () => intake.status().indexers;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "am-two-idx-"));
    fx = await setupCluster();
    const member = await admitNewNode(fx);
    await startOne("one");
    await startOne("two");
    intake = startFixtureIntake(fx, member, {
      onStatus: () => {},
      logger: captureLogger("silent").logger,
      reproSampleRate: 0,
      backoff: { initialMs: 50, maxMs: 200 },
      subscriptions: 2,
    });
  });

  after(async () => {
    await intake?.stop();
    for (const indexer of indexers) await indexer.stop().catch(() => {});
    for (const sim of sims) await sim.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("both are subscribed, a push from either wakes the sidecar, and one dying leaves the other pushing", async () => {
    const [one, two] = indexers as [Indexer, Indexer];
    await waitFor(
      "both subscriptions verified",
      () => links().length === 2 && links().every((l) => l.subscribed),
    );
    assert.deepEqual(
      links().map((l) => [l.endpoint, l.signingKey]),
      [
        [one.url, one.keys.publicKeyHex.toLowerCase()],
        [two.url, two.keys.publicKeyHex.toLowerCase()],
      ],
      "in registry order",
    );
    const first = await event();
    await waitFor("a verified push from each", () =>
      links().every((l) => l.lastVerifiedPushBlock !== undefined && l.lastVerifiedPushBlock >= first),
    );
    assert.ok(
      intake.wakes.filter((w) => w === "indexer push").length >= 2,
      "each indexer's push was a wake-up",
    );

    await one.stop();
    await waitFor("the dead indexer's link marked down", () => links()[0]?.subscribed === false);
    assert.equal(intake.status().indexerSubscribed, true, "still subscribed through the other");
    const before = intake.wakes.length;
    const second = await event();
    await waitFor("a wake-up from the surviving indexer", () => links()[1]!.lastVerifiedPushBlock! >= second);
    assert.ok(intake.wakes.length > before && intake.wakes.slice(before).includes("indexer push"));
    assert.ok(
      links()[0]!.lastVerifiedPushBlock! < second,
      "the dead indexer pushed nothing more: its link shows its own last push",
    );
    assert.deepEqual(
      links().map((l) => [l.subscribed, l.lagging]),
      [
        [false, false],
        [true, false],
      ],
      "each link reports its own state",
    );
  });
});

// Regression: an intake stopped while it read the indexer registry opened a session anyway, whose socket
// never heard the abort (the signal had fired already), and `stopped` never resolved. It hung this file's
// `after` above on a loaded machine, one connection to its own server open.
test("an intake stopped while it reads the registry opens no session and stops", async () => {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  after(async () => {
    for (const client of wss.clients) client.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });
  const address = wss.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  let connections = 0;
  wss.on("connection", () => {
    connections += 1;
  });

  const record: IndexerRecord = {
    endpoint: `ws://127.0.0.1:${port}`,
    signingKey: `0x${"11".repeat(32)}`,
    codeId: `0x${"22".repeat(32)}`,
    appId: `0x${"33".repeat(20)}`,
  };
  let reading: () => void = () => {};
  let answer: (records: IndexerRecord[]) => void = () => {};
  const read = new Promise<void>((resolve) => {
    reading = resolve;
  });
  const abort = new AbortController();
  const intake = startIntake({
    client: {} as PublicClient,
    readIndexerRecords: () =>
      new Promise((resolve) => {
        answer = resolve;
        reading();
      }),
    cluster: `0x${"44".repeat(20)}`,
    chainId: 31337,
    memberId: () => 1n,
    account: privateKeyToAccount(generatePrivateKey()),
    wake: async () => {},
    onStatus: () => {},
    signal: abort.signal,
    logger: captureLogger("silent").logger,
    registry: new Registry(),
    reproSampleRate: 0,
    lagThresholdMs: 60_000,
    confirmations: 0,
    backoff: { initialMs: 20, maxMs: 100 },
    registryRetryMs: 100,
    indexerQuote: (async () => {
      throw new Error("no session should get as far as a hello");
    }) as unknown as IndexerQuoteCheck,
    subscriptions: 1,
  });

  await read;
  abort.abort();
  answer([record]);
  const outcome = await Promise.race([
    intake.stopped.then(() => "stopped"),
    new Promise((resolve) => setTimeout(resolve, 5_000, "still running after 5 s")),
  ]);
  assert.equal(outcome, "stopped");
  assert.equal(connections, 0, "no connection was opened after the abort");
});
