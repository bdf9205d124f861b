// The funded-key writer on an in-process Hardhat chain: calls that the node's loops submit at the same
// moment through one gas key all land, each in its own transaction, instead of colliding on one nonce.
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { custom, type Hex } from "viem";
import {
  type ClusterFixture,
  setupCluster,
  signRegistration,
  simulatedNode,
} from "../../../test/helpers/cluster.ts";
import { type ChainContext, connectChain } from "../../src/chain/client.ts";
import { createDirectWriter } from "../../src/chain/directWriter.ts";
import { secret } from "../../src/secret.ts";
import { captureLogger } from "../helpers.ts";

/** Hardhat's well-known account #6, used by no other test of this file's fixture. */
const GAS_KEY: Hex = "0xdf57089febbacf7ba0bc227dafbffa9fc08a93fdc68e1e42411a14efcf23656e";

describe("the funded-key writer", () => {
  let fx: ClusterFixture;
  let chain: ChainContext;

  before(async () => {
    fx = await setupCluster();
    chain = await connectChain({
      transport: custom(fx.connection.provider, { retryCount: 0 }),
      cluster: fx.deployed.diamond,
      gasKey: secret(GAS_KEY),
    });
  });

  test("calls submitted at the same moment through one gas key all land, one transaction each", async () => {
    const writer = createDirectWriter({ chain, wallet: chain.wallet!, logger: captureLogger().logger });
    const nodes = [1, 2, 3, 4, 5].map(() => simulatedNode(fx.kmsRoot));
    for (const node of nodes) await fx.owner.write.addAppId([node.appId]);
    const nonceBefore = await fx.publicClient.getTransactionCount({ address: writer.from });
    const receipts = await Promise.all(
      nodes.map(async (node) =>
        writer.submit({
          functionName: "register",
          args: [
            node.proof,
            node.wireguardKey,
            node.identityKey,
            node.claims,
            await signRegistration(fx, node),
          ],
        }),
      ),
    );
    assert.deepEqual(
      receipts.map((r) => r.status),
      nodes.map(() => "success"),
    );
    assert.equal(new Set(receipts.map((r) => r.txHash)).size, nodes.length);
    assert.equal(
      await fx.publicClient.getTransactionCount({ address: writer.from }),
      nonceBefore + nodes.length,
      "one nonce each, none skipped",
    );
    for (const node of nodes) {
      const [memberId] = await fx.owner.read.memberOfApp([node.appId]);
      assert.ok(memberId > 0n, `${node.appId} is a member`);
    }
  });
});
