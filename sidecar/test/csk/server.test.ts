// CSK serving and pulling over real UDP sockets (the loopback mesh mode): an honest server's key is
// accepted; a bogus key (keccak256 not the commitment) is rejected, blamed on its sender, and the next
// peer is tried; "not held" and silence move on too. The server refuses what it must (non-members, bad
// signatures, replays, stale or misaddressed requests) without answering, and the client rejects forged,
// misdirected or unopenable answers.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Address, bytesToHex, getAddress, keccak256 } from "viem";
import {
  type CskClient,
  type CskClientOptions,
  type CskRejectReason,
  createCskClient,
} from "../../src/csk/client.ts";
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  ResponseStatus,
  SEALED_CSK_BYTES,
  verifySigned,
} from "../../src/csk/codec.ts";
import { type CskCustody, createCskCustody } from "../../src/csk/holder.ts";
import { type CskServer, type CskServerOptions, createCskServer } from "../../src/csk/server.ts";
import type { Standing } from "../../src/csk/standing.ts";
import {
  loadSodium,
  randomBytes,
  type SigningKey,
  sealToIdentityKey,
  signingKeyFromSeed,
} from "../../src/meshnet/crypto.ts";
import { directoryFrom } from "../../src/meshnet/directory.ts";
import { type MeshSocket, openMeshSocket } from "../../src/meshnet/socket.ts";
import { MessageType, peekType } from "../../src/meshnet/wire.ts";
import type { Member } from "../../src/model/member.ts";
import { createReattestation, type Reattestation } from "../../src/reattest/scheduler.ts";
import type { Verdict } from "../../src/reattest/verdict.ts";
import { captureLogger, freePort, TEST_CLUSTER } from "../helpers.ts";

const C = TEST_CLUSTER;
const ip = (id: bigint) => `10.99.0.${Number(id)}`;
const ipNumber = (id: bigint) => (10 << 24) + (99 << 16) + Number(id);

interface Node {
  readonly id: bigint;
  readonly key: SigningKey;
  readonly custody: CskCustody;
  readonly socket: MeshSocket;
  readonly server: CskServer;
  readonly client: CskClient;
  readonly rejected: Array<{ peer: bigint; reason: CskRejectReason }>;
}

