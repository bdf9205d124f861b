// End to end with two indexers: a 2-node devnet (real wireguard-go in namespaces) with two indexers,
// each with its own dstack simulator and key, both in the cluster's registry. Every sidecar subscribes to
// both; with the first indexer killed (SIGKILL), its link drops on every node while the second stays up,
// and a join still reaches every node through a verified push from the second: wake-ups continue. Needs
// root and /dev/net/tun; run under the machine-wide devnet lock.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { cli, devnetSkip, eventually } from "./helpers/devnet.ts";

interface NodeEntry {
  name: string;
  wgPublicKey: string | null;
  healthUrl: string;
}

interface Link {
  endpoint: string;
  signingKey: string;
  subscribed: boolean;
  lastVerifiedPushBlock: string | null;
  lagging: boolean;
}

interface Health {
  indexerSubscribed: boolean;
  indexers: Link[];
  peers: Array<{ publicKey: string; latestHandshake: number }>;
}

async function health(node: NodeEntry): Promise<Health> {
  const response = await fetch(node.healthUrl, { signal: AbortSignal.timeout(2_000) });
  return (await response.json()) as Health;
}

describe("devnet with two indexers", { skip: devnetSkip, timeout: 600_000 }, () => {
  let nodes: NodeEntry[] = [];
  let first: { url: string; pid: number };
  let second: { url: string; pid: number };

  before(async () => {
    const status = JSON.parse(
      await cli(["devnet", "up", "--detach", "--json", "--nodes", "2", "--indexers", "2"]),
    ) as {
      nodes: NodeEntry[];
      indexer: { url: string; pid: number };
      moreIndexers: Array<{ url: string; pid: number }>;
    };
    nodes = status.nodes;
    first = status.indexer;
    second = status.moreIndexers[0]!;
  });

  after(async () => {
    await cli(["devnet", "down"]).catch(() => {});
  });

  it("every sidecar holds a verified subscription to each indexer", async () => {
    assert.notEqual(first.url, second.url);
    for (const node of nodes) {
      await eventually(`${node.name} to subscribe to both`, async () => {
        const h = await health(node);
        return h.indexers.length === 2 && h.indexers.every((l) => l.subscribed) ? h : undefined;
      });
      const h = await health(node);
      assert.deepEqual(
        h.indexers.map((l) => l.endpoint),
        [first.url, second.url],
      );
    }
  });

  it("with the first indexer killed, its link drops and a join is still pushed by the second", async () => {
    process.kill(first.pid, "SIGKILL");
    for (const node of nodes) {
      await eventually(`${node.name} to mark the first indexer down`, async () => {
        const h = await health(node);
        return h.indexers[0]?.subscribed === false ? true : undefined;
      });
      const h = await health(node);
      assert.equal(h.indexers[1]?.subscribed, true, `${node.name} keeps the second subscription`);
      assert.equal(h.indexerSubscribed, true);
    }
    const before = await Promise.all(nodes.map(health));
    const joined = JSON.parse(await cli(["devnet", "add-node", "--json"])) as NodeEntry;
    await eventually("every node to handshake with the new one", async () => {
      const views = await Promise.all(nodes.map(health));
      return views.every((h) =>
        h.peers.some((p) => p.publicKey === joined.wgPublicKey && p.latestHandshake > 0),
      )
        ? true
        : undefined;
    });
    const after = await Promise.all(nodes.map(health));
    for (const [i, h] of after.entries()) {
      const was = before[i]!.indexers;
      const now = h.indexers;
      assert.ok(now[1]!.lastVerifiedPushBlock !== null, `${nodes[i]!.name} verified a push from the second`);
      assert.ok(
        was[1]!.lastVerifiedPushBlock === null ||
          BigInt(now[1]!.lastVerifiedPushBlock) > BigInt(was[1]!.lastVerifiedPushBlock),
        `${nodes[i]!.name} was pushed the join by the second indexer`,
      );
      assert.equal(
        now[0]!.lastVerifiedPushBlock,
        was[0]!.lastVerifiedPushBlock,
        `${nodes[i]!.name}: nothing more from the dead indexer`,
      );
      assert.equal(now[0]!.subscribed, false);
    }
  });
});
