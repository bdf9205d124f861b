// End to end: the Cluster Shared Key and heartbeats on a devnet with real WireGuard in network
// namespaces. Every node holds the CSK whose keccak256 is the chain's commitment; a later node gets it;
// a member serving a bogus CSK is rejected and the requester gets it from an honest peer; forged and
// replayed heartbeats are not counted; an eviction opens a new epoch that every remaining node holds
// and the evicted one does not; when the chosen committer is dead, the next live member takes over.
// Needs root and /dev/net/tun, like devnet.test.ts; run it under the netns lock.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { DevnetNode, DevnetState } from "@attestmesh/devnet/orchestration/state.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { loadSodium, randomBytes, signingKeyFromSeed } from "@attestmesh/sidecar/meshnet/crypto.ts";
import { gossipHeartbeat } from "@attestmesh/sidecar/testing/helpers.ts";
import { createPublicClient, type Hex, http, zeroHash } from "viem";
import {
  cli,
  devnetSkip,
  devnetState,
  eventually,
  execFileAsync,
  healthOf,
  type MemberHealth,
  metricOf,
  nodeSigningKey,
  ROOT,
} from "./helpers/devnet.ts";

const BOGUS_ENTRY = join(ROOT, "test/e2e/fixtures/bogus-csk-sidecar.ts");
const MESH_PORT = 51821;

const skip = devnetSkip;

interface HealthPeer {
  memberId: string;
  live: boolean;
  heartbeat: { epoch: string; holdsCsk: boolean; counter: string; sentAtMs: string; heard: string[] } | null;
}
interface Health extends MemberHealth {
  cskCommitment: string | null;
  livePeers: number;
  converged: boolean;
  peers: HealthPeer[];
}

const health = (node: DevnetNode) => healthOf<Health>(node);

/** Sends one UDP datagram from inside `netns` (so through its WireGuard interface) to a mesh address. */
async function sendFrom(netns: string, datagram: Uint8Array, ip: string, port: number): Promise<void> {
  const script = `const d=require("node:dgram").createSocket("udp4");d.send(Buffer.from("${Buffer.from(datagram).toString("hex")}","hex"),${port},"${ip}",(e)=>{d.close();process.exit(e?1:0)});`;
  await execFileAsync("ip", ["netns", "exec", netns, process.execPath, "-e", script], { timeout: 10_000 });
}

