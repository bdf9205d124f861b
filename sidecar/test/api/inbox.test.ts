// The message inbox: what it stores and prunes, that it survives closing and reopening, that an
// envelope never gets two sequence numbers, that it refuses corrupt, foreign and shared files without
// touching them, and (with the real `attestmesh-sidecar` binary, killed with SIGKILL) that a message
// that arrived before the crash reaches the application after the restart, until it is acknowledged.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { startDstackSimulator } from "@attestmesh/devnet/dstack-sim/server.ts";
import { createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { devnetAppCompose } from "@attestmesh/devnet/orchestration/dstackSim.ts";
import { IDENTITY_KEY, MEMBER_KEY, WIREGUARD_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { DatabaseSync } from "@attestmesh/shared/service/sqlite.ts";
import { sha256 } from "@noble/hashes/sha2";
import { type Address, bytesToHex, custom, type Hex, hexToBytes, toHex } from "viem";
import { createMemberApp, fixtureTrust } from "../../../test/helpers/certs.ts";
import { type ClusterFixture, setupCluster } from "../../../test/helpers/cluster.ts";
import { serveRpc } from "../../../test/helpers/rpcServer.ts";
import { inboxFileName, openInbox, type StoredMessage } from "../../src/api/inbox.ts";
import { parseConfig } from "../../src/config.ts";
import { AttestmeshError, isRetryable } from "../../src/errors.ts";
import { type Sidecar, startSidecar } from "../../src/main.ts";
import type { ReceivedMessage } from "../../src/messages/types.ts";
import { createMemoryBackend } from "../../src/wireguard/memory.ts";
import { apiRequest, type NdjsonStream, openStream, postJson } from "../api-client.ts";
import { captureLogger, simulatorKeySource, TEST_SIDECAR_ENV, waitFor } from "../helpers.ts";

const CLUSTER: Address = "0x00000000000000000000000000000000000000cC";
const OTHER_CLUSTER: Address = "0x00000000000000000000000000000000000000dD";
const APP: Address = "0x00000000000000000000000000000000000000aA";

function message(text: string, overrides: Partial<ReceivedMessage> = {}): ReceivedMessage {
  return {
    envelopeId: bytesToHex(randomBytes(32)),
    senderId: 3n,
    senderAppId: APP,
    recipientId: 1n,
    payload: new TextEncoder().encode(text),
    blockNumber: 12_345_678_901n,
    txHash: bytesToHex(randomBytes(32)),
    logIndex: 4,
    ...overrides,
  };
}

const texts = (stored: readonly StoredMessage[]) =>
  stored.map((s) => [s.seq, new TextDecoder().decode(s.message.payload)]);

const isCode = (code: string) => (e: unknown) => e instanceof AttestmeshError && e.code === code;

describe("the message inbox", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "am-inbox-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const open = (stateDir: string, options: { maxMessages?: number; cluster?: Address } = {}) =>
    openInbox({ stateDir, cluster: options.cluster ?? CLUSTER, maxMessages: options.maxMessages ?? 1000 });

  test("stores, acknowledges and prunes; everything survives closing and reopening", async () => {
    const stateDir = join(dir, "basic");
    let inbox = open(stateDir);
    const space = inbox.space;
    assert.match(space, /^[0-9a-f-]{36}$/);
    const first = message("one", { senderAppId: undefined });
    assert.equal(inbox.store(first), 1);
    assert.equal(inbox.store(message("two")), 2);
    assert.equal(inbox.store(message("three")), 3);
    assert.deepEqual([inbox.lastSeq(), inbox.acked(), inbox.pending()], [3, 0, 3]);
    assert.deepEqual(inbox.after(0, 64)[0], { seq: 1, message: first }, "every field round-trips");
    assert.deepEqual(texts(inbox.after(1, 1)), [[2, "two"]], "after and limit");
    inbox.close();

    inbox = open(stateDir);
    assert.equal(inbox.space, space, "the same sequence space after reopening");
    assert.deepEqual(texts(inbox.after(0, 64)), [
      [1, "one"],
      [2, "two"],
      [3, "three"],
    ]);
    assert.deepEqual(inbox.ack(2), { acked: 2, pruned: 2 });
    assert.deepEqual(inbox.ack(1), { acked: 2, pruned: 0 }, "an older ack is a no-op");
    assert.deepEqual(texts(inbox.after(0, 64)), [[3, "three"]], "acknowledged messages are gone");
    inbox.close();

    inbox = open(stateDir);
    assert.deepEqual([inbox.lastSeq(), inbox.acked(), inbox.pending()], [3, 2, 1]);
    assert.equal(inbox.store(message("four")), 4, "sequence numbers continue, never reused");
    assert.deepEqual(inbox.ack(4), { acked: 4, pruned: 2 });
    assert.equal(inbox.pending(), 0);
    inbox.close();
    const info = await stat(join(stateDir, inboxFileName(CLUSTER)));
    assert.equal(info.mode & 0o777, 0o600, "the file is private to the sidecar's user");
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
  });

  test("an envelope gets one sequence number, even after it was acknowledged and pruned", () => {
    const inbox = open(join(dir, "dedup"));
    const m = message("once");
    assert.equal(inbox.store(m), 1);
    assert.equal(inbox.store({ ...m }), undefined, "a re-read log is ignored");
    assert.equal(inbox.store({ ...m, envelopeId: m.envelopeId.toUpperCase() as Hex }), undefined);
    inbox.ack(1);
    assert.equal(inbox.store({ ...m }), undefined, "still ignored after pruning");
    assert.equal(
      inbox.store({ ...m, senderId: 4n, payload: new TextEncoder().encode("other sender") }),
      2,
      "another sender's envelope with the same id is its own message (issue 13)",
    );
    assert.deepEqual(texts(inbox.after(0, 10)), [[2, "other sender"]]);
    inbox.close();
  });

  test("a full inbox refuses (retryably) and stores nothing until the application acknowledges", () => {
    const inbox = open(join(dir, "full"), { maxMessages: 2 });
    inbox.store(message("a"));
    inbox.store(message("b"));
    const third = message("c");
    assert.throws(
      () => inbox.store(third),
      (e: unknown) => isCode("InboxFull")(e) && isRetryable(e) && /acknowledge/.test((e as Error).message),
    );
    assert.deepEqual([inbox.lastSeq(), inbox.pending()], [2, 2], "nothing changed");
    inbox.ack(1);
    assert.equal(inbox.store(third), 3, "the waiting message is stored once there is room");
    inbox.close();
  });

  test("without a state directory the inbox lives in memory", () => {
    const inbox = openInbox({ stateDir: undefined, cluster: CLUSTER, maxMessages: 10 });
    assert.equal(inbox.path, undefined);
    assert.equal(inbox.store(message("m")), 1);
    inbox.close();
  });

  test("a corrupt file is refused with a clear error and left as it was", async () => {
    const stateDir = join(dir, "corrupt");
    const good = open(stateDir);
    good.store(message("keep me"));
    good.close();
    const path = join(stateDir, inboxFileName(CLUSTER));
    const garbage = randomBytes(8192);
    const cases: Array<[string, Buffer]> = [
      ["random bytes", garbage],
      ["text", Buffer.from("this is not a database\n".repeat(100))],
    ];
    // An SQLite header followed by damaged pages.
    const real = await readFile(path);
    const damaged = Buffer.from(real);
    randomBytes(real.length - 100).copy(damaged, 100);
    cases.push(["damaged pages", damaged]);
    for (const [what, bytes] of cases) {
      await writeFile(path, bytes);
      assert.throws(
        () => open(stateDir),
        (e: unknown) =>
          (isCode("InboxCorrupt")(e) || isCode("InboxForeign")(e)) &&
          !isRetryable(e) &&
          (e as Error).message.includes(path) &&
          /move the file aside/.test((e as Error).message),
        what,
      );
      assert.deepEqual(await readFile(path), bytes, `${what}: the file is untouched`);
    }
    await assert.rejects(stat(`${path}-wal`), /ENOENT/, "no journal was created beside it");
  });

  test("another database, or another cluster's inbox, is refused as foreign and left as it was", async () => {
    const stateDir = join(dir, "foreign");
    const path = join(stateDir, inboxFileName(CLUSTER));
    open(stateDir).close();
    await rm(path);
    const other = new DatabaseSync(path);
    other.exec("CREATE TABLE spends (user_op_hash TEXT PRIMARY KEY); INSERT INTO spends VALUES ('0x01');");
    other.close();
    const before = await readFile(path);
    assert.throws(
      () => open(stateDir),
      (e: unknown) =>
        isCode("InboxForeign")(e) && /not this sidecar's message inbox/.test((e as Error).message),
    );
    assert.deepEqual(await readFile(path), before);

    const otherDir = join(dir, "foreign-cluster");
    const theirs = open(otherDir, { cluster: OTHER_CLUSTER });
    theirs.store(message("theirs"));
    theirs.close();
    await copyFile(join(otherDir, inboxFileName(OTHER_CLUSTER)), path);
    assert.throws(
      () => open(stateDir),
      (e: unknown) =>
        isCode("InboxForeign")(e) &&
        (e as Error).message
          .toLowerCase()
          .includes(`cluster ${OTHER_CLUSTER.toLowerCase()}, not ${CLUSTER.toLowerCase()}`),
    );
  });

  test("a second opener (a second sidecar on the same state directory) is refused while the first runs", () => {
    const stateDir = join(dir, "shared");
    open(stateDir).close();
    const first = open(stateDir);
    assert.throws(() => open(stateDir), isCode("InboxInUse"));
    first.store(message("still mine"));
    first.close();
    const again = open(stateDir);
    assert.equal(again.lastSeq(), 1);
    again.close();
  });

  test("a state directory that cannot be created is reported as unusable", async () => {
    const blocker = join(dir, "a-file");
    await writeFile(blocker, "not a directory");
    assert.throws(
      () => open(join(blocker, "state")),
      (e: unknown) => isCode("InboxUnusable")(e) && /ATTESTMESH_STATE_DIR/.test((e as Error).message),
    );
  });

  test("what is at rest: exactly the fields the application receives", () => {
    const stateDir = join(dir, "schema");
    open(stateDir).close();
    const db = new DatabaseSync(join(stateDir, inboxFileName(CLUSTER)));
    const columns = (table: string) =>
      (db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>).map((c) => c.name);
    assert.deepEqual(columns("messages"), [
      "seq",
      "envelope_id",
      "sender_id",
      "sender_app_id",
      "recipient_id",
      "payload",
      "block",
      "tx_hash",
      "log_index",
    ]);
    assert.deepEqual(columns("seen"), ["envelope_key", "seq"]);
    assert.deepEqual(
      (db.prepare("SELECT key FROM meta ORDER BY key").all() as Array<{ key: string }>).map((r) => r.key),
      ["acked", "cluster", "format", "last_seq", "space", "version"],
    );
    db.close();
  });
});

// ---------------------------------------------------------------------------------------------------

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const BIN = join(ROOT, "sidecar", "src", "bin.mjs");
/** Hardhat's development accounts #3 and #4 pay the two sidecars' gas (#0..#2 are the fixture's). */
const RECIPIENT_GAS_KEY: Hex = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
const SENDER_GAS_KEY: Hex = "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a";

describe("a sidecar killed with SIGKILL", { timeout: 300_000 }, () => {
  let fx: ClusterFixture;
  let dir: string;
  let rpc: Awaited<ReturnType<typeof serveRpc>>;
  let simulator: Awaited<ReturnType<typeof startDstackSimulator>>;
  let sender: Sidecar;
  // Member apps of the cluster (factory clones): only their members' certificates verify.
  let recipientApp: Address;
  let senderApp: Address;
  let child: ChildProcess | undefined;
  let output = "";
  let socket: string;
  let stateDir: string;

  function spawnRecipient(): ChildProcess {
    const env = {
      PATH: process.env.PATH ?? "",
      ATTESTMESH_RPC_URL: rpc.url,
      ATTESTMESH_CLUSTER: fx.deployed.diamond,
      ATTESTMESH_CHAIN_ID: String(fx.chainId),
      ATTESTMESH_CONFIRMATIONS: "0",
      ATTESTMESH_POLL_INTERVAL_MS: "150",
      ATTESTMESH_GAS_KEY: RECIPIENT_GAS_KEY,
      ATTESTMESH_INDEXER: "off",
      DSTACK_SIMULATOR_ENDPOINT: join(dir, "dstack.sock"),
      ...TEST_SIDECAR_ENV,
      ATTESTMESH_API_SOCKET: socket,
      ATTESTMESH_STATE_DIR: stateDir,
    };
    const proc = spawn(process.execPath, [BIN], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    proc.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    proc.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    return proc;
  }

  /** Starts the recipient as the real binary and waits until it is a member with its API up. */
  async function startRecipient(): Promise<{ memberId: string; space: string }> {
    const proc = spawnRecipient();
    return waitFor(
      "the recipient to be a member with its API up",
      async () => {
        if (proc.exitCode !== null) throw new Error(`the sidecar exited early:\n${output.slice(-4000)}`);
        const res = await apiRequest(socket, "GET", "/v1/status").catch(() => undefined);
        const body = res?.body as { memberId: string | null; messages: { space: string } } | undefined;
        return body?.memberId ? { memberId: body.memberId, space: body.messages.space } : undefined;
      },
      60_000,
      100,
    );
  }

  async function kill(): Promise<void> {
    const proc = child!;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGKILL");
    await exited;
    assert.equal(proc.signalCode, "SIGKILL");
    child = undefined;
  }

  const messagesIn = (stream: NdjsonStream) => stream.lines.filter((l) => l.type === "message");

  /** Opens the stream as an application that resumes would (no since), and collects what it gives. */
  async function read(): Promise<{
    hello: Record<string, unknown>;
    messages: Array<Record<string, unknown>>;
  }> {
    const stream = await openStream(socket, "/v1/messages/stream");
    await waitFor("hello", () => stream.lines.length >= 1 || undefined);
    await delay(300);
    stream.close();
    return { hello: stream.lines[0]!, messages: messagesIn(stream) };
  }

  async function send(to: string, text: string): Promise<Hex> {
    const res = await postJson(join(dir, "sender.sock"), "/v1/messages", { to, text });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return (res.body as { envelopeId: Hex }).envelopeId;
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "am-crash-"));
    socket = join(dir, "recipient.sock");
    stateDir = join(dir, "state");
    fx = await setupCluster();
    recipientApp = (await createMemberApp(fx)).appId;
    senderApp = (await createMemberApp(fx)).appId;
    rpc = await serveRpc(fx.connection.provider);
    // Both sidecars verify member certificates against the trust values their compose pins; the
    // recipient runs as the real binary, so its compose also pins its one RPC provider.
    const trust = await fixtureTrust(fx);
    const recipientCompose = devnetAppCompose("v0", { ...trust, providers: [new URL(rpc.url).origin] });
    await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.owner.write.addComposeHash([toHex(sha256(new TextEncoder().encode(recipientCompose)))]),
    });
    simulator = await startDstackSimulator({
      socketPath: join(dir, "dstack.sock"),
      cvm: createSimulatedCvm({
        kmsRoot: fx.kmsRoot,
        appId: hexToBytes(recipientApp),
        appCompose: recipientCompose,
      }),
      logger: captureLogger("silent").logger,
    });
    const cvm = createSimulatedCvm({ kmsRoot: fx.kmsRoot, appId: hexToBytes(senderApp) });
    sender = await startSidecar(
      parseConfig({
        ATTESTMESH_RPC_URL: "http://127.0.0.1:1",
        ATTESTMESH_CLUSTER: fx.deployed.diamond,
        ATTESTMESH_CHAIN_ID: String(fx.chainId),
        ATTESTMESH_CONFIRMATIONS: "0",
        ATTESTMESH_POLL_INTERVAL_MS: "150",
        ATTESTMESH_GAS_KEY: SENDER_GAS_KEY,
        ATTESTMESH_INDEXER: "off",
        ATTESTMESH_WG_MODE: "memory",
        ATTESTMESH_HEALTH_HOST: "127.0.0.1",
        ATTESTMESH_HEALTH_PORT: "0",
        ATTESTMESH_REGISTER_MAX_BACKOFF_MS: "400",
        ATTESTMESH_API_SOCKET: join(dir, "sender.sock"),
      }),
      {
        logger: captureLogger("silent").logger,
        backend: createMemoryBackend(),
        keySource: simulatorKeySource(cvm),
        transport: custom(fx.connection.provider),
        trust,
        initialBackoffMs: 100,
      },
    );
    await waitFor("the sender to register", () => sender.status().memberId !== undefined, 60_000);
  });

  after(async () => {
    if (child !== undefined && child.exitCode === null) child.kill("SIGKILL");
    await sender?.stop("test over");
    await sender?.done;
    await simulator?.close();
    await rpc?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("a message that arrived before the crash is delivered after the restart, until acknowledged", async () => {
    const { memberId, space } = await startRecipient();

    // 1. The message arrives and is stored; the application has not read it yet. SIGKILL.
    const envelopeId = await send(memberId, "arrived before the crash");
    await waitFor("the recipient to receive it", () =>
      output.split("\n").some((l) => l.includes('"message received"') && l.includes(envelopeId)),
    );
    await kill();

    // 2. After the restart the application reads it, in the same sequence space. It does not ack. SIGKILL.
    assert.deepEqual(await startRecipient(), { memberId, space }, "same member, same sequence space");
    let got = await read();
    assert.equal(got.hello.space, space);
    assert.deepEqual(
      got.messages.map((m) => [m.seq, m.envelopeId, m.text]),
      [[1, envelopeId, "arrived before the crash"]],
    );
    await kill();

    // 3. Read but not acknowledged: delivered again (at least once), with the same sequence number.
    await startRecipient();
    got = await read();
    assert.deepEqual(
      got.messages.map((m) => [m.seq, m.envelopeId]),
      [[1, envelopeId]],
    );
    const ack = await postJson(socket, "/v1/messages/ack", { seq: 1, space });
    assert.equal(ack.status, 200, JSON.stringify(ack.body));
    // 4. The ack was answered, so it survives an immediate SIGKILL: nothing is delivered again.
    await kill();
    await startRecipient();
    got = await read();
    assert.equal(got.hello.acked, 1);
    assert.deepEqual(got.messages, [], "an acknowledged message is not delivered again");

    // 5. The sequence continues; the next message is number 2.
    const next = await send(memberId, "after the acknowledgement");
    const stream = await openStream(socket, "/v1/messages/stream");
    await waitFor("the next message", () => messagesIn(stream).length >= 1, 30_000);
    assert.deepEqual(
      messagesIn(stream).map((m) => [m.seq, m.envelopeId, m.text]),
      [[2, next, "after the acknowledgement"]],
    );
    stream.close();

    // 6. At rest: the payloads the application receives, and none of the node's keys or the gas key.
    const cvm = createSimulatedCvm({ kmsRoot: fx.kmsRoot, appId: hexToBytes(recipientApp) });
    const secrets: Array<[string, Uint8Array]> = [
      ["member key", cvm.getKey(MEMBER_KEY.path, MEMBER_KEY.purpose, "secp256k1").key],
      ["identity key", cvm.getKey(IDENTITY_KEY.path, IDENTITY_KEY.purpose, "ed25519").key],
      ["wireguard key", cvm.getKey(WIREGUARD_KEY.path, WIREGUARD_KEY.purpose, "ed25519").key],
      ["gas key", hexToBytes(RECIPIENT_GAS_KEY)],
    ];
    const csk = await apiRequest(socket, "GET", "/v1/cluster-shared-key");
    if (csk.status === 200) secrets.push(["cluster shared key", hexToBytes((csk.body as { key: Hex }).key)]);
    await kill();
    const files = (await readdir(stateDir)).filter((f) => f.startsWith("inbox-"));
    assert.ok(files.length >= 1, files.join(", "));
    const atRest = Buffer.concat(await Promise.all(files.map((f) => readFile(join(stateDir, f)))));
    assert.ok(
      atRest.includes(Buffer.from("after the acknowledgement")),
      "the unacknowledged payload is kept",
    );
    for (const [what, bytes] of secrets) {
      assert.ok(!atRest.includes(Buffer.from(bytes)), `no ${what} at rest`);
      assert.ok(!atRest.includes(Buffer.from(bytesToHex(bytes).slice(2))), `no ${what} (hex) at rest`);
    }
  });

  test("the binary refuses a corrupt inbox with a clear error, and leaves the file for the operator", async () => {
    const path = join(stateDir, inboxFileName(fx.deployed.diamond));
    const garbage = randomBytes(4096);
    await writeFile(path, garbage);
    await rm(`${path}-wal`, { force: true });
    output = "";
    const proc = spawnRecipient();
    const code = await new Promise<number | null>((resolve) => proc.once("exit", resolve));
    child = undefined;
    assert.equal(code, 1);
    const fatal = output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { level: number; msg: string; err?: { code?: string; message?: string } })
      .find((l) => l.level === 60);
    assert.ok(fatal, output.slice(-2000));
    assert.equal(fatal.err?.code, "InboxCorrupt");
    assert.ok(fatal.err?.message?.includes(path), "the error names the file");
    assert.match(fatal.err?.message ?? "", /move the file aside/, "and says what to do");
    assert.deepEqual(await readFile(path), garbage, "the file is untouched");
  });
});
