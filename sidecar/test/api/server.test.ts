// The application API over a real unix socket: permissions, every endpoint, bad requests that change
// nothing, acknowledging and pruning received messages, a slow message reader that loses nothing, and
// a slow peer-event subscriber that loses its oldest items and is told how many.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { type Address, bytesToHex, type Hex } from "viem";
import { type AppApi, startAppApi } from "../../src/api/app.ts";
import type { CskReader, PeerLiveness, PeerLivenessEntry } from "../../src/api/providers.ts";
import { listenUnix, resolveGroup } from "../../src/api/socket.ts";
import { cskCommitment, type HeldCsk } from "../../src/csk/holder.ts";
import { AttestmeshError, fatalError, retryableError } from "../../src/errors.ts";
import type { HeartbeatEvent } from "../../src/heartbeat/service.ts";
import type { MessageSender, SentMessage } from "../../src/messages/sender.ts";
import type { ReceivedMessage } from "../../src/messages/types.ts";
import { secret } from "../../src/secret.ts";
import { createStatusStore } from "../../src/status.ts";
import { apiRequest, openStream, postJson } from "../api-client.ts";
import { captureLogger, HEALTHY_FACTS, waitFor } from "../helpers.ts";

const APP: Address = "0x00000000000000000000000000000000000000aA";
const CLUSTER: Address = "0x00000000000000000000000000000000000000cC";

/** Records what it was asked to send; `fail` makes the next send throw. */
function recordingSender(max = 100) {
  const sent: Array<{ to: bigint; payload: Uint8Array }> = [];
  let fail: AttestmeshError | undefined;
  const sender: MessageSender = {
    async send(to, payload): Promise<SentMessage> {
      if (fail !== undefined) {
        const error = fail;
        fail = undefined;
        throw error;
      }
      sent.push({ to, payload });
      return {
        envelopeId: `0x${"11".repeat(32)}`,
        senderId: 1n,
        recipientId: to,
        txHash: `0x${"22".repeat(32)}`,
        blockNumber: 9n,
      };
    },
    maxPayloadBytes: () => max,
  };
  return { sender, sent, failNext: (error: AttestmeshError) => (fail = error) };
}

function received(seq: number, payload: Uint8Array): ReceivedMessage {
  return {
    envelopeId: bytesToHex(randomBytes(32)),
    senderId: 3n,
    senderAppId: APP,
    recipientId: 1n,
    payload,
    blockNumber: BigInt(seq),
    txHash: bytesToHex(randomBytes(32)) as Hex,
    logIndex: 0,
  };
}