describe("CSK and heartbeats end to end", { skip }, () => {
  let state: DevnetState;
  let client: ReturnType<typeof createPublicClient>;
  const stopped = new Set<number>();

  const node = (name: string) => {
    const n = state.nodes.find((x) => x.name === name);
    assert.ok(n, `no ${name}`);
    return n;
  };
  const currentCsk = async () => {
    const [epoch, commitment, committer] = await client.readContract({
      address: state.diamond,
      abi: clusterAbi,
      functionName: "currentCsk",
    });
    return { epoch, commitment, committer };
  };
  const pause = (n: DevnetNode) => {
    process.kill(n.sidecarPid, "SIGSTOP");
    stopped.add(n.sidecarPid);
  };
  const resume = (n: DevnetNode) => {
    process.kill(n.sidecarPid, "SIGCONT");
    stopped.delete(n.sidecarPid);
  };
  /** Every named node holds `epoch` with the chain's commitment. */
  const allHold = async (names: string[], epoch: bigint, commitment: Hex) => {
    for (const name of names) {
      const h = await health(node(name));
      if (h.cskEpoch !== epoch.toString() || !h.cskAcquired || h.cskCommitment !== commitment) return false;
    }
    return true;
  };

  before(async () => {
    await loadSodium();
    await cli(["devnet", "up", "--detach", "--json", "--nodes", "3"]);
    state = await devnetState();
    client = createPublicClient({ transport: http(state.rpcUrl) });
  });

  after(async () => {
    for (const pid of stopped) {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        // gone
      }
    }
    await cli(["devnet", "down"]).catch(() => {});
  });

  it("every node holds the same CSK, whose keccak256 is the chain's epoch-0 commitment", async () => {
    const chain = await currentCsk();
    assert.equal(chain.epoch, 0n);
    assert.notEqual(chain.commitment, zeroHash);
    const first = await health(node("node1"));
    assert.equal(chain.committer.toString(), first.memberId, "the first member committed epoch 0");
    for (const name of ["node1", "node2", "node3"]) {
      const h = await health(node(name));
      assert.equal(h.phase, "healthy", `${name} is ${h.phase}`);
      assert.equal(h.cskEpoch, "0");
      assert.equal(h.cskAcquired, true);
      assert.equal(h.cskCommitment, chain.commitment, `${name} holds the committed key`);
      assert.equal(h.converged, true);
      assert.equal(h.livePeers, 2);
    }
  });

  it("a member serving a bogus CSK is rejected; the requester then gets the key from an honest peer", async () => {
    // node4 runs the real sidecar but answers CSK requests with random keys. It pulls honestly itself.
    await cli(["devnet", "add-node", "--json", "--sidecar-entry", BOGUS_ENTRY]);
    state = await devnetState();
    const bogus = await health(node("node4"));
    const chain = await currentCsk();
    assert.equal(bogus.cskCommitment, chain.commitment, "a node added later gets the CSK");

    // With the honest members paused, node5 hears only node4, so node4 must be asked first.
    for (const name of ["node1", "node2", "node3"]) pause(node(name));
    const adding = cli(["devnet", "add-node", "--json", "--timeout", "180"]);
    adding.catch(() => {});
    const log = join(ROOT, ".devnet/node5/sidecar.log");
    const rejection = await eventually(
      "node5 to reject node4's bogus CSK",
      async () => {
        const text = await readFile(log, "utf8").catch(() => "");
        return text
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { msg: string; peer?: string; reason?: string })
          .find((l) => l.reason === "hash-mismatch");
      },
      120_000,
    );
    assert.equal(rejection.peer, bogus.memberId, "the rejection names the bogus peer");
    assert.match(rejection.msg, /bogus CSK from member/);
    try {
      assert.equal((await health(node("node4"))).cskAcquired, true, "node4 still holds the real key");
      const five = await devnetState();
      const node5 = five.nodes.find((n) => n.name === "node5")!;
      const pending = await health(node5);
      assert.equal(pending.cskAcquired, false, "no key accepted from the bogus peer");
      assert.equal(pending.cskCommitment, null);
    } finally {
      for (const name of ["node1", "node2", "node3"]) resume(node(name));
    }
    await adding;
    state = await devnetState();
    const h5 = await health(node("node5"));
    assert.equal(h5.cskCommitment, chain.commitment, "node5 got the real CSK from an honest peer");
    const text = await readFile(log, "utf8");
    const acquired = text
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { msg: string; from?: string })
      .find((l) => /CSK acquired from a peer/.test(l.msg));
    assert.ok(acquired, "node5 logged where the key came from");
    assert.notEqual(acquired.from, bogus.memberId);
    assert.ok(
      (await metricOf(node("node5"), "attestmesh_csk_rejected_total", 'reason="hash-mismatch"')) >= 1,
    );
  });

  it("a liveness datagram signed by the wrong key, from an unknown member, or replayed, is not counted", async () => {
    const target = node("node1");
    const sender = node("node3");
    // node1 was paused in the previous test; let the mesh settle first.
    await eventually("node1 to be converged", async () => (await health(target)).converged);
    const targetHealth = await health(target);
    const senderHealth = await health(sender);
    const senderId = BigInt(senderHealth.memberId!);
    const realKey = await nodeSigningKey(sender);
    const wrongKey = signingKeyFromSeed(randomBytes(32));
    const cluster = { chainId: state.chainId, cluster: state.diamond };
    const count = (result: string) =>
      metricOf(target, "attestmesh_heartbeats_received_total", `result="${result}"`);
    /** A gossip datagram (no statements) from `senderId` at `incarnation`, signed by `key`. */
    const gossip = (id: bigint, incarnation: bigint, key: typeof realKey) =>
      gossipHeartbeat({ ...cluster, senderId: id, incarnation, epoch: 0n, holdsCsk: true }, key.sign);

    // Wrong key: a fresh, well-formed datagram claiming to be node3 at a higher incarnation, signed by
    // another key.
    const badBefore = await count("bad-signature");
    const forgedIncarnation = BigInt(Date.now()) * 1000n + 999_999n;
    await sendFrom(
      sender.netns,
      gossip(senderId, forgedIncarnation, wrongKey),
      targetHealth.meshIp!,
      MESH_PORT,
    );
    await eventually(
      "node1 to refuse the forged datagram",
      async () => (await count("bad-signature")) > badBefore,
      15_000,
    );
    const peer3 = (await health(target)).peers.find((p) => p.memberId === senderHealth.memberId)!;
    assert.notEqual(
      peer3.heartbeat?.counter,
      forgedIncarnation.toString(),
      "the forged incarnation was not taken",
    );
    assert.equal(peer3.live, true, "the real node3 stays live");

    // Unknown member: a correctly signed datagram from an id that is not an active member.
    const unknownBefore = await count("unknown-member");
    await sendFrom(sender.netns, gossip(999n, 1n, wrongKey), targetHealth.meshIp!, MESH_PORT);
    await eventually(
      "node1 to refuse the stranger",
      async () => (await count("unknown-member")) > unknownBefore,
      15_000,
    );

    // Replay: a datagram node3's real key signed, at node3's current incarnation, sent twice: the first
    // counts, the second is a replay.
    const replayBefore = await count("replay");
    const acceptedBefore = await count("accepted");
    const incarnation = BigInt(peer3.heartbeat!.counter);
    const genuine = gossip(senderId, incarnation, realKey);
    await sendFrom(sender.netns, genuine, targetHealth.meshIp!, MESH_PORT);
    await eventually(
      "node1 to count it once",
      async () => (await count("accepted")) > acceptedBefore,
      15_000,
    );
    await sendFrom(sender.netns, genuine, targetHealth.meshIp!, MESH_PORT);
    await eventually(
      "node1 to refuse the replay",
      async () => (await count("replay")) > replayBefore,
      15_000,
    );
    realKey.destroy();
    wrongKey.destroy();
    await eventually("the mesh to stay converged", async () => (await health(target)).converged, 10_000);
  });

  it("an eviction opens a new epoch that every remaining node holds and the evicted node does not", async () => {
    const evicted = node("node2");
    const before = await currentCsk();
    const started = Date.now();
    await cli(["devnet", "evict", "node2"]);
    const after = await eventually("epoch 1 to be committed", async () => {
      const c = await currentCsk();
      return c.epoch === before.epoch + 1n && c.commitment !== zeroHash ? c : undefined;
    });
    assert.notEqual(after.commitment, before.commitment);
    assert.equal(
      after.committer.toString(),
      (await health(node("node1"))).memberId,
      "the lowest live member rotates",
    );
    const remaining = ["node1", "node3", "node4", "node5"];
    await eventually("every remaining node to hold epoch 1", () =>
      allHold(remaining, after.epoch, after.commitment),
    );
    process.stderr.write(`# rotation after eviction (N=5 -> 4): ${Date.now() - started} ms\n`);
    const gone = await eventually("node2 to leave the mesh", async () => {
      const h = await health(evicted);
      return h.memberId === null ? h : undefined;
    });
    assert.notEqual(gone.cskEpoch, after.epoch.toString(), "the evicted node does not hold the new epoch");
    assert.equal(gone.cskCommitment, null, "the evicted node zeroed its key");
  });

  it("when the chosen committer is dead, the next live member takes over the rotation", async () => {
    const first = node("node1");
    const firstId = (await health(first)).memberId;
    const before = await currentCsk();
    const started = Date.now();
    pause(first);
    let after: Awaited<ReturnType<typeof currentCsk>>;
    try {
      await cli(["devnet", "evict", "node5"]);
      after = await eventually(
        "another member to commit the new epoch",
        async () => {
          const c = await currentCsk();
          return c.epoch === before.epoch + 1n && c.commitment !== zeroHash ? c : undefined;
        },
        90_000,
      );
      process.stderr.write(`# takeover: epoch committed ${Date.now() - started} ms after the eviction\n`);
      assert.notEqual(after.committer.toString(), firstId, "node1 was paused and cannot have committed");
      assert.equal(
        after.committer.toString(),
        (await health(node("node3"))).memberId,
        "the next live member by id",
      );
      const committed = after;
      await eventually("node3 and node4 to hold it", () =>
        allHold(["node3", "node4"], committed.epoch, committed.commitment),
      );
    } finally {
      resume(first);
    }
    const committed = after;
    await eventually("node1, back, to pull the new epoch", () =>
      allHold(["node1"], committed.epoch, committed.commitment),
    );
  });
});
