// The CSK facet through createCskChain, on an in-process Hardhat chain with the deployed diamond: each
// custom error the cluster reverts a CSK step with, made to happen for real, maps to its outcome and
// leaves the chain's CSK state as it was; a revert outside a step's table, and a failure that is no
// revert, are thrown, not mapped.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { before, describe, test } from "node:test";
import {
  BaseError,
  bytesToHex,
  ContractFunctionRevertedError,
  custom,
  type Hex,
  keccak256,
  zeroHash,
} from "viem";
import { generatePrivateKey } from "viem/accounts";
import { admitNewNode, type ClusterFixture, setupCluster } from "../../../test/helpers/cluster.ts";
import { type ChainContext, connectChain } from "../../src/chain/client.ts";
import { type CskChain, createCskChain } from "../../src/csk/chain.ts";
import { isAttestmeshError } from "../../src/errors.ts";
import { type Secret, secret } from "../../src/secret.ts";

/** Hardhat's well-known account #6: pays for the members' CSK steps (the fixture uses #0 to #2). */
const GAS_KEY: Hex = "0xdf57089febbacf7ba0bc227dafbffa9fc08a93fdc68e1e42411a14efcf23656e";

/** A fresh key's commitment. */
const newCommitment = (): Hex => keccak256(randomBytes(32));

/** The custom error `error` carries, when it is a revert viem decoded against the cluster's ABI. */
function revertOf(error: unknown): string | undefined {
  if (!(error instanceof BaseError)) return undefined;
  const reverted = error.walk((e) => e instanceof ContractFunctionRevertedError);
  return reverted instanceof ContractFunctionRevertedError ? reverted.data?.errorName : undefined;
}