describe("application API over a unix socket", () => {
  let dir: string;
  let socket: string;
  let api: AppApi;
  const controller = new AbortController();
  const log = captureLogger("silent");
  const status = createStatusStore({ logger: log.logger });
  const recorder = recordingSender();
  let peers: PeerLivenessEntry[] = [];
  const liveness: PeerLiveness = { source: "test", peers: () => peers };
  let csk: HeldCsk | undefined;
  const holder: CskReader = { current: () => csk };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "am-api-"));
    socket = join(dir, "run", "api.sock");
    api = await startAppApi({
      socketPath: socket,
      socketGroup: undefined,
      queueLength: 8,
      stateDir: join(dir, "state"),
      cluster: CLUSTER,
      inboxMaxMessages: 100_000,
      status: status.get,
      liveness,
      csk: holder,
      signal: controller.signal,
      logger: log.logger,
      peerEventIntervalMs: 20,
    });
  });

  after(async () => {
    controller.abort();
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("the socket is mode 0600 and owned by this user", async () => {
    const info = await stat(socket);
    assert.ok(info.isSocket());
    assert.equal(info.mode & 0o777, 0o600);
    assert.equal(info.uid, process.getuid!());
    assert.equal(api.socketPath, socket);
  });

  test("GET /v1/status: the sidecar's status as JSON", async () => {
    status.update({ appId: APP, memberId: 1n, meshIp: "10.77.0.1", interfaceUp: true });
    const res = await apiRequest(socket, "GET", "/v1/status");
    assert.equal(res.status, 200);
    const body = res.body as Record<string, unknown>;
    assert.equal(body.phase, "booting");
    assert.equal(body.healthy, false);
    assert.equal(body.memberId, "1");
    assert.equal(body.appId, APP);
    assert.deepEqual(body.messages, {
      space: api.inbox!.space,
      lastSeq: api.inbox!.lastSeq(),
      acked: api.inbox!.acked(),
      pending: api.inbox!.pending(),
      subscribers: 0,
    });
  });

  test("GET /v1/self: ids and public keys only, null before the keys exist", async () => {
    let body = (await apiRequest(socket, "GET", "/v1/self")).body as Record<string, unknown>;
    assert.equal(body.identityPublicKey, null);
    api.setSelfKeys({
      memberAddress: "0x0000000000000000000000000000000000000001",
      identityPublicKey: `0x${"33".repeat(32)}`,
      x25519PublicKey: `0x${"44".repeat(32)}`,
      wireguardPublicKey: "wg=",
    });
    body = (await apiRequest(socket, "GET", "/v1/self")).body as Record<string, unknown>;
    assert.deepEqual(body, {
      memberId: "1",
      appId: APP,
      meshIp: "10.77.0.1",
      phase: "booting",
      memberAddress: "0x0000000000000000000000000000000000000001",
      identityPublicKey: `0x${"33".repeat(32)}`,
      x25519PublicKey: `0x${"44".repeat(32)}`,
      wireguardPublicKey: "wg=",
    });
  });

  test("GET /v1/peers: member id, app id, mesh IP, live, last heartbeat, live attestation", async () => {
    peers = [
      { memberId: 2n, appId: APP, meshIp: "10.77.0.2", live: true, lastHeartbeatMs: Date.UTC(2026, 0, 1) },
      { memberId: 3n, appId: APP, meshIp: "10.77.0.3", live: false, lastHeartbeatMs: undefined },
    ];
    // Peer 2's live attestation passed; peer 4's was refused, so it is no peer any more.
    status.update({
      peerAttestations: [
        {
          memberId: 2n,
          status: "passed",
          kind: "simulated",
          composeHash: "ab".repeat(32),
          verifiedAt: Date.UTC(2026, 0, 1),
          nextAt: Date.UTC(2026, 0, 1, 0, 10),
          verifications: 1,
        },
        {
          memberId: 4n,
          status: "failed",
          reason: "ReportDataMismatch",
          detail: "bound to other keys",
          nextAt: Number.POSITIVE_INFINITY,
          verifications: 1,
        },
      ],
    });
    const res = await apiRequest(socket, "GET", "/v1/peers");
    assert.equal(res.status, 200);
    const passed = {
      memberId: "2",
      status: "passed",
      kind: "simulated",
      reason: null,
      detail: null,
      composeHash: "ab".repeat(32),
      deviceId: null,
      tcbStatus: null,
      verifiedAt: "2026-01-01T00:00:00.000Z",
      nextAt: "2026-01-01T00:10:00.000Z",
      verifications: 1,
    };
    const refused = {
      memberId: "4",
      status: "failed",
      kind: null,
      reason: "ReportDataMismatch",
      detail: "bound to other keys",
      composeHash: null,
      deviceId: null,
      tcbStatus: null,
      verifiedAt: null,
      nextAt: null,
      verifications: 1,
    };
    assert.deepEqual(res.body, {
      source: "test",
      peers: [
        {
          memberId: "2",
          appId: APP,
          meshIp: "10.77.0.2",
          live: true,
          lastHeartbeat: "2026-01-01T00:00:00.000Z",
          attestation: passed,
        },
        {
          memberId: "3",
          appId: APP,
          meshIp: "10.77.0.3",
          live: false,
          lastHeartbeat: null,
          attestation: null,
        },
      ],
      attestations: [passed, refused],
    });
    status.update({ peerAttestations: [] });
  });

  test("GET /v1/cluster-shared-key: 503 unless healthy and held, then key and epoch", async () => {
    let res = await apiRequest(socket, "GET", "/v1/cluster-shared-key");
    assert.equal(res.status, 503);
    assert.equal((res.body as { error: { code: string } }).error.code, "NotHealthy");
    status.update(HEALTHY_FACTS);
    assert.equal(status.get().phase, "healthy");
    res = await apiRequest(socket, "GET", "/v1/cluster-shared-key");
    assert.equal(res.status, 503);
    assert.equal((res.body as { error: { code: string } }).error.code, "CskUnavailable");
    csk = heldCsk(4n, 0xab);
    res = await apiRequest(socket, "GET", "/v1/cluster-shared-key");
    assert.equal(res.status, 200);
    assert.equal(res.headers["cache-control"], "no-store");
    assert.deepEqual(res.body, { epoch: "4", key: `0x${"ab".repeat(32)}` });
    api.setCskHolder({ current: () => heldCsk(5n, 0xcd) });
    res = await apiRequest(socket, "GET", "/v1/cluster-shared-key");
    assert.deepEqual(
      res.body,
      { epoch: "5", key: `0x${"cd".repeat(32)}` },
      "a holder attached later is used",
    );
    status.update({ wireguard: "configuring" });
    assert.equal(status.get().phase, "wg-configuring");
    assert.equal(
      (await apiRequest(socket, "GET", "/v1/cluster-shared-key")).status,
      503,
      "not when unhealthy",
    );
  });

  test("POST /v1/messages: 503 before a sender exists, then text and base64 bodies are sent", async () => {
    let res = await postJson(socket, "/v1/messages", { to: "2", text: "hi" });
    assert.equal(res.status, 503);
    assert.equal((res.body as { error: { code: string } }).error.code, "NotReady");
    api.setSender(recorder.sender);
    res = await postJson(socket, "/v1/messages", { to: "2", text: "héllo" });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      envelopeId: `0x${"11".repeat(32)}`,
      from: "1",
      to: "2",
      txHash: `0x${"22".repeat(32)}`,
      block: "9",
    });
    res = await postJson(socket, "/v1/messages", {
      to: 3,
      base64: Buffer.from([0, 255, 7]).toString("base64"),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(
      recorder.sent.map((s) => [s.to, Buffer.from(s.payload).toString("hex")]),
      [
        [2n, Buffer.from("héllo").toString("hex")],
        [3n, "00ff07"],
      ],
    );
  });

  test("bad requests get a 4xx with a JSON error and send nothing", async () => {
    api.setSender(recorder.sender);
    const before = recorder.sent.length;
    /** A POST of `body` as JSON to /v1/messages. */
    const post = (body: unknown) => () => postJson(socket, "/v1/messages", body);
    /** A POST of `body` as it is to `path`, labelled `contentType`. */
    const postRaw = (path: string, body: string, contentType: string) => () =>
      apiRequest(socket, "POST", path, { body, headers: { "content-type": contentType } });
    const cases: Array<[string, () => Promise<{ status: number; body: unknown }>, number, string]> = [
      ["unknown path", () => apiRequest(socket, "GET", "/v1/nope"), 404, "NotFound"],
      ["root", () => apiRequest(socket, "GET", "/"), 404, "NotFound"],
      ["GET on messages", () => apiRequest(socket, "GET", "/v1/messages"), 405, "MethodNotAllowed"],
      ["POST on status", () => postJson(socket, "/v1/status", {}), 405, "MethodNotAllowed"],
      ["DELETE on peers", () => apiRequest(socket, "DELETE", "/v1/peers"), 405, "MethodNotAllowed"],
      ["text/plain body", postRaw("/v1/messages", "hi", "text/plain"), 415, "UnsupportedMediaType"],
      ["not JSON", postRaw("/v1/messages", "{", "application/json"), 400, "InvalidJson"],
      ["an array", post([1]), 400, "InvalidBody"],
      ["a string", post("hi"), 400, "InvalidBody"],
      ["an unknown field", post({ to: "2", text: "x", ttl: 5 }), 400, "UnknownField"],
      ["no recipient", post({ text: "x" }), 400, "InvalidRecipient"],
      ["recipient 0", post({ to: "0", text: "x" }), 400, "InvalidRecipient"],
      ["recipient -1", post({ to: -1, text: "x" }), 400, "InvalidRecipient"],
      ["recipient 1.5", post({ to: 1.5, text: "x" }), 400, "InvalidRecipient"],
      ["recipient hex", post({ to: "0x2", text: "x" }), 400, "InvalidRecipient"],
      ["recipient above uint64", post({ to: "18446744073709551616", text: "x" }), 400, "InvalidRecipient"],
      ["no payload", post({ to: "2" }), 400, "InvalidPayload"],
      ["both payloads", post({ to: "2", text: "a", base64: "YQ==" }), 400, "InvalidPayload"],
      ["text not a string", post({ to: "2", text: 5 }), 400, "InvalidPayload"],
      ["empty text", post({ to: "2", text: "" }), 400, "InvalidPayload"],
      ["bad base64", post({ to: "2", base64: "a$b=" }), 400, "InvalidPayload"],
      ["unpadded base64", post({ to: "2", base64: "YQ" }), 400, "InvalidPayload"],
      ["payload over the cap", post({ to: "2", text: "x".repeat(101) }), 413, "PayloadTooLarge"],
      ["body over 16 KiB", post({ to: "2", text: "x".repeat(17_000) }), 413, "BodyTooLarge"],
      ["bad since", () => apiRequest(socket, "GET", "/v1/messages/stream?since=-1"), 400, "InvalidSince"],
      ["ack: GET", () => apiRequest(socket, "GET", "/v1/messages/ack"), 405, "MethodNotAllowed"],
      [
        "ack: text/plain",
        postRaw("/v1/messages/ack", '{"seq":1}', "text/plain"),
        415,
        "UnsupportedMediaType",
      ],
      ["ack: not JSON", postRaw("/v1/messages/ack", "{", "application/json"), 400, "InvalidJson"],
      ["ack: an array", () => postJson(socket, "/v1/messages/ack", [1]), 400, "InvalidBody"],
      ["ack: no seq", () => postJson(socket, "/v1/messages/ack", {}), 400, "InvalidSeq"],
      ["ack: seq 0", () => postJson(socket, "/v1/messages/ack", { seq: 0 }), 400, "InvalidSeq"],
      ["ack: seq -1", () => postJson(socket, "/v1/messages/ack", { seq: -1 }), 400, "InvalidSeq"],
      ["ack: seq 1.5", () => postJson(socket, "/v1/messages/ack", { seq: 1.5 }), 400, "InvalidSeq"],
      ["ack: seq hex", () => postJson(socket, "/v1/messages/ack", { seq: "0x1" }), 400, "InvalidSeq"],
      [
        "ack: an unknown field",
        () => postJson(socket, "/v1/messages/ack", { seq: 1, all: true }),
        400,
        "UnknownField",
      ],
      [
        "ack: space not a string",
        () => postJson(socket, "/v1/messages/ack", { seq: 1, space: 7 }),
        400,
        "InvalidSpace",
      ],
      [
        "ack: a seq never delivered",
        () => postJson(socket, "/v1/messages/ack", { seq: api.inbox!.lastSeq() + 1 }),
        409,
        "SeqNotDelivered",
      ],
      [
        "bad since word",
        () => apiRequest(socket, "GET", "/v1/peer-events/stream?since=first"),
        400,
        "InvalidSince",
      ],
    ];
    for (const [what, call, status, code] of cases) {
      const res = await call();
      assert.equal(res.status, status, what);
      const error = (res.body as { error: { code: string; message: string } }).error;
      assert.equal(error.code, code, what);
      assert.ok(error.message.length > 10, `${what}: the message says what to do`);
    }
    assert.equal(recorder.sent.length, before, "nothing was sent");
    assert.equal(api.inbox!.acked(), 0, "nothing was acknowledged");
  });

  test("a send the sidecar or the chain refuses maps to a clear status", async () => {
    api.setSender(recorder.sender);
    const cases: Array<[AttestmeshError, number]> = [
      [fatalError("RecipientNotFound", "member 9 is not an active member"), 404],
      [retryableError("NotRegistered", "not a member yet"), 503],
      [fatalError("GasKeyMissing", "set ATTESTMESH_GAS_KEY"), 503],
      [fatalError("EnvelopeAlreadyDelivered", "refused"), 409],
      [retryableError("RpcError", "the chain is unreachable"), 502],
    ];
    for (const [error, status] of cases) {
      recorder.failNext(error);
      const res = await postJson(socket, "/v1/messages", { to: "9", text: "x" });
      assert.equal(res.status, status, error.code);
      assert.deepEqual(res.body, { error: { code: error.code, message: error.message } });
    }
  });

  test("GET /v1/messages/stream: hello, retained messages, then live ones; since= picks up after a seq", async () => {
    const first = api.deliver(received(1, new TextEncoder().encode("one")))!;
    const stream = await openStream(socket, "/v1/messages/stream");
    api.deliver(received(2, new Uint8Array([0xff, 0xfe])));
    await waitFor(
      "two messages",
      () => stream.lines.filter((l) => l.type === "message").length >= 2 || undefined,
    );
    const [hello, ...rest] = stream.lines;
    assert.equal(hello!.type, "hello");
    assert.equal(hello!.stream, "messages");
    assert.equal(hello!.space, api.inbox!.space);
    assert.equal(hello!.acked, api.inbox!.acked());
    const one = rest.find((l) => l.seq === first)!;
    assert.equal(one.text, "one");
    assert.equal(one.base64, Buffer.from("one").toString("base64"));
    assert.deepEqual(one.from, { memberId: "3", appId: APP });
    assert.equal(one.to, "1");
    const binary = rest.find((l) => l.seq === first + 1)!;
    assert.equal(binary.text, null, "not UTF-8: base64 only");
    assert.equal(binary.base64, Buffer.from([0xff, 0xfe]).toString("base64"));
    stream.close();

    const tail = await openStream(socket, `/v1/messages/stream?since=${first}`);
    await waitFor("the tail", () => tail.lines.some((l) => l.type === "message") || undefined);
    await delay(50);
    assert.deepEqual(
      tail.lines.filter((l) => l.type === "message").map((l) => l.seq),
      [first + 1],
    );
    tail.close();
    const latest = await openStream(socket, "/v1/messages/stream?since=latest");
    await delay(50);
    assert.deepEqual(
      latest.lines.map((l) => l.type),
      ["hello"],
    );
    latest.close();
    await waitFor("subscribers to be released", async () => {
      const body = (await apiRequest(socket, "GET", "/v1/status")).body as {
        messages: { subscribers: number };
      };
      return body.messages.subscribers === 0 || undefined;
    });
  });

  test("POST /v1/messages/ack: acknowledged messages are pruned; a stream without since resumes after them", async () => {
    const inbox = api.inbox!;
    const seqs = ["a", "b", "c"].map((t) => api.deliver(received(1, new TextEncoder().encode(t)))!);
    const pendingBefore = inbox.pending();
    let res = await postJson(socket, "/v1/messages/ack", { seq: seqs[1], space: inbox.space });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body, {
      space: inbox.space,
      acked: seqs[1],
      pruned: pendingBefore - 1,
      lastSeq: seqs[2],
      pending: 1,
    });
    const texts = async (path: string) => {
      const stream = await openStream(socket, path);
      await waitFor("hello", () => stream.lines.length >= 1 || undefined);
      await delay(80);
      stream.close();
      return {
        hello: stream.lines[0]!,
        texts: stream.lines.filter((l) => l.type === "message").map((l) => [l.seq, l.text]),
      };
    };
    const resumed = await texts("/v1/messages/stream");
    assert.equal(resumed.hello.acked, seqs[1]);
    assert.deepEqual(resumed.texts, [[seqs[2], "c"]], "only the unacknowledged message, again");
    assert.deepEqual((await texts("/v1/messages/stream?since=all")).texts, [[seqs[2], "c"]]);
    assert.deepEqual(
      (await texts(`/v1/messages/stream?since=${seqs[0]}`)).texts,
      [[seqs[2], "c"]],
      "pruned messages are gone whatever since says",
    );
    res = await postJson(socket, "/v1/messages/ack", { seq: String(seqs[0]) });
    assert.equal(res.status, 200);
    assert.deepEqual(
      [(res.body as { acked: number }).acked, (res.body as { pruned: number }).pruned],
      [seqs[1], 0],
      "an older ack changes nothing",
    );
    res = await postJson(socket, "/v1/messages/ack", { seq: seqs[2], space: "another-space" });
    assert.equal(res.status, 409);
    assert.equal((res.body as { error: { code: string } }).error.code, "SpaceMismatch");
    assert.equal(inbox.acked(), seqs[1], "a refused ack changes nothing");
    res = await postJson(socket, "/v1/messages/ack", { seq: seqs[2] });
    assert.equal((res.body as { pending: number }).pending, 0);
    assert.deepEqual((await texts("/v1/messages/stream")).texts, []);
  });

  test("GET /v1/peer-events/stream: a snapshot, then joined/up/down/left as they happen", async () => {
    peers = [{ memberId: 2n, appId: APP, meshIp: "10.77.0.2", live: true, lastHeartbeatMs: 1000 }];
    await delay(60);
    const stream = await openStream(socket, "/v1/peer-events/stream");
    peers = [
      { memberId: 2n, appId: APP, meshIp: "10.77.0.2", live: false, lastHeartbeatMs: 1000 },
      { memberId: 5n, appId: APP, meshIp: "10.77.0.5", live: false, lastHeartbeatMs: undefined },
    ];
    await waitFor("two events", () => stream.lines.length >= 3 || undefined);
    peers = [{ memberId: 5n, appId: APP, meshIp: "10.77.0.5", live: true, lastHeartbeatMs: 2000 }];
    await waitFor("two more", () => stream.lines.length >= 5 || undefined);
    const [hello, ...events] = stream.lines;
    assert.equal(hello!.type, "hello");
    assert.deepEqual(hello!.peers, [
      {
        memberId: "2",
        appId: APP,
        meshIp: "10.77.0.2",
        live: true,
        lastHeartbeat: "1970-01-01T00:00:01.000Z",
      },
    ]);
    assert.deepEqual(
      events.map((e) => `${e.event}:${e.memberId}`),
      ["down:2", "joined:5", "up:5", "left:2"],
    );
    stream.close();
  });

  test("a liveness source attached later (heartbeats) replaces the handshake view in peers and events", async () => {
    const stream = await openStream(socket, "/v1/peer-events/stream?since=latest");
    const heartbeats: PeerLivenessEntry[] = [
      { memberId: 5n, appId: APP, meshIp: "10.77.0.5", live: true, lastHeartbeatMs: 2000 },
      { memberId: 6n, appId: APP, meshIp: "10.77.0.6", live: true, lastHeartbeatMs: 3000 },
    ];
    // The heartbeat module's peer table has no `source`: it is the heartbeat evidence.
    let emit: ((event: HeartbeatEvent) => void) | undefined;
    api.setPeerLiveness({
      peers: () => heartbeats,
      onEvent(listener) {
        emit = listener;
        return () => {
          emit = undefined;
        };
      },
    });
    const res = await apiRequest(socket, "GET", "/v1/peers");
    assert.equal((res.body as { source: string }).source, "heartbeat");
    await waitFor(
      "member 6 to join",
      () => stream.lines.some((l) => l.memberId === "6" && l.event === "up") || undefined,
    );
    emit!({ type: "converged", live: [5n, 6n], at: 1 });
    emit!({ type: "peer-live", memberId: 5n, at: 2 });
    emit!({ type: "diverged", at: 3 });
    await waitFor("convergence events", () => stream.lines.some((l) => l.event === "diverged") || undefined);
    assert.deepEqual(
      stream.lines
        .filter((l) => l.event === "converged" || l.event === "diverged")
        .map((l) => [l.event, l.live]),
      [
        ["converged", ["5", "6"]],
        ["diverged", undefined],
      ],
      "convergence is forwarded; the source's own peer events are not repeated",
    );
    api.setPeerLiveness(liveness);
    assert.equal(emit, undefined, "the replaced source is unsubscribed");
    stream.close();
  });

  test("a slow message reader loses nothing: every message arrives in order once it reads again", async () => {
    const total = 3000;
    const payload = new Uint8Array(2048).fill(0x61);
    const stream = await openStream(socket, "/v1/messages/stream?since=latest");
    await waitFor("hello", () => stream.lines.length >= 1 || undefined);
    stream.pause();
    const firstSeq = api.inbox!.lastSeq() + 1;
    // About 7 MB of lines: far more than the socket buffers hold; the rest waits in the inbox, not in
    // memory. Measured as live JavaScript memory after a full collection, which (unlike RSS) does not
    // move with the allocator's or the collector's timing.
    const liveBefore = liveMemory();
    for (let i = 0; i < total; i++) {
      api.deliver(received(i, payload));
      if (i % 100 === 0) await delay(1);
    }
    const lastSeq = api.inbox!.lastSeq();
    assert.equal(lastSeq, firstSeq + total - 1);
    const held = liveMemory() - liveBefore;
    // Holding the backlog costs about three times its payload bytes (measured: 18 MB); half of them
    // leaves room for the collector's and the compiler's own variation (measured up to 1.7 MB).
    const backlog = total * payload.length;
    assert.ok(
      held < backlog / 2,
      `the backlog was not held in memory (${held} bytes more live while paused)`,
    );
    stream.resume();
    await waitFor("the last message", () => stream.lines.some((l) => l.seq === lastSeq) || undefined, 30_000);
    assert.ok(!stream.lines.some((l) => l.type === "lost"), "nothing lost");
    const seqs = stream.lines.filter((l) => l.type === "message").map((m) => m.seq as number);
    assert.deepEqual(
      seqs,
      Array.from({ length: total }, (_, i) => firstSeq + i),
      "every message, once, in order",
    );
    stream.close();
  });

  test("a slow peer-event subscriber loses its oldest items, is told how many, and the rest arrive in order", async () => {
    const total = 3000;
    // Converged events naming 300 members: about 2.4 KB a line, 7 MB in all.
    const live = Array.from({ length: 300 }, (_, i) => BigInt(1000 + i));
    const stream = await openStream(socket, "/v1/peer-events/stream?since=latest");
    await waitFor("hello", () => stream.lines.length >= 1 || undefined);
    stream.pause();
    const firstSeq = api.peerEvents.lastSeq() + 1;
    for (let i = 0; i < total; i++) {
      api.peerEvents.publish({ kind: "converged", live });
      if (i % 100 === 0) await delay(1);
    }
    const lastSeq = api.peerEvents.lastSeq();
    stream.resume();
    await waitFor("the last event", () => stream.lines.some((l) => l.seq === lastSeq) || undefined, 30_000);
    const events = stream.lines.filter((l) => l.type === "peer" && l.event === "converged");
    const lost = stream.lines
      .filter((l) => l.type === "lost")
      .reduce((sum, l) => sum + (l.count as number), 0);
    assert.ok(lost > 0, "the slow subscriber lost items");
    assert.equal(events.length + lost, total, "every item is either delivered or counted as lost");
    const seqs = events.map((m) => m.seq as number);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, "in order, no repeats");
    assert.ok(seqs[0]! >= firstSeq);
    // The items kept are the newest: the queue's capacity (8) of them arrive after the last loss.
    const lastLost = stream.lines.findLastIndex((l) => l.type === "lost");
    assert.ok(stream.lines.slice(lastLost + 1).length <= 8 + 1);
    stream.close();
  });

  test("a fast subscriber next to a stalled one receives everything", async () => {
    const stalled = await openStream(socket, "/v1/messages/stream?since=latest");
    stalled.pause();
    const fast = await openStream(socket, "/v1/messages/stream?since=latest");
    await waitFor("hello", () => fast.lines.length >= 1 || undefined);
    const start = api.inbox!.lastSeq();
    for (let i = 0; i < 200; i++) api.deliver(received(i, new Uint8Array([i & 0xff])));
    await waitFor(
      "all 200",
      () => fast.lines.filter((l) => l.type === "message").length === 200 || undefined,
    );
    assert.ok(!fast.lines.some((l) => l.type === "lost"));
    assert.equal(fast.lines.at(-1)!.seq, start + 200);
    stalled.close();
    fast.close();
  });
});

