// The devnet's `evict <node>` goes through the owner CLI's eviction path (owner/members.ts evictPlan and
// owner/transact.ts), so it behaves exactly as `attestmesh evict <appId>`.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { devnetClients, evictApp } from "@attestmesh/devnet/orchestration/chain.ts";
import { cliCluster } from "../helpers/cli.ts";
import { admit, simulatedNode } from "../helpers/cluster.ts";

describe("devnet evict", async () => {
  const fx = await cliCluster();

  it("evicts the app's member as the owner and returns its member id; a second eviction is refused", async () => {
    const node = simulatedNode(fx.kmsRoot);
    const memberId = await admit(fx, node);
    const clients = devnetClients(fx.rpcUrl, fx.chainId);
    assert.equal(await evictApp(clients, fx.deployed.diamond, node.appId, 3), memberId);
    const record = await fx.owner.read.member([memberId]);
    assert.equal(record.status, 3, "evicted");
    assert.equal(record.endReason, 3);
    await assert.rejects(evictApp(clients, fx.deployed.diamond, node.appId, 3), { code: "NoActiveMember" });
  });
});