describe("the CSK facet through createCskChain", () => {
  let fx: ClusterFixture;
  let chain: ChainContext;
  /** Three admitted members: their ids, and each one's CSK steps signed by its member key. */
  const ids: bigint[] = [];
  const members: CskChain[] = [];
  const memberKeys: Secret<Hex>[] = [];

  /** The CSK state on chain, read by the owner's client (not through the code under test). */
  const state = async () => ({
    current: await fx.owner.read.currentCsk(),
    recovery: await fx.owner.read.cskRecovery(),
  });
  const send = async (hash: Promise<Hex>) => {
    await fx.publicClient.waitForTransactionReceipt({ hash: await hash });
  };
  /** The owner abandons the current epoch; returns the new one (open, uncommitted, nobody barred). */
  const openEpoch = async (): Promise<bigint> => {
    await send(fx.owner.write.openCskEpoch());
    const [epoch, commitment] = await fx.owner.read.currentCsk();
    assert.equal(commitment, zeroHash);
    return epoch;
  };
  const passReopenDelay = async () => {
    const delay = await fx.owner.read.cskReopenDelay();
    await fx.connection.provider.request({ method: "evm_increaseTime", params: [Number(delay)] });
    await fx.connection.provider.request({ method: "evm_mine", params: [] });
  };
  /** Runs `step`, asserts its outcome, and that the chain's CSK state is what it was before. */
  const unchangedBy = async (step: () => Promise<string>, outcome: string) => {
    const before = await state();
    assert.equal(await step(), outcome);
    assert.deepEqual(await state(), before, `${outcome} changes nothing on chain`);
  };
  /** Asserts `step` throws the cluster's `errorName` (not mapped) and changes nothing on chain. */
  const throwsRevert = async (step: () => Promise<string>, errorName: string) => {
    const before = await state();
    await assert.rejects(step(), (error: unknown) => {
      assert.equal(revertOf(error), errorName);
      return true;
    });
    assert.deepEqual(await state(), before);
  };

  before(async () => {
    fx = await setupCluster();
    chain = await connectChain({
      transport: custom(fx.connection.provider, { retryCount: 0 }),
      cluster: fx.deployed.diamond,
      expectedChainId: fx.chainId,
      gasKey: secret(GAS_KEY),
    });
    for (let i = 0; i < 3; i++) {
      const { node, id } = await admitNewNode(fx);
      ids.push(id);
      memberKeys.push(secret(bytesToHex(node.memberSecret)));
      members.push(createCskChain(chain, memberKeys[i]!));
    }
  });

  test("commit: committed, then already-committed for a second commitment; the first stands", async () => {
    const [a, b] = members;
    const epoch = await openEpoch();
    const commitment = newCommitment();
    assert.equal(await a!.commit(ids[0]!, epoch, commitment), "committed");
    const [, onChain, committer] = await fx.owner.read.currentCsk();
    assert.equal(onChain, commitment);
    assert.equal(committer, ids[0]);
    assert.deepEqual(await a!.current(), {
      epoch,
      commitment,
      committer: ids[0],
      confirmer: 0n,
      barred: 0n,
    });

    await unchangedBy(() => b!.commit(ids[1]!, epoch, newCommitment()), "already-committed");
    await unchangedBy(() => a!.commit(ids[0]!, epoch, commitment), "already-committed");
  });

  test("commit, confirm and reopen for an epoch the chain moved past: epoch-moved", async () => {
    const [a, b] = members;
    const stale = await openEpoch();
    const commitment = newCommitment();
    assert.equal(await a!.commit(ids[0]!, stale, commitment), "committed");
    const epoch = await openEpoch();
    assert.equal(epoch, stale + 1n);

    await unchangedBy(() => a!.commit(ids[0]!, stale, newCommitment()), "epoch-moved");
    await unchangedBy(() => b!.confirm(ids[1]!, stale, commitment), "epoch-moved");
    await passReopenDelay();
    await unchangedBy(() => b!.reopen(ids[1]!, stale), "epoch-moved");
  });

  test("reopen within the delay after the commitment: too-early", async () => {
    const [a, b] = members;
    const epoch = await openEpoch();
    assert.equal(await a!.commit(ids[0]!, epoch, newCommitment()), "committed");
    const [, , , reopenableAt] = await fx.owner.read.cskRecovery();
    assert.ok(reopenableAt > 0, "an unconfirmed commitment becomes reopenable");

    await unchangedBy(() => b!.reopen(ids[1]!, epoch), "too-early");
  });

  test("reopen once another member confirmed: already-confirmed; a second confirmation changes nothing", async () => {
    const [a, b, c] = members;
    const epoch = await openEpoch();
    const commitment = newCommitment();
    assert.equal(await a!.commit(ids[0]!, epoch, commitment), "committed");
    assert.equal(await b!.confirm(ids[1]!, epoch, commitment), "confirmed");
    const [, confirmer] = await fx.owner.read.cskRecovery();
    assert.equal(confirmer, ids[1]);
    // Past the delay, so only the confirmation stands in the way.
    await passReopenDelay();

    await unchangedBy(() => c!.reopen(ids[2]!, epoch), "already-confirmed");
    // The contract takes a later confirmation without reverting (CskFacet.confirmCsk returns early): the
    // first confirmer stays.
    await unchangedBy(() => c!.confirm(ids[2]!, epoch, commitment), "confirmed");
  });

  test("commit by the committer of the epoch members re-opened: barred; another member commits it", async () => {
    const [a, b] = members;
    const reopened = await openEpoch();
    assert.equal(await a!.commit(ids[0]!, reopened, newCommitment()), "committed");
    await passReopenDelay();
    assert.equal(await b!.reopen(ids[1]!, reopened), "reopened");
    const [epoch, commitment] = await fx.owner.read.currentCsk();
    const [, , barred] = await fx.owner.read.cskRecovery();
    assert.deepEqual([epoch, commitment, barred], [reopened + 1n, zeroHash, ids[0]]);

    await unchangedBy(() => a!.commit(ids[0]!, epoch, newCommitment()), "barred");
    assert.equal(await b!.commit(ids[1]!, epoch, newCommitment()), "committed");
  });

  test("a revert outside a step's table is thrown, not mapped, and changes nothing", async () => {
    const [a, b] = members;
    const uncommitted = await openEpoch();
    // Reopen's table has no CskNotCommitted, confirm's none of the others, commit's no CskCommitmentZero.
    await throwsRevert(() => b!.reopen(ids[1]!, uncommitted), "CskNotCommitted");
    await throwsRevert(() => a!.commit(ids[0]!, uncommitted, zeroHash), "CskCommitmentZero");
    const commitment = newCommitment();
    assert.equal(await a!.commit(ids[0]!, uncommitted, commitment), "committed");
    await throwsRevert(() => a!.confirm(ids[0]!, uncommitted, commitment), "CskOwnCommitment");
    await throwsRevert(() => b!.confirm(ids[1]!, uncommitted, newCommitment()), "CskCommitmentMismatch");
  });

  test("a failure that is no revert is thrown: an unfunded gas key, no gas key at all", async () => {
    const epoch = await openEpoch();
    const unfunded = await connectChain({
      transport: custom(fx.connection.provider, { retryCount: 0 }),
      cluster: fx.deployed.diamond,
      gasKey: secret(generatePrivateKey()),
    });
    const before = await state();
    await assert.rejects(
      createCskChain(unfunded, memberKeys[0]!).commit(ids[0]!, epoch, newCommitment()),
      (e) => isAttestmeshError(e, "GasKeyUnfunded"),
    );
    const keyless = await connectChain({
      transport: custom(fx.connection.provider, { retryCount: 0 }),
      cluster: fx.deployed.diamond,
    });
    const cannot = createCskChain(keyless, memberKeys[0]!);
    assert.equal(cannot.canCommit, false);
    await assert.rejects(cannot.commit(ids[0]!, epoch, newCommitment()), (e) =>
      isAttestmeshError(e, "GasKeyMissing"),
    );
    assert.deepEqual(await state(), before);
  });
});