describe("CSK serving and pulling", () => {
  const verifySignedBy = (answer: ReturnType<typeof decodeResponse>, id: bigint) =>
    verifySigned(answer, keys.get(id)!.publicKey);
  const members = new Map<bigint, Member>();
  const keys = new Map<bigint, SigningKey>();
  /** Member 3's request to member 1 for epoch 0, signed by `signer` (member 3's own key unless forged). */
  const requestFrom3 = (patch: Partial<Parameters<typeof encodeRequest>[0]> = {}, signer = keys.get(3n)!) =>
    encodeRequest(
      {
        ...C,
        requesterId: 3n,
        serverId: 1n,
        epoch: 0n,
        timestampMs: BigInt(Date.now()),
        nonce: randomBytes(16),
        ...patch,
      },
      signer.sign,
    );
  const nodes = new Map<bigint, Node>();
  const directory = directoryFrom(() => members);
  /**
   * Member `self`'s CSK server in cluster C: its own key, the members' directory, a 30 s skew window and
   * epoch 0's key held, unless `options` says otherwise.
   */
  function serverOf(
    self: bigint,
    options: Omit<CskServerOptions, "self" | "cluster" | "key" | "directory" | "holder" | "maxSkewMs"> &
      Partial<Pick<CskServerOptions, "directory" | "holder">>,
  ): CskServer {
    const holdingEpoch0 = () => {
      const holder = createCskCustody();
      holder.set(0n, Uint8Array.from(epoch0));
      return holder;
    };
    return createCskServer({
      self,
      cluster: C,
      key: keys.get(self)!,
      directory,
      maxSkewMs: 30_000,
      ...options,
      holder: options.holder ?? holdingEpoch0(),
    });
  }
  let port: number;
  let epoch0: Uint8Array;
  let commitment0: `0x${string}`;

  function member(id: bigint, key: SigningKey): Member {
    return {
      memberId: id,
      appId: getAddress(`0x${id.toString(16).padStart(40, "0")}`) as Address,
      memberKey: getAddress(`0x${(id + 100n).toString(16).padStart(40, "0")}`) as Address,
      wireguardKey: `0x${"11".repeat(32)}`,
      identityKey: bytesToHex(key.publicKey),
      meshIp: ipNumber(id),
      status: "active",
      registeredAt: 0,
    };
  }

  async function startNode(id: bigint, options: { bogus?: boolean } = {}): Promise<Node> {
    const key = keys.get(id)!;
    const custody = createCskCustody();
    const socket = await openMeshSocket({ mode: "loopback", meshIp: ip(id), port });
    const rejected: Node["rejected"] = [];
    const server = serverOf(id, {
      holder: custody,
      send: (d, to) => socket.send(d, to.address, to.port),
      ...(options.bogus ? { policy: () => randomBytes(32) } : {}),
    });
    const client = createCskClient({
      self: id,
      cluster: C,
      key,
      directory,
      send: (d, to, p) => socket.send(d, to, p),
      port,
      requestTimeoutMs: 300,
      fanout: 1,
      onRejected: (peer, reason) => rejected.push({ peer, reason }),
    });
    socket.onMessage((d, from) => {
      const type = peekType(d);
      if (type === MessageType.CskRequest) void server.handle(d, from);
      if (type === MessageType.CskResponse) client.handle(d, from);
    });
    const node = { id, key, custody, socket, server, client, rejected };
    nodes.set(id, node);
    return node;
  }

  before(async () => {
    await loadSodium();
    port = await freePort();
    // 1 honest holder, 2 bogus, 3 requester, 4 honest holder of an older epoch only, 5 silent member,
    // 7 a holder whose attestation gate has no verdict on 3 yet.
    for (const id of [1n, 2n, 3n, 4n, 5n, 7n]) {
      keys.set(id, signingKeyFromSeed(randomBytes(32)));
      members.set(id, member(id, keys.get(id)!));
    }
    epoch0 = randomBytes(32);
    commitment0 = keccak256(epoch0);
    (await startNode(1n)).custody.set(0n, Uint8Array.from(epoch0));
    (await startNode(2n, { bogus: true })).custody.set(0n, Uint8Array.from(epoch0));
    await startNode(3n);
  });

  after(async () => {
    for (const node of nodes.values()) await node.socket.close();
  });

  test("an honest peer's key is accepted: it hashes to the commitment", async () => {
    const result = await nodes.get(3n)!.client.fetch({ epoch: 0n, commitment: commitment0, peers: [1n] });
    assert.equal(result.from, 1n);
    assert.deepEqual(result.key, epoch0);
    assert.deepEqual(result.attempts, [{ peer: 1n, outcome: "ok" }]);
  });

  test("a bogus key is rejected and blamed on its sender; the next peer delivers", async () => {
    const requester = nodes.get(3n)!;
    const result = await requester.client.fetch({ epoch: 0n, commitment: commitment0, peers: [2n, 1n] });
    assert.deepEqual(result.attempts, [
      { peer: 2n, outcome: "hash-mismatch" },
      { peer: 1n, outcome: "ok" },
    ]);
    assert.equal(result.from, 1n);
    assert.deepEqual(result.key, epoch0);
    assert.deepEqual(requester.rejected.at(-1), { peer: 2n, reason: "hash-mismatch" });
  });

  test("only bogus peers: no key at all", async () => {
    const result = await nodes.get(3n)!.client.fetch({ epoch: 0n, commitment: commitment0, peers: [2n] });
    assert.equal(result.key, undefined);
    assert.equal(result.from, undefined);
  });

  test("'not held' and a silent peer move on to the next", async () => {
    const older = await startNode(4n);
    older.custody.set(7n, randomBytes(32));
    const result = await nodes
      .get(3n)!
      .client.fetch({ epoch: 0n, commitment: commitment0, peers: [4n, 5n, 1n] });
    assert.deepEqual(result.attempts, [
      { peer: 4n, outcome: "not-held" },
      { peer: 5n, outcome: "timeout" },
      { peer: 1n, outcome: "ok" },
    ]);
  });

  /** A second client of the requester (member 3) on its socket, taking its answers until `off()`. */
  function requesterClient(options: Pick<CskClientOptions, "requestTimeoutMs" | "fanout" | "onRejected">) {
    const requester = nodes.get(3n)!;
    const client = createCskClient({
      self: 3n,
      cluster: C,
      key: requester.key,
      directory,
      send: (d, to, p) => requester.socket.send(d, to, p),
      port,
      ...options,
    });
    const off = requester.socket.onMessage((d, from) => {
      if (peekType(d) === MessageType.CskResponse) client.handle(d, from);
    });
    return { client, off };
  }

  test("with fanout, the first good answer wins without waiting for slow peers", async () => {
    const { client: fast, off } = requesterClient({ requestTimeoutMs: 5000, fanout: 3 });
    const began = Date.now();
    const result = await fast.fetch({ epoch: 0n, commitment: commitment0, peers: [5n, 1n, 2n] });
    off();
    assert.equal(result.from, 1n);
    // Anything short of the 5 s deadline proves it; the margin is for a loaded machine.
    assert.ok(Date.now() - began < 4000, "did not wait for the silent peer's 5 s deadline");
  });

  describe("the server refuses, and does not answer", () => {
    const sent: Uint8Array[] = [];
    let server: CskServer;
    const request = requestFrom3;
    const from = { address: ip(3n), port: 1 };

    before(() => {
      server = serverOf(1n, { lookup: () => undefined, send: (d) => sent.push(d) });
    });

    const cases: Array<[string, () => Uint8Array, string]> = [
      ["garbage", () => Uint8Array.of(1, 2, 3), "malformed"],
      ["another cluster", () => request({ cluster: getAddress(`0x${"ab".repeat(20)}`) }), "wrong-cluster"],
      ["another chain", () => request({ chainId: 8453 }), "wrong-cluster"],
      ["addressed to another server", () => request({ serverId: 2n }), "wrong-server"],
      ["a stale timestamp", () => request({ timestampMs: BigInt(Date.now() - 31_000) }), "stale"],
      ["a future timestamp", () => request({ timestampMs: BigInt(Date.now() + 31_000) }), "stale"],
      ["a requester that is not a member", () => request({ requesterId: 9n }), "not-a-member"],
      ["a signature by another key", () => request({}, keys.get(2n)!), "bad-signature"],
      [
        "a signed request claiming member 4 from member 3's address",
        () => request({ requesterId: 4n }, keys.get(4n)!),
        "wrong-source",
      ],
    ];
    for (const [what, make, outcome] of cases) {
      test(what, async () => {
        const before = sent.length;
        const result = await server.handle(make(), from);
        assert.equal(result.outcome, outcome);
        assert.equal(sent.length, before, "no answer");
      });
    }

    test("a replayed request is answered once", async () => {
      const bytes = request();
      assert.equal((await server.handle(bytes, from)).outcome, "served");
      const count = sent.length;
      assert.equal((await server.handle(bytes, from)).outcome, "replay");
      assert.equal(sent.length, count);
    });

    test("a member missing from the view is found in the lookup cache (never a chain read)", async () => {
      const late = signingKeyFromSeed(randomBytes(32));
      const lateServer = serverOf(1n, {
        lookup: (id) =>
          id === 6n
            ? { memberId: 6n, meshIp: ip(6n), identityKey: late.publicKey, record: member(6n, late) }
            : undefined,
        holder: createCskCustody(),
        send: () => {},
      });
      const from6 = { address: ip(6n), port: 1 };
      assert.equal((await lateServer.handle(request({ requesterId: 6n }, late), from6)).outcome, "not-held");
    });

    test("the head decides last: departed, a head behind the epoch, or no answer, and nothing is sealed", async () => {
      const asked: Array<[bigint, bigint]> = [];
      let answer: () => Promise<Standing> = async () => "active";
      const headServer = serverOf(1n, {
        standing: {
          of: (id, epoch) => {
            asked.push([id, epoch]);
            return answer();
          },
        },
        send: (d) => sent.push(d),
      });
      const count = sent.length;
      for (const [standing, outcome] of [
        [async () => "departed" as const, "departed"],
        [async () => "behind" as const, "head-behind"],
        [() => Promise.reject(new Error("rpc down")), "head-unreadable"],
      ] as const) {
        answer = standing;
        assert.equal((await headServer.handle(request(), from)).outcome, outcome);
      }
      assert.equal(sent.length, count, "no answer to a refused request");
      assert.deepEqual(asked, [
        [3n, 0n],
        [3n, 0n],
        [3n, 0n],
      ]);
      // The signature comes before the head: a forged request costs no read.
      assert.equal((await headServer.handle(request({}, keys.get(2n)!), from)).outcome, "bad-signature");
      assert.equal((await headServer.handle(request({ requesterId: 9n }), from)).outcome, "not-a-member");
      assert.equal(asked.length, 3, "no head read for a bad signature or an unknown id");
      answer = async () => "active";
      assert.equal((await headServer.handle(request(), from)).outcome, "served");
    });
  });

  const PERIOD = 600_000;
  const pass: Verdict = { ok: true, kind: "simulated", composeHash: "ab".repeat(32), detail: "ok" };
  const otherKeys: Verdict = {
    ok: false,
    cause: "evidence",
    reason: "ReportDataMismatch",
    detail: "bound to other keys",
  };
  /**
   * A real re-attestation schedule over member 3 (`peer()`: its record now) whose verdict the test sets
   * (`unreachable` at first: its evidence cannot be fetched); its clock too.
   */
  function verdictSchedule(peer: () => Member, onPassed?: (m: Member) => void) {
    let verdict: Verdict | "unreachable" = "unreachable";
    let clock = 1_000_000;
    const r: Reattestation = createReattestation({
      peers: () => [peer()],
      fetch: async () => {
        if (verdict === "unreachable") throw new Error("connect ETIMEDOUT");
        return {};
      },
      judge: async () => {
        const v = verdict as Verdict;
        return v.ok
          ? { verdict: v, verified: { kind: "simulated", composeHash: "ab".repeat(32) } }
          : { verdict: v };
      },
      rejudge: async () => pass,
      head: async () => 1n,
      periodMs: PERIOD,
      logger: captureLogger("silent").logger,
      now: () => clock,
      ...(onPassed === undefined ? {} : { onPassed }),
    });
    return {
      r,
      set: (v: Verdict | "unreachable") => {
        verdict = v;
      },
      advance: async (ms: number) => {
        clock += ms;
        await r.tick();
      },
    };
  }

  describe("the attestation gate (issue 14: a newcomer is peered before anyone judged it)", () => {
    const gate = (onPassed?: (m: Member) => void) => verdictSchedule(() => members.get(3n)!, onPassed);
    const request = (signer = keys.get(3n)!) => requestFrom3({}, signer);
    const from = { address: ip(3n), port: 1 };
    function gatedServer(
      r: Reattestation,
      sent: Uint8Array[],
      standing?: () => Promise<Standing>,
      now?: () => number,
    ) {
      return serverOf(1n, {
        ...(standing === undefined ? {} : { standing: { of: standing } }),
        attested: (requester) => r.admits(requester.record),
        send: (d) => sent.push(d),
        parkMs: 1000,
        ...(now === undefined ? {} : { now }),
      });
    }
    /** Every answer sent: none may carry a key unless `keyAllowed`. */
    const statuses = (sent: Uint8Array[]) => sent.map((d) => decodeResponse(d).message.status);

    test("no verdict yet: a signed 'not attested yet' and no key; once it passes, the key", async () => {
      const g = gate();
      const sent: Uint8Array[] = [];
      const server = gatedServer(g.r, sent);
      // The race: it asks at the very moment it is peered, before any check ran.
      assert.equal((await server.handle(request(), from)).outcome, "not-attested-yet");
      // Its evidence cannot be fetched yet: still no verdict.
      await g.advance(0);
      assert.equal(g.r.get(3n)?.status, "unreachable");
      assert.equal((await server.handle(request(), from)).outcome, "not-attested-yet");
      assert.deepEqual(statuses(sent), [ResponseStatus.NotAttestedYet, ResponseStatus.NotAttestedYet]);
      for (const d of sent) {
        const answer = decodeResponse(d);
        assert.equal(answer.message.sealed.length, 0, "no key in a refusal");
        assert.ok(verifySignedBy(answer, 1n), "signed by the server");
      }
      g.set(pass);
      await g.advance(1_000);
      assert.equal((await server.handle(request(), from)).outcome, "served");
      assert.equal(statuses(sent).at(-1), ResponseStatus.Ok);
    });

    test("attacker: evidence bound to other keys: never a key, asked at any moment, before and after the verdict", async () => {
      const g = gate();
      const sent: Uint8Array[] = [];
      const server = gatedServer(g.r, sent);
      const outcomes: string[] = [];
      outcomes.push((await server.handle(request(), from)).outcome);
      g.set(otherKeys);
      await g.advance(0);
      for (let i = 0; i < 20; i++) {
        outcomes.push((await server.handle(request(), from)).outcome);
        await g.advance(PERIOD / 4);
      }
      assert.equal(outcomes[0], "not-attested-yet");
      assert.ok(
        outcomes.slice(1).every((o) => o === "attestation-refused"),
        outcomes.join(),
      );
      assert.ok(
        statuses(sent).every((s) => s === ResponseStatus.NotAttestedYet),
        "no answer ever carried a key",
      );
      assert.equal(sent.length, 1, "a refused requester gets no answer at all");
    });

    test("a refusal that lands while the head is read wins: the verdict is read right before sealing", async () => {
      const g = gate();
      g.set(pass);
      await g.advance(0);
      const sent: Uint8Array[] = [];
      let release!: (s: Standing) => void;
      const server = gatedServer(g.r, sent, () => new Promise<Standing>((resolve) => (release = resolve)));
      const handled = server.handle(request(), from);
      await new Promise((resolve) => setImmediate(resolve));
      // Its policy is withdrawn meanwhile (the owner's revocation reaches this node's re-judgement).
      g.set(otherKeys);
      await g.advance(2 * PERIOD);
      assert.equal(g.r.admits(members.get(3n)!), "refused");
      release("active");
      assert.equal((await handled).outcome, "attestation-refused");
      assert.equal(sent.length, 0);
    });

    test("a passing verdict that expired (re-checks cannot reach it) gates again until it passes anew", async () => {
      const g = gate();
      g.set(pass);
      await g.advance(0);
      const sent: Uint8Array[] = [];
      const server = gatedServer(g.r, sent);
      assert.equal((await server.handle(request(), from)).outcome, "served");
      g.set("unreachable");
      for (let waited = 0; waited <= 3 * PERIOD; waited += PERIOD / 2) await g.advance(PERIOD / 2);
      assert.equal((await server.handle(request(), from)).outcome, "not-attested-yet");
      g.set(pass);
      await g.advance(PERIOD);
      assert.equal((await server.handle(request(), from)).outcome, "served");
    });

    test("the client moves on past 'not attested yet' to another holder, blaming nobody", async () => {
      const g = gate();
      const requester = nodes.get(3n)!;
      const socket = await openMeshSocket({ mode: "loopback", meshIp: ip(7n), port });
      const gatedAs7 = serverOf(7n, {
        attested: (m) => g.r.admits(m.record),
        send: (d, to) => socket.send(d, to.address, to.port),
      });
      socket.onMessage((d, f) => {
        if (peekType(d) === MessageType.CskRequest) void gatedAs7.handle(d, f);
      });
      try {
        const first = await requester.client.fetch({ epoch: 0n, commitment: commitment0, peers: [7n] });
        assert.deepEqual(first.attempts, [{ peer: 7n, outcome: "not-attested-yet" }]);
        assert.equal(first.key, undefined);
        const next = await requester.client.fetch({ epoch: 0n, commitment: commitment0, peers: [7n, 1n] });
        assert.deepEqual(next.attempts, [
          { peer: 7n, outcome: "not-attested-yet" },
          { peer: 1n, outcome: "ok" },
        ]);
        assert.equal(
          requester.rejected.filter((r) => r.peer === 7n).length,
          0,
          "not evidence against the server",
        );
        // Once member 7's re-attestation of member 3 passes, it serves too.
        g.set(pass);
        await g.advance(0);
        const last = await requester.client.fetch({ epoch: 0n, commitment: commitment0, peers: [7n] });
        assert.deepEqual(last.attempts, [{ peer: 7n, outcome: "ok" }]);
        assert.deepEqual(last.key, epoch0);
      } finally {
        await socket.close();
      }
    });
  });

  describe("the key follows 'not attested yet' the moment the verdict passes (issue 15)", () => {
    /** A real schedule over member 3 (its verdict set by the test), and a gated server 1 in front of it. */
    function setup(
      options: { standing?: () => Promise<Standing>; now?: () => number; onPassed?: () => void } = {},
    ) {
      // A view of its own: the test replaces member 3's record in it.
      let view: ReadonlyMap<bigint, Member> = new Map(members);
      const { r, set, advance } = verdictSchedule(() => view.get(3n)!, options.onPassed);
      const sent: Uint8Array[] = [];
      const server = serverOf(1n, {
        directory: directoryFrom(() => view),
        ...(options.standing === undefined ? {} : { standing: { of: options.standing } }),
        attested: (requester) => r.admits(requester.record),
        send: (d) => sent.push(d),
        parkMs: 1000,
        ...(options.now === undefined ? {} : { now: options.now }),
      });
      return {
        r,
        server,
        sent,
        replace: (record: Member) => {
          view = new Map([...view, [record.memberId, record]]);
        },
        set,
        advance,
      };
    }
    const from = { address: ip(3n), port: 1 };
    const statusesOf = (sent: Uint8Array[]) => sent.map((d) => decodeResponse(d).message.status);
    const nonceOf = (d: Uint8Array) => Buffer.from(decodeResponse(d).message.nonce).toString("hex");
    const nonceOfRequest = (d: Uint8Array) => Buffer.from(decodeRequest(d).message.nonce).toString("hex");

    test("after a passing verdict, the parked request gets the key: once, on that request, sealed to the requester", async () => {
      const t = setup();
      const ask = requestFrom3();
      assert.equal((await t.server.handle(ask, from)).outcome, "not-attested-yet");
      t.set(pass);
      await t.advance(0);
      assert.equal(t.r.admits(members.get(3n)!), "passed");
      assert.equal((await t.server.attested(3n))?.outcome, "served");
      assert.equal(t.sent.length, 2);
      const pushed = decodeResponse(t.sent[1]!);
      assert.equal(pushed.message.status, ResponseStatus.Ok);
      assert.equal(nonceOf(t.sent[1]!), nonceOfRequest(ask), "an answer to the request it parked");
      assert.ok(verifySignedBy(pushed, 1n));
      assert.deepEqual(keys.get(3n)!.openSealed(pushed.message.sealed), epoch0);
      // Never twice for one request, however often the verdict passes again.
      assert.equal(await t.server.attested(3n), undefined);
      await t.advance(PERIOD * 2);
      assert.equal(await t.server.attested(3n), undefined);
      assert.equal(t.sent.length, 2);
      // A request served at once leaves nothing parked.
      assert.equal((await t.server.handle(requestFrom3(), from)).outcome, "served");
      assert.equal(await t.server.attested(3n), undefined);
      assert.equal(t.sent.length, 3);
    });

    test("nothing is pushed to a requester never judged, nor to one never told 'not attested yet'", async () => {
      const t = setup();
      assert.equal(await t.server.attested(3n), undefined, "it never asked");
      assert.equal((await t.server.handle(requestFrom3(), from)).outcome, "not-attested-yet");
      // Still no verdict (a spurious call): no key, and that request is done.
      assert.equal((await t.server.attested(3n))?.outcome, "not-attested-yet");
      assert.equal(t.sent.length, 1);
      t.set(pass);
      await t.advance(0);
      assert.equal(await t.server.attested(3n), undefined, "pushed at most once per request");
      assert.equal(t.sent.length, 1);
    });

    test("attacker: evidence bound to other keys: the parked request never gets a key, at any moment", async () => {
      const t = setup();
      assert.equal((await t.server.handle(requestFrom3(), from)).outcome, "not-attested-yet");
      t.set(otherKeys);
      await t.advance(0);
      assert.equal(t.r.admits(members.get(3n)!), "refused");
      assert.equal((await t.server.attested(3n))?.outcome, "attestation-refused");
      for (let i = 0; i < 8; i++) {
        assert.equal((await t.server.handle(requestFrom3(), from)).outcome, "attestation-refused");
        assert.equal((await t.server.attested(3n))?.outcome ?? "nothing", "nothing");
        await t.advance(PERIOD / 4);
      }
      assert.deepEqual(statusesOf(t.sent), [ResponseStatus.NotAttestedYet]);
    });

    test("a refusal that lands while the push reads the head wins", async () => {
      let release!: (s: Standing) => void;
      let hold = false;
      const t = setup({
        standing: () =>
          hold ? new Promise<Standing>((resolve) => (release = resolve)) : Promise.resolve("active"),
      });
      assert.equal((await t.server.handle(requestFrom3(), from)).outcome, "not-attested-yet");
      t.set(pass);
      await t.advance(0);
      hold = true;
      const pushing = t.server.attested(3n);
      await new Promise((resolve) => setImmediate(resolve));
      t.set(otherKeys);
      await t.advance(2 * PERIOD);
      assert.equal(t.r.admits(members.get(3n)!), "refused");
      release("active");
      assert.equal((await pushing)?.outcome, "attestation-refused");
      assert.equal(t.sent.length, 1);
    });

    test("the push re-runs the head check and the record check; a parked request expires", async () => {
      let standing: Standing = "active";
      let offset = 0;
      const t = setup({ standing: async () => standing, now: () => Date.now() + offset });
      t.set(pass);
      // Departed at the head by the time its verdict passes.
      const parkThenPass = async () => {
        t.set("unreachable");
        await t.advance(3 * PERIOD + 1);
        assert.equal(t.r.admits(members.get(3n)!), "pending");
        assert.equal((await t.server.handle(requestFrom3(), from)).outcome, "not-attested-yet");
        t.set(pass);
        await t.advance(PERIOD);
        assert.equal(t.r.admits(members.get(3n)!), "passed");
      };
      await parkThenPass();
      standing = "departed";
      assert.equal((await t.server.attested(3n))?.outcome, "departed");
      standing = "active";
      await parkThenPass();
      standing = "stale";
      assert.equal((await t.server.attested(3n))?.outcome, "not-standing");
      standing = "active";
      // Its record changed (new keys) after it asked: nothing is sealed to the old or the new key.
      await parkThenPass();
      const original = members.get(3n)!;
      t.replace({ ...original, identityKey: bytesToHex(randomBytes(32)) });
      assert.equal((await t.server.attested(3n))?.outcome, "wrong-source");
      t.replace(original);
      // Parked longer than parkMs: the requester stopped waiting; it asks again instead.
      await parkThenPass();
      offset = 1_001;
      assert.equal((await t.server.attested(3n))?.outcome, "stale");
      offset = 0;
      assert.ok(statusesOf(t.sent).every((s) => s === ResponseStatus.NotAttestedYet));
    });

    test("over UDP: the client takes the key pushed after 'not attested yet' without asking again; a bogus one is rejected", async () => {
      const requester = nodes.get(3n)!;
      const socket = await openMeshSocket({ mode: "loopback", meshIp: ip(7n), port });
      let requests = 0;
      let server7: CskServer | undefined;
      /** A fresh schedule (member 3 never judged) and server 7 in front of it, sealing `policy`'s key. */
      const serve7 = (policy?: () => Uint8Array) => {
        const t = setup({ onPassed: () => void server7?.attested(3n) });
        server7 = serverOf(7n, {
          attested: (m) => t.r.admits(m.record),
          send: (d, to) => socket.send(d, to.address, to.port),
          parkMs: 1000,
          // Told "not attested yet", the requester is reachable: its check runs now, and passes.
          onNotAttested: (m) => {
            t.r.hurry(m.record);
            t.set(pass);
            void t.advance(0);
          },
          ...(policy === undefined ? {} : { policy }),
        });
      };
      socket.onMessage((d, f) => {
        if (peekType(d) !== MessageType.CskRequest) return;
        requests += 1;
        void server7?.handle(d, f);
      });
      const { client, off } = requesterClient({
        // Long enough that "without waiting it out" leaves a loaded machine room.
        requestTimeoutMs: 10_000,
        fanout: 3,
        onRejected: (peer, reason) => requester.rejected.push({ peer, reason }),
      });
      try {
        serve7();
        const began = Date.now();
        const result = await client.fetch({ epoch: 0n, commitment: commitment0, peers: [7n] });
        assert.deepEqual(result.key, epoch0);
        assert.equal(result.from, 7n);
        assert.deepEqual(result.attempts, [
          { peer: 7n, outcome: "not-attested-yet" },
          { peer: 7n, outcome: "ok" },
        ]);
        assert.equal(requests, 1, "one request: the key followed on its own");
        assert.ok(Date.now() - began < 5000, "without waiting out the request timeout");

        // Attacker: a server that pushes a bogus key after "not attested yet" is rejected and blamed.
        serve7(() => randomBytes(32));
        const bogus = await client.fetch({ epoch: 0n, commitment: commitment0, peers: [7n] });
        assert.equal(bogus.key, undefined);
        assert.deepEqual(bogus.attempts, [
          { peer: 7n, outcome: "not-attested-yet" },
          { peer: 7n, outcome: "hash-mismatch" },
        ]);
        assert.deepEqual(requester.rejected.at(-1), { peer: 7n, reason: "hash-mismatch" });
      } finally {
        off();
        await socket.close();
      }
    });
  });

  describe("the client rejects forged answers", () => {
    /** A client whose requests are captured, answered by `answer`. */
    async function exchange(answer: (req: ReturnType<typeof decodeRequest>["message"]) => Uint8Array) {
      const rejected: Array<{ peer: bigint; reason: CskRejectReason }> = [];
      let client!: CskClient;
      client = createCskClient({
        self: 3n,
        cluster: C,
        key: keys.get(3n)!,
        directory,
        send: (d) =>
          queueMicrotask(() => client.handle(answer(decodeRequest(d).message), { address: ip(1n), port })),
        port,
        requestTimeoutMs: 300,
        fanout: 1,
        onRejected: (peer, reason) => rejected.push({ peer, reason }),
      });
      const result = await client.fetch({ epoch: 0n, commitment: commitment0, peers: [1n] });
      return { result, rejected };
    }
    const respond = (
      req: ReturnType<typeof decodeRequest>["message"],
      patch: Partial<Parameters<typeof encodeResponse>[0]> = {},
      signer = keys.get(1n)!,
    ) =>
      encodeResponse(
        {
          ...C,
          serverId: req.serverId,
          requesterId: req.requesterId,
          epoch: req.epoch,
          nonce: req.nonce,
          status: ResponseStatus.Ok,
          sealed: sealToIdentityKey(epoch0, keys.get(3n)!.publicKey)!,
          ...patch,
        },
        signer.sign,
      );

    test("a well-formed honest answer is accepted (control)", async () => {
      const { result } = await exchange((req) => respond(req));
      assert.deepEqual(result.key, epoch0);
    });

    test("signed by someone other than the asked peer", async () => {
      const { result, rejected } = await exchange((req) => respond(req, {}, keys.get(2n)!));
      assert.equal(result.key, undefined);
      assert.deepEqual(rejected, [{ peer: 1n, reason: "bad-signature" }]);
    });

    test("for another epoch", async () => {
      const { rejected } = await exchange((req) => respond(req, { epoch: 5n }));
      assert.deepEqual(rejected, [{ peer: 1n, reason: "wrong-epoch" }]);
    });

    test("sealed to another key", async () => {
      const { rejected } = await exchange((req) =>
        respond(req, { sealed: sealToIdentityKey(epoch0, keys.get(2n)!.publicKey)! }),
      );
      assert.deepEqual(rejected, [{ peer: 1n, reason: "unsealable" }]);
    });

    test("garbage in the sealed box", async () => {
      const { rejected } = await exchange((req) =>
        respond(req, { sealed: new Uint8Array(SEALED_CSK_BYTES) }),
      );
      assert.deepEqual(rejected, [{ peer: 1n, reason: "unsealable" }]);
    });

    test("an answer with another nonce, or from another server id, is ignored (then times out)", async () => {
      const a = await exchange((req) => respond(req, { nonce: randomBytes(16) }));
      assert.deepEqual(a.result.attempts, [{ peer: 1n, outcome: "timeout" }]);
      const b = await exchange((req) => respond(req, { serverId: 2n }, keys.get(2n)!));
      assert.deepEqual(b.result.attempts, [{ peer: 1n, outcome: "timeout" }]);
      assert.deepEqual(b.rejected, [], "nobody is blamed for an answer it did not sign");
    });
  });
});