describe("the API socket file", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "am-sock-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const serve = async (path: string, gid?: number) => {
    const server = createServer();
    return listenUnix(server, path, { gid });
  };

  test("with a group: mode 0660 and that group", async () => {
    const gid = resolveGroup("65534");
    const listener = await serve(join(dir, "g.sock"), gid);
    const info = await stat(join(dir, "g.sock"));
    assert.equal(info.mode & 0o777, 0o660);
    assert.equal(info.gid, 65534);
    await listener.close();
  });

  test("group names resolve through the group file; unknown names are refused", async () => {
    const file = join(dir, "group");
    await writeFile(file, "root:x:0:\nappusers:x:1234:alice\n");
    assert.equal(resolveGroup("appusers", file), 1234);
    assert.equal(resolveGroup("42", file), 42);
    assert.throws(
      () => resolveGroup("nobody-here", file),
      (e: unknown) => e instanceof AttestmeshError && e.code === "UnknownGroup",
    );
  });

  test("a stale socket is replaced; a live one and a regular file are refused; close removes it", async () => {
    const path = join(dir, "s.sock");
    const first = await serve(path);
    await assert.rejects(
      serve(path),
      (e: unknown) => e instanceof AttestmeshError && e.code === "ApiSocketInUse",
    );
    // Simulate a crash: stop listening without removing the file.
    const stale = createServer();
    const staleListener = await listenUnix(stale, join(dir, "stale.sock"));
    await new Promise<void>((resolve) => stale.close(() => resolve()));
    const replaced = await serve(join(dir, "stale.sock"));
    assert.ok((await stat(join(dir, "stale.sock"))).isSocket());
    await replaced.close();
    await staleListener.close();
    await first.close();
    await assert.rejects(stat(path), /ENOENT/);
    const file = join(dir, "file.sock");
    await writeFile(file, "not a socket");
    await assert.rejects(
      serve(file),
      (e: unknown) => e instanceof AttestmeshError && e.code === "ApiSocketPathTaken",
    );
  });

  test("a path too long for a unix socket is refused with a clear error", async () => {
    await assert.rejects(
      serve(join(dir, "x".repeat(120))),
      (e: unknown) => e instanceof AttestmeshError && e.code === "ApiSocketPathTooLong",
    );
  });
});

function heldCsk(epoch: bigint, fill: number): HeldCsk {
  const bytes = new Uint8Array(32).fill(fill);
  return { epoch, commitment: cskCommitment(bytes), key: secret(bytes) };
}

/** Bytes of live JavaScript heap and buffers after a full garbage collection. */
function liveMemory(): number {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external;
}
