// End to end with the indexer: a 2-node devnet (real wireguard-go in namespaces, the indexer with its own
// dstack simulator, registered by the owner). Sidecars subscribe and are woken by verified pushes when a
// node joins; with the indexer killed, they drop the subscription and a later join still converges by
// polling. Started in its test-only lying mode, the indexer silently drops every log of node4 (correctly
// signing everything else): node4 still joins every node's mesh, the subscriptions stay up (a lie by
// omission is invisible to signature checks) and the sidecars' lag detector flags the indexer. Needs root and /dev/net/tun; run under the machine-wide devnet lock.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { cli, devnetSkip, eventually } from "./helpers/devnet.ts";

const skip = devnetSkip;

interface NodeEntry {
  name: string;
  appId: string;
  netns: string;
  wgInterface: string;
  wgPublicKey: string | null;
  healthUrl: string;
  phase: string;
}

interface Health {
  phase: string;
  indexerSubscribed: boolean;
  lastVerifiedPushBlock: string | null;
  peers: Array<{ publicKey: string; latestHandshake: number }>;
}

async function health(node: NodeEntry): Promise<Health> {
  const response = await fetch(node.healthUrl, { signal: AbortSignal.timeout(2_000) });
  return (await response.json()) as Health;
}

/** The sidecar's `attestmesh_indexer_lagging_logs_total` (summed over any labels). */
async function laggingLogs(node: NodeEntry): Promise<number> {
  const url = node.healthUrl.replace(/\/healthz$/, "/metrics");
  const text = await (await fetch(url, { signal: AbortSignal.timeout(2_000) })).text();
  let total = 0;
  for (const line of text.split("\n")) {
    const match = /^attestmesh_indexer_lagging_logs_total(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (match) total += Number(match[1]);
  }
  return total;
}

/** Whether every node has `joined` as a handshaken peer. */
async function converged(nodes: readonly NodeEntry[], joined: NodeEntry): Promise<true | undefined> {
  const views = await Promise.all(nodes.map(health));
  return views.every((h) => h.peers.some((p) => p.publicKey === joined.wgPublicKey && p.latestHandshake > 0))
    ? true
    : undefined;
}

describe("devnet with the indexer", { skip, timeout: 600_000 }, () => {
  let nodes: NodeEntry[] = [];
  let indexer: { url: string; pid: number; testOnlySuppressedAppIds?: string[] } | null = null;

  before(async () => {
    // node1, node2 now; node3 joins honestly pushed; node4's logs the lying indexer drops.
    const status = JSON.parse(
      await cli(["devnet", "up", "--detach", "--json", "--nodes", "2", "--indexer-suppress-node", "node4"]),
    ) as {
      nodes: NodeEntry[];
      indexer: { url: string; pid: number; testOnlySuppressedAppIds?: string[] } | null;
    };
    nodes = status.nodes;
    indexer = status.indexer;
  });

  after(async () => {
    await cli(["devnet", "down"]).catch(() => {});
  });

  it("reports the indexer and every sidecar holds a verified subscription", async () => {
    assert.ok(indexer, "devnet status names the indexer");
    assert.match(indexer.url, /^ws:\/\/127\.0\.0\.1:\d+$/);
    for (const node of nodes) {
      await eventually(`${node.name} to subscribe`, async () =>
        (await health(node)).indexerSubscribed ? true : undefined,
      );
    }
  });

  it("a join reaches every node through a verified push", async () => {
    const before = await Promise.all(nodes.map(health));
    const joined = JSON.parse(await cli(["devnet", "add-node", "--json"])) as NodeEntry;
    await eventually("every node to handshake with the new one", () => converged(nodes, joined));
    const after = await Promise.all(nodes.map(health));
    for (const [i, h] of after.entries()) {
      assert.ok(h.lastVerifiedPushBlock !== null, `${nodes[i]!.name} verified a push`);
      assert.ok(
        before[i]!.lastVerifiedPushBlock === null ||
          BigInt(h.lastVerifiedPushBlock) > BigInt(before[i]!.lastVerifiedPushBlock),
        `${nodes[i]!.name} was pushed the join`,
      );
    }
    nodes = [...nodes, joined];
  });

  it("with the indexer suppressing a member's events, it still joins every node's mesh", async () => {
    assert.ok(indexer);
    assert.equal(indexer.testOnlySuppressedAppIds?.length, 1, "the devnet runs the indexer in lying mode");
    const laggingBefore = await Promise.all(nodes.map(laggingLogs));
    const joined = JSON.parse(await cli(["devnet", "add-node", "--json"])) as NodeEntry;
    assert.equal(joined.name, "node4");
    assert.equal(
      joined.appId.toLowerCase(),
      indexer.testOnlySuppressedAppIds?.[0]?.toLowerCase(),
      "the joining node is the one whose logs the indexer drops",
    );
    // Every sample while it converges: each existing sidecar still holds a verified subscription.
    const dropped: string[] = [];
    const started = Date.now();
    await eventually(
      "every node to handshake with the suppressed one",
      async () => {
        const views = await Promise.all(nodes.map(health));
        for (const [i, h] of views.entries()) if (!h.indexerSubscribed) dropped.push(nodes[i]!.name);
        return converged(nodes, joined);
      },
      60_000,
    );
    const convergedMs = Date.now() - started;
    assert.deepEqual(dropped, [], "no subscription dropped: the omission is invisible to signatures");
    await eventually(
      "every existing node's lag detector to flag the indexer",
      async () => {
        const lagging = await Promise.all(nodes.map(laggingLogs));
        return lagging.every((n, i) => n > laggingBefore[i]!) ? true : undefined;
      },
      30_000,
    );
    for (const node of nodes) assert.equal((await health(node)).indexerSubscribed, true, node.name);
    process.stderr.write(`suppressed node4 converged on every node in ${convergedMs} ms after add-node\n`);
    nodes = [...nodes, joined];
  });

  it("with the indexer killed, subscriptions drop and a join still converges by polling", async () => {
    assert.ok(indexer);
    process.kill(indexer.pid, "SIGKILL");
    for (const node of nodes) {
      await eventually(`${node.name} to notice`, async () =>
        (await health(node)).indexerSubscribed ? undefined : true,
      );
    }
    const pushedBefore = (await Promise.all(nodes.map(health))).map((h) => h.lastVerifiedPushBlock);
    const joined = JSON.parse(await cli(["devnet", "add-node", "--json"])) as NodeEntry;
    await eventually("every node to handshake with the new one, by polling", () => converged(nodes, joined));
    const after = await Promise.all(nodes.map(health));
    assert.deepEqual(
      after.map((h) => h.lastVerifiedPushBlock),
      pushedBefore,
      "no push was verified while the indexer was down",
    );
    for (const h of after) assert.equal(h.indexerSubscribed, false);
  });
});
