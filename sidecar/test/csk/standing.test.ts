// A member's standing at the chain head, on an in-process Hardhat chain behind a JSON-RPC proxy that
// counts every call (issue 12 C and E). The review's race: the eviction is at the head but not yet at
// head − 2, where the follower (default confirmations) still lists the evicted member as active. The
// server refuses it there, serves the members that stay, and never spends a chain read on a datagram
// that is forged, misaddressed or from an id it does not know; the evicted node's own manager zeroes
// its key and stops.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { IDENTITY_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { bytesToHex, getAddress, http } from "viem";
import {
  admitNewNode,
  type ClusterFixture,
  type SimulatedNode,
  setupCluster,
} from "../../../test/helpers/cluster.ts";
import { serveRpc } from "../../../test/helpers/rpcServer.ts";
import { type ChainContext, connectChain } from "../../src/chain/client.ts";
import { type ClusterReader, createClusterReader } from "../../src/chain/cluster.ts";
import { createMembershipFollower, type MembershipFollower } from "../../src/chain/follower.ts";
import { createCskChain, headReadsOf } from "../../src/csk/chain.ts";
import { decodeResponse, encodeRequest, ResponseStatus } from "../../src/csk/codec.ts";
import { createCskCustody } from "../../src/csk/holder.ts";
import { createCskManager } from "../../src/csk/manager.ts";
import { createCskServer } from "../../src/csk/server.ts";
import { createStandingCheck, type StandingCheck } from "../../src/csk/standing.ts";
import { loadSodium, randomBytes, type SigningKey, signingKeyFromSeed } from "../../src/meshnet/crypto.ts";
import { directoryFrom } from "../../src/meshnet/directory.ts";
import { createPeerPolicyReader } from "../../src/reattest/policy.ts";
import { judgePolicy } from "../../src/reattest/verdict.ts";
import { secret } from "../../src/secret.ts";
import { captureLogger, simulatorKeySource } from "../helpers.ts";

