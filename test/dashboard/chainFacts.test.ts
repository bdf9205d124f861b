// The dashboard's chain reader against a real cluster (in-process Hardhat over HTTP): members with the
// KMS root that admitted them, an eviction, a revoked app id and a withdrawn KMS root as drift, the policy
// trail equal to `attestmesh policy history --json`, and new blocks read incrementally.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { createKmsRoot } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { buildView } from "@attestmesh/scripts/dashboard/buildView.ts";
import { createChainReader } from "@attestmesh/scripts/dashboard/chainFacts.ts";
import { clusterContext } from "@attestmesh/scripts/owner/context.ts";
import { getAddress } from "viem";
import { cliCluster } from "../helpers/cli.ts";
import { admit, simulatedNode } from "../helpers/cluster.ts";

const quietIo = {
  stdout: { write: () => true },
  stderr: { write: () => true },
  interactive: false,
  env: {},
};

describe("dashboard chain reader", async () => {
  const fx = await cliCluster();
  const ok = async (args: string[]) => {
    const run = await fx.cli([...args, "--yes"]);
    assert.equal(run.code, 0, run.stderr);
  };

  it("reads members, drift and the policy trail as the CLI sees them", async () => {
    const nodes = [simulatedNode(fx.kmsRoot), simulatedNode(fx.kmsRoot), simulatedNode(fx.kmsRoot)];
    const ids: bigint[] = [];
    for (const node of nodes) ids.push(await admit(fx, node));
    const otherRoot = createKmsRoot(new Uint8Array(randomBytes(32)));
    await ok(["allow", "kms-root", otherRoot.address]);
    const late = simulatedNode(otherRoot);
    const lateId = await admit(fx, late);

    const ctx = await clusterContext(quietIo, { rpc: fx.rpcUrl, cluster: fx.deployed.diamond });
    const reader = createChainReader(ctx);
    const first = buildView(await reader.read(), new Map(), Date.now());
    assert.deepEqual(
      first.members.map((m) => [m.memberId, m.status, m.kmsRoot]),
      [
        ...ids.map((id) => [id.toString(), "active", getAddress(fx.kmsRoot.address)]),
        [lateId.toString(), "active", getAddress(otherRoot.address)],
      ],
    );
    assert.equal(first.policy.drift.length, 0);
    assert.equal(first.spend.available, false);

    // The owner evicts one member, revokes another's app id (which ends its membership too), takes a
    // third's app id off the allowlist and withdraws the late member's KMS root.
    await ok(["evict", ids[0]!.toString()]);
    await ok(["revoke", "app", nodes[1]!.appId, "--reason", "leaked"]);
    await ok(["deny", "app", nodes[2]!.appId]);
    await ok(["deny", "kms-root", otherRoot.address]);

    const view = buildView(await reader.read(), new Map(), Date.now());
    assert.equal(view.members.find((m) => m.memberId === ids[0]!.toString())?.status, "evicted");
    assert.deepEqual(
      view.policy.drift.map((d) => [d.kind, d.memberId]).sort(),
      [
        ["app-id-withdrawn", ids[2]!.toString()],
        ["kms-root-withdrawn", lateId.toString()],
      ].sort(),
    );
    const revoked = view.members.find((m) => m.memberId === ids[1]!.toString())!;
    assert.equal(revoked.status, "evicted", "a revocation ends the membership: no drift left to show");
    assert.ok(revoked.appIdRevokedAt !== null);

    const history = (await fx.cli(["policy", "history", "--json"])).json<{
      events: Array<Record<string, unknown>>;
      policy: { appIds: string[]; kmsRoots: string[]; appIdRevocations: Array<{ appId: string }> };
    }>();
    assert.deepEqual(
      view.policy.events.map(({ at, ...rest }) => rest),
      history.events,
      "the dashboard's trail is `policy history --json`'s",
    );
    assert.ok(view.policy.events.every((e) => e.at !== null));
    assert.deepEqual(view.policy.now.kmsRoots, history.policy.kmsRoots);
    assert.deepEqual(
      view.policy.now.appIdRevocations.map((r) => r.appId),
      history.policy.appIdRevocations.map((r) => r.appId),
    );
    assert.equal(view.chain.cluster, getAddress(fx.deployed.diamond));
  });
});
