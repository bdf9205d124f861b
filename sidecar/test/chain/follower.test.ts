// The membership follower on an in-process Hardhat chain, through a transport that counts every
// JSON-RPC call: one change on chain costs eth_blockNumber + eth_getLogs + one eth_call per changed id.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { custom, getAbiItem } from "viem";
import { admit, type ClusterFixture, setupCluster, simulatedNode } from "../../../test/helpers/cluster.ts";
import { type ChainContext, connectChain } from "../../src/chain/client.ts";
import { type ClusterReader, createClusterReader } from "../../src/chain/cluster.ts";
import { createMembershipFollower, EXPECTED_MAX, type RegistrationSeen } from "../../src/chain/follower.ts";
import { countingTransport, createRpcTally, type RpcTally } from "../../src/chain/transport.ts";
import { captureLogger } from "../helpers.ts";

describe("membership follower", () => {
  let fx: ClusterFixture;
  let chain: ChainContext;
  let reader: ClusterReader;
  let tally: RpcTally;
  const ids: bigint[] = [];

  /** Direct provider calls (not counted): mining, snapshots. */
  const rpc = (method: string, params: unknown[] = []) => fx.connection.provider.request({ method, params });
  /** One block at a time: EDR's OP chain type panics on a multi-block hardhat_mine here. */
  const mine = async (blocks: number) => {
    for (let i = 0; i < blocks; i++) await rpc("evm_mine");
  };

  /** The JSON-RPC calls of a sync past a new head: the head, its agreed block, then `reads`. */
  const afterNewHead = (reads: Record<string, number>) => ({
    eth_blockNumber: 1,
    eth_getBlockByNumber: 1,
    ...reads,
  });

  const follower = (confirmations = 0, maxLogRange?: bigint) =>
    createMembershipFollower({
      reads: chain.reads,
      cluster: chain.cluster,
      reader,
      confirmations,
      logger: captureLogger().logger,
      ...(maxLogRange === undefined ? {} : { maxLogRange }),
    });

  before(async () => {
    fx = await setupCluster();
    tally = createRpcTally();
    chain = await connectChain({
      transport: countingTransport(custom(fx.connection.provider, { retryCount: 0 }), tally.record),
      cluster: fx.deployed.diamond,
      expectedChainId: fx.chainId,
    });
    reader = createClusterReader(chain.reads, chain.cluster);
    for (let i = 0; i < 3; i++) ids.push(await admit(fx, simulatedNode(fx.kmsRoot)));
  });

  test("start: one full read (agreed block + one page); unchanged head: the head only", async () => {
    const f = follower();
    tally.reset();
    const first = await f.sync();
    assert.equal(first.kind, "full");
    assert.deepEqual([...first.members.keys()], ids);
    assert.ok([...first.members.values()].every((m) => m.status === "active" && m.standing === "good"));
    // One agreed block, one page of records and one of standings.
    assert.deepEqual(tally.byMethod(), afterNewHead({ eth_call: 2 }));

    tally.reset();
    const again = await f.sync();
    assert.equal(again.kind, "unchanged");
    assert.deepEqual(again.changed, []);
    // The head did not move: the block hash agreed for it is reused (chain/reads.ts).
    assert.deepEqual(tally.byMethod(), { eth_blockNumber: 1 });
  });

  test("a new block without membership events: agreed block + getLogs", async () => {
    const f = follower();
    await f.sync();
    await mine(3);
    tally.reset();
    const snapshot = await f.sync();
    assert.equal(snapshot.kind, "incremental");
    assert.deepEqual(snapshot.changed, []);
    assert.deepEqual(tally.byMethod(), afterNewHead({ eth_getLogs: 1 }));
  });

  test("one registration, one eviction: agreed block + getLogs + one member(id) each", async () => {
    const f = follower();
    await f.sync();

    const id = await admit(fx, simulatedNode(fx.kmsRoot));
    tally.reset();
    const registered = await f.sync();
    assert.deepEqual(registered.changed, [id]);
    assert.equal(registered.members.get(id)?.status, "active");
    assert.deepEqual(tally.byMethod(), afterNewHead({ eth_getLogs: 1, eth_call: 1 }));

    await fx.owner.write.evict([ids[1]!, 7]);
    tally.reset();
    const evicted = await f.sync();
    assert.deepEqual(evicted.changed, [ids[1]]);
    assert.equal(evicted.members.get(ids[1]!)?.status, "evicted");
    assert.equal(evicted.members.get(id)?.status, "active", "other records are kept");
    assert.deepEqual(tally.byMethod(), afterNewHead({ eth_getLogs: 1, eth_call: 1 }));
  });

  test("a registration read in the logs: the view says where it was (block, transaction), at no extra call", async () => {
    const f = follower();
    const start = await f.sync();
    assert.equal(start.registrations, undefined, "a full read reads no logs: no locations");
    const id = await admit(fx, simulatedNode(fx.kmsRoot));
    const [log] = await fx.publicClient.getLogs({
      address: fx.deployed.diamond,
      event: getAbiItem({ abi: clusterAbi, name: "MemberRegistered" }),
      args: { memberId: id },
      fromBlock: 0n,
      strict: true,
    });
    await fx.owner.write.evict([ids[0]!, 3]);
    tally.reset();
    const snapshot = await f.sync();
    assert.deepEqual(tally.byMethod(), afterNewHead({ eth_getLogs: 1, eth_call: 2 }));
    assert.deepEqual(
      [...(snapshot.registrations ?? new Map())],
      [[id, { blockNumber: log!.blockNumber, transactionHash: log!.transactionHash }]],
      "the registered id only, not the evicted one",
    );
  });

  test("listeners hear of a registration once its log is read, before any member record is", async () => {
    const f = follower();
    await f.sync();
    const heard: { seen: readonly RegistrationSeen[]; recordsRead: number }[] = [];
    f.onRegistrations?.((seen) => heard.push({ seen, recordsRead: tally.byMethod().eth_call ?? 0 }));
    const node = simulatedNode(fx.kmsRoot);
    const id = await admit(fx, node);
    tally.reset();
    const snapshot = await f.sync();
    assert.equal(heard.length, 1);
    assert.equal(heard[0]!.recordsRead, 0, "before the records");
    assert.deepEqual(heard[0]!.seen, [
      { memberId: id, appId: snapshot.members.get(id)!.appId, location: snapshot.registrations!.get(id)! },
    ]);
    // Nothing registered since: nobody is told anything.
    await mine(1);
    await f.sync();
    assert.equal(heard.length, 1);
  });

  test("two changes between polls: one getLogs, one member(id) per changed id", async () => {
    const f = follower();
    await f.sync();
    const id = await admit(fx, simulatedNode(fx.kmsRoot));
    await fx.owner.write.evict([ids[2]!, 1]);
    tally.reset();
    const snapshot = await f.sync();
    assert.deepEqual([...snapshot.changed].sort(), [id, ids[2]!].sort());
    assert.deepEqual(tally.byMethod(), afterNewHead({ eth_getLogs: 1, eth_call: 2 }));
  });

  test("reads at head − confirmations: a change shows only once confirmed", async () => {
    const f = follower(2);
    await f.sync();
    const id = await admit(fx, simulatedNode(fx.kmsRoot));
    assert.equal((await f.sync()).members.has(id), false, "0 confirmations yet");
    await mine(1);
    assert.equal((await f.sync()).members.has(id), false, "1 confirmation");
    await mine(1);
    const snapshot = await f.sync();
    assert.equal(snapshot.members.get(id)?.status, "active", "2 confirmations");
    assert.equal(snapshot.block, (await fx.publicClient.getBlockNumber()) - 2n);
  });

  test("a gap wider than maxLogRange is a full re-read", async () => {
    const f = follower(0, 5n);
    await f.sync();
    await mine(10);
    tally.reset();
    const snapshot = await f.sync();
    assert.equal(snapshot.kind, "full");
    assert.deepEqual(tally.byMethod(), afterNewHead({ eth_call: 2 }));
  });

  test("a head that moved backwards (reorg) is a full re-read that forgets the dropped blocks", async () => {
    const f = follower();
    await f.sync();
    const snapshotId = await rpc("evm_snapshot");
    const id = await admit(fx, simulatedNode(fx.kmsRoot));
    await mine(2);
    assert.equal((await f.sync()).members.has(id), true);
    await rpc("evm_revert", [snapshotId]);
    const after = await f.sync();
    assert.equal(after.kind, "full");
    assert.equal(after.members.has(id), false);
  });

  test("invalidate forces a full re-read", async () => {
    const f = follower();
    await f.sync();
    f.invalidate("test");
    assert.equal((await f.sync()).kind, "full");
    assert.equal(f.current()?.kind, "full");
  });

  test("a revoked device reaches the view: the policy event forces a full read that carries the standing", async () => {
    const node = simulatedNode(fx.kmsRoot, undefined, { deviceId: new Uint8Array(32).fill(0x5a) });
    const id = await admit(fx, node);
    const f = follower();
    assert.equal((await f.sync()).members.get(id)?.standing, "good");
    const hash = await fx.owner.write.revokeDevice([node.claims.deviceId, `0x${"00".repeat(32)}`]);
    await fx.publicClient.waitForTransactionReceipt({ hash });
    tally.reset();
    const after = await f.sync();
    assert.equal(after.kind, "full");
    assert.equal(after.members.get(id)?.status, "active", "still active until the owner evicts it");
    assert.equal(after.members.get(id)?.standing, "device-revoked");
    assert.deepEqual(tally.byMethod(), afterNewHead({ eth_getLogs: 1, eth_call: 2 }));
  });

  // Issue 15: a pushed change's record is read beside the logs, not a round trip after them.
  describe("changes expected from pushes", () => {
    const head = () => fx.publicClient.getBlockNumber();

    test("the expected record is read beside the logs, and once: the sync's calls are the same", async () => {
      // The same chain through a transport that answers eth_getLogs 150 ms late and notes every call.
      const calls: string[] = [];
      const slow = await connectChain({
        transport: custom(
          {
            async request(args: { method: string; params?: unknown }) {
              calls.push(`asked ${args.method}`);
              if (args.method === "eth_getLogs") await delay(150);
              const answer = await fx.connection.provider.request(
                args as { method: string; params: unknown[] },
              );
              calls.push(`answered ${args.method}`);
              return answer;
            },
          },
          { retryCount: 0 },
        ),
        cluster: fx.deployed.diamond,
        expectedChainId: fx.chainId,
      });
      const f = createMembershipFollower({
        reads: slow.reads,
        cluster: slow.cluster,
        reader: createClusterReader(slow.reads, slow.cluster),
        confirmations: 0,
        logger: captureLogger().logger,
      });
      await f.sync();
      const id = await admit(fx, simulatedNode(fx.kmsRoot));
      f.expect?.(id, await head());
      calls.length = 0;
      const snapshot = await f.sync();
      assert.deepEqual(snapshot.changed, [id]);
      assert.equal(snapshot.members.get(id)?.status, "active");
      const asked = calls.indexOf("asked eth_call");
      assert.ok(asked >= 0 && asked < calls.indexOf("answered eth_getLogs"), calls.join(", "));
      assert.equal(calls.filter((c) => c === "asked eth_call").length, 1, "read once");
    });

    test("with the tally: an expected registration or eviction costs no extra call", async () => {
      const f = follower();
      await f.sync();
      const id = await admit(fx, simulatedNode(fx.kmsRoot));
      f.expect?.(id, await head());
      tally.reset();
      const snapshot = await f.sync();
      assert.deepEqual(snapshot.changed, [id]);
      assert.deepEqual(tally.byMethod(), afterNewHead({ eth_getLogs: 1, eth_call: 1 }));

      await fx.owner.write.evict([id, 7]);
      f.expect?.(id, await head());
      tally.reset();
      const evicted = await f.sync();
      assert.equal(evicted.members.get(id)?.status, "evicted");
      assert.deepEqual(tally.byMethod(), afterNewHead({ eth_getLogs: 1, eth_call: 1 }));
    });

    test("attacker: a pushed registration the logs do not name is read and never used", async () => {
      const f = follower();
      const before = await f.sync();
      await mine(1);
      // A lying push: member ids[0] "registered" in this block, and an id nobody holds.
      f.expect?.(ids[0]!, await head());
      f.expect?.(999n, await head());
      tally.reset();
      const after = await f.sync();
      assert.equal(after.kind, "incremental");
      assert.deepEqual(after.changed, [], "the logs name nobody");
      assert.equal(after.members, before.members, "the view is the one before, not a re-read record");
      assert.deepEqual(tally.byMethod(), afterNewHead({ eth_getLogs: 1, eth_call: 2 }), "two wasted reads");
      // Used up: the next block's sync reads nothing early.
      await mine(1);
      tally.reset();
      await f.sync();
      assert.deepEqual(tally.byMethod(), afterNewHead({ eth_getLogs: 1 }));
    });

    test("attacker: a flood of pushed registrations reads at most EXPECTED_MAX records; past blocks none", async () => {
      const f = follower();
      await f.sync();
      // A block this node has read already: nothing to read early.
      f.expect?.(5000n, await head());
      await mine(1);
      tally.reset();
      await f.sync();
      assert.deepEqual(tally.byMethod(), afterNewHead({ eth_getLogs: 1 }));
      await mine(1);
      for (let i = 0n; i < 200n; i++) f.expect?.(1000n + i, await head());
      tally.reset();
      await f.sync();
      assert.deepEqual(tally.byMethod(), afterNewHead({ eth_getLogs: 1, eth_call: EXPECTED_MAX }));
    });

    test("a registration expected in a block past the sync's waits for the sync that reaches it", async () => {
      const f = follower(1);
      await f.sync();
      const id = await admit(fx, simulatedNode(fx.kmsRoot));
      f.expect?.(id, await head());
      tally.reset();
      assert.equal((await f.sync()).members.has(id), false, "not confirmed yet");
      assert.deepEqual(tally.byMethod(), afterNewHead({ eth_getLogs: 1 }), "nothing read early");
      await mine(1);
      tally.reset();
      assert.equal((await f.sync()).members.get(id)?.status, "active");
      assert.deepEqual(tally.byMethod(), afterNewHead({ eth_getLogs: 1, eth_call: 1 }));
    });
  });
});