describe("standing at the chain head", () => {
  let fx: ClusterFixture;
  let proxy: Awaited<ReturnType<typeof serveRpc>>;
  let chain: ChainContext;
  let reader: ClusterReader;
  let follower: MembershipFollower;
  /** JSON-RPC requests the proxy forwarded to Hardhat, by method. */
  const calls = new Map<string, number>();
  const total = () => [...calls.values()].reduce((a, b) => a + b, 0);
  const nodes: SimulatedNode[] = [];
  const ids: bigint[] = [];
  const keys: SigningKey[] = [];
  const mine = () => fx.connection.provider.request({ method: "evm_mine", params: [] });

  before(async () => {
    await loadSodium();
    fx = await setupCluster();
    const provider = fx.connection.provider;
    proxy = await serveRpc({
      request(args: { method: string; params?: unknown[] }) {
        calls.set(args.method, (calls.get(args.method) ?? 0) + 1);
        return provider.request(args);
      },
    });
    chain = await connectChain({
      transport: http(proxy.url, { retryCount: 0 }),
      cluster: fx.deployed.diamond,
      expectedChainId: fx.chainId,
    });
    reader = createClusterReader(chain.reads, chain.cluster);
    follower = createMembershipFollower({
      reads: chain.reads,
      cluster: chain.cluster,
      reader,
      confirmations: 2,
      logger: captureLogger().logger,
    });
    for (let i = 0; i < 3; i++) {
      const { node, id } = await admitNewNode(fx);
      nodes.push(node);
      ids.push(id);
      const seed = node.cvm.getKey(IDENTITY_KEY.path, IDENTITY_KEY.purpose, "ed25519").key;
      keys.push(signingKeyFromSeed(Uint8Array.from(seed)));
    }
    await mine();
    await mine();
    await follower.sync();
  });

  after(async () => {
    await proxy.close();
  });

  const cluster = () => ({ chainId: chain.chainId, cluster: getAddress(chain.cluster) });
  const directory = () => directoryFrom(() => follower.current()?.members);
  const request = (from: number, to: number, epoch: bigint, signer = keys[from]!, requesterId = ids[from]!) =>
    encodeRequest(
      {
        ...cluster(),
        requesterId,
        serverId: ids[to]!,
        epoch,
        timestampMs: BigInt(Date.now()),
        nonce: randomBytes(16),
      },
      signer.sign,
    );
  const meshIp = (i: number) => directory().get(ids[i]!)!.meshIp;
  /** Member 1's CSK server, answering from `holder` after `standing`; what it sends lands in `sent`. */
  const firstServer = (
    standing: StandingCheck,
    holder: ReturnType<typeof createCskCustody>,
    sent: Uint8Array[],
  ) =>
    createCskServer({
      self: ids[0]!,
      cluster: cluster(),
      key: keys[0]!,
      directory: directory(),
      standing,
      holder,
      send: (d) => sent.push(d),
      maxSkewMs: 30_000,
    });

  test("an eviction at the head, not yet at head − 2: refused although the view lists it; the others are served", async () => {
    const epoch1Key = randomBytes(32);
    const holder = createCskCustody();
    const sent: Uint8Array[] = [];
    const standing = createStandingCheck(headReadsOf(chain, reader));
    const server = firstServer(standing, holder, sent);
    // Before the eviction, member 2 is active at the head for epoch 0.
    assert.equal(await standing.of(ids[1]!, 0n), "active");

    await fx.owner.write.evict([ids[1]!, 1]);
    holder.set(1n, Uint8Array.from(epoch1Key));
    await follower.sync();
    assert.equal(
      follower.current()?.members.get(ids[1]!)?.status,
      "active",
      "the review's timing: the confirmed view (head − 2) still lists the evicted member",
    );

    const refused = await server.handle(request(1, 0, 1n), { address: meshIp(1), port: 9 });
    assert.equal(refused.outcome, "departed");
    assert.equal(sent.length, 0, "nothing is sealed to the evicted member");

    const served = await server.handle(request(2, 0, 1n), { address: meshIp(2), port: 9 });
    assert.equal(served.outcome, "served");
    const response = decodeResponse(sent[0]!).message;
    assert.equal(response.status, ResponseStatus.Ok);
    assert.deepEqual(keys[2]!.openSealed(response.sealed), epoch1Key);

    // Cached per (epoch, requester): asking again costs no read.
    const before = total();
    assert.equal(
      (await server.handle(request(1, 0, 1n), { address: meshIp(1), port: 9 })).outcome,
      "departed",
    );
    assert.equal((await server.handle(request(2, 0, 1n), { address: meshIp(2), port: 9 })).outcome, "served");
    assert.equal(total(), before, "no chain read for a cached standing");
    // The evicted member's standing for the old epoch was read while it was active; that key it held.
    assert.equal(await standing.of(ids[1]!, 0n), "active");
  });

  test("a head that has not opened the asked epoch is refused and not cached", async () => {
    const standing = createStandingCheck(headReadsOf(chain, reader));
    assert.equal(await standing.of(ids[2]!, 7n), "behind");
    const before = total();
    assert.equal(await standing.of(ids[2]!, 7n), "behind");
    assert.ok(total() > before, "read again");
  });

  test("500 forged requests with unknown ids, 500 with bad signatures, 500 from the wrong address: zero RPC calls", async () => {
    const standing = createStandingCheck(headReadsOf(chain, reader));
    const holder = createCskCustody();
    holder.set(1n, randomBytes(32));
    const sent: Uint8Array[] = [];
    const server = firstServer(standing, holder, sent);
    const attacker = signingKeyFromSeed(randomBytes(32));
    const outcomes = new Map<string, number>();
    const before = total();
    for (let i = 0; i < 500; i++) {
      const unknownId = 1000n + BigInt(i);
      const forged = [
        [request(2, 0, 1n, attacker, unknownId), meshIp(2)],
        [request(2, 0, 1n, attacker), meshIp(2)],
        [request(2, 0, 1n), "10.77.9.9"],
      ] as const;
      for (const [bytes, address] of forged) {
        const { outcome } = await server.handle(bytes, { address, port: 9 });
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    }
    assert.equal(total(), before, `RPC calls during the flood: ${JSON.stringify(Object.fromEntries(calls))}`);
    assert.deepEqual(Object.fromEntries(outcomes), {
      "not-a-member": 500,
      "bad-signature": 500,
      "wrong-source": 500,
    });
    assert.equal(sent.length, 0);
    attacker.destroy();
  });

  test("the evicted node's own manager sees it at the head: zeroes its key and never pulls again", async () => {
    const evicted = nodes[1]!;
    const custody = createCskCustody();
    custody.set(0n, randomBytes(32));
    const fetched: bigint[] = [];
    const log = captureLogger();
    const standing: StandingCheck = createStandingCheck(headReadsOf(chain, reader));
    const manager = createCskManager({
      self: ids[1]!,
      cluster: cluster(),
      chain: createCskChain(chain, secret(bytesToHex(evicted.memberSecret))),
      keySource: simulatorKeySource(evicted.cvm),
      custody,
      client: {
        fetch: async (r) => {
          fetched.push(r.epoch);
          return { key: undefined, from: undefined, attempts: [] };
        },
      },
      directory: directory(),
      peers: { live: () => [ids[0]!, ids[2]!], report: () => undefined, startedAt: () => 0, timeoutMs: 1 },
      takeoverMs: 10_000,
      logger: log.logger,
      standing,
    });
    assert.equal(follower.current()?.members.get(ids[1]!)?.status, "active", "the view still lags");
    assert.equal(await manager.tick(), "departed");
    assert.equal(custody.current(), undefined, "the key is zeroed");
    assert.equal(manager.acquired(), false);
    const before = total();
    assert.equal(await manager.tick(), "departed");
    assert.equal(total(), before, "a departed node reads nothing more");
    assert.deepEqual(fetched, [], "and never asks a peer");
    assert.ok(log.lines().some((l) => /left or was evicted/.test(l.msg) && l.level === 50));
  });

  test("revoked, not evicted: stale at the head, refused a new epoch's key, not cached; the peer policy says DeviceRevoked", async () => {
    // A member on a device of its own, so revoking that device leaves the others standing.
    const { node, id } = await admitNewNode(fx, { deviceId: randomBytes(32) });
    const seed = node.cvm.getKey(IDENTITY_KEY.path, IDENTITY_KEY.purpose, "ed25519").key;
    const key = signingKeyFromSeed(Uint8Array.from(seed));
    await mine();
    await mine();
    await follower.sync();
    const standing = createStandingCheck(headReadsOf(chain, reader));
    const epoch = (
      await chain.reads.readContract({
        address: chain.cluster,
        abi: clusterAbi,
        functionName: "currentCsk",
        at: await chain.reads.agreedBlock(0),
      })
    )[0];
    assert.equal(await standing.of(id, epoch), "active");
    // The policy reader peers judge re-attestations with agrees: standing good.
    const policy = createPeerPolicyReader(chain.reads, chain.cluster);
    assert.equal((await policy(id)).standing, "good");

    await fx.owner.write.revokeDevice([node.claims.deviceId, `0x${"00".repeat(32)}`]);
    const next = epoch + 1n;
    await fx.owner.write.openCskEpoch();
    const holder = createCskCustody();
    holder.set(next, randomBytes(32));
    const sent: Uint8Array[] = [];
    const server = createCskServer({
      self: ids[0]!,
      cluster: cluster(),
      key: keys[0]!,
      directory: directoryFrom(() => follower.current()?.members),
      standing,
      holder,
      send: (d) => sent.push(d),
      maxSkewMs: 30_000,
    });
    const ip = directory().get(id)!.meshIp;
    const asked = encodeRequest(
      {
        ...cluster(),
        requesterId: id,
        serverId: ids[0]!,
        epoch: next,
        timestampMs: BigInt(Date.now()),
        nonce: randomBytes(16),
      },
      key.sign,
    );
    assert.equal((await server.handle(asked, { address: ip, port: 9 })).outcome, "not-standing");
    assert.equal(sent.length, 0, "nothing is sealed to a member whose device was revoked");
    // Not cached: the owner may allow it again, so the next question reads the head again.
    const before = total();
    assert.equal(await standing.of(id, next), "stale");
    assert.ok(total() > before);
    const judged = await policy(id);
    assert.equal(judged.standing, "device-revoked");
    assert.equal(
      (
        judgePolicy({ kind: "simulated", composeHash: judged.statedComposeHash! }, judged) as {
          reason?: string;
        }
      ).reason,
      "DeviceRevoked",
    );
    key.destroy();
  });

  test("the proxy counts every call (control for the zero counts above)", async () => {
    const before = total();
    await chain.publicClient.getBlockNumber({ cacheTime: 0 });
    assert.equal(total(), before + 1);
  });
});
