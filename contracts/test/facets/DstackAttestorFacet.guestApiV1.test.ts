// Registration and the indexer registry with dstack guest API v1 chains (dstack 0.6, `/v1/GetKey`):
// the proof's `guestApiVersion` says which message link 0 signed; a chain is accepted only as the
// version it was issued for, and an unknown version is refused before anything is checked.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { simulatedNodeKeysV1 } from "@attestmesh/devnet/dstack-sim/node.ts";
import type { KmsRoot } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { appSignKeyClaimV1, deriveKeyV1 } from "@attestmesh/shared/dstack/guestV1.ts";
import {
  deriveAppKey,
  derivedPublicKey,
  kmsSignAppKey,
  secp256k1PublicKey,
} from "@attestmesh/shared/dstack/keychain.ts";
import { compressedToAddress } from "@attestmesh/shared/dstack/verify.ts";
import { INDEXER_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { type Address, bytesToHex, type Hex, hexToBytes, parseEventLogs } from "viem";
import {
  randomAppId,
  type SimulatedNode,
  setupCluster,
  simulatedNode,
} from "../../../test/helpers/cluster.ts";
import { expectRevert } from "../../../test/helpers/revert.ts";
import { mined, registerWith } from "../utils/chain.ts";

/** A node whose keys come from guest API v1: v1 KDF, link 0 over the v1 key claim. */
function simulatedNodeV1(kmsRoot: KmsRoot, appId: Address = randomAppId()): SimulatedNode {
  return { ...simulatedNode(kmsRoot, appId), ...simulatedNodeKeysV1(kmsRoot, appId) };
}

describe("register with guest API v1 chains", async () => {
  const fx = await setupCluster();
  /** Allows `node`'s app id, then sends its registration with `proof` (its own unless given). */
  const registerTx = async (node: SimulatedNode, proof = node.proof) => {
    await mined(fx, await fx.owner.write.addAppId([node.appId]));
    return registerWith(fx, node, proof);
  };

  it("admits a v1 member, its member key the v1 key, under the chain's KMS root", async () => {
    const node = simulatedNodeV1(fx.kmsRoot);
    assert.notEqual(node.memberAccount.address, simulatedNode(fx.kmsRoot, node.appId).memberAccount.address);
    const { receipt } = await mined(fx, await registerTx(node));
    const [event] = parseEventLogs({ abi: clusterAbi, logs: receipt.logs, eventName: "MemberRegistered" });
    assert.equal(event?.args.memberKey, node.memberAccount.address);
    assert.equal(event?.args.kmsRoot, fx.kmsRoot.address);
    assert.equal(event?.args.appId, node.appId);
  });

  it("refuses a v1 chain presented as v0 and a v0 chain presented as v1, and admits nobody", async () => {
    for (const [node, version] of [
      [simulatedNodeV1(fx.kmsRoot), 0],
      [simulatedNode(fx.kmsRoot), 1],
    ] as const) {
      const relabelled = { ...node.proof, guestApiVersion: version };
      const revert = await expectRevert(registerTx(node, relabelled), "AppSignatureMismatch");
      assert.equal(
        revert.args[0],
        compressedToAddress(hexToBytes(node.proof.appPubkey)),
        "names the app key",
      );
      assert.deepEqual(await fx.owner.read.memberOfApp([node.appId]), [0n, false]);
      assert.equal(await fx.owner.read.registrationNonce([node.appId]), 0n);
    }
  });

  it("refuses a v1 chain for another domain (the indexer's) as a member key", async () => {
    const node = simulatedNodeV1(fx.kmsRoot);
    const appKey = deriveAppKey(fx.kmsRoot.secret, hexToBytes(node.appId));
    const memberPubkey = hexToBytes(node.proof.memberPubkey);
    const proof = {
      ...node.proof,
      appSignature: bytesToHex(appSignKeyClaimV1(appKey, INDEXER_KEY.purpose, memberPubkey)),
    };
    await expectRevert(registerTx(node, proof), "AppSignatureMismatch");
    assert.deepEqual(await fx.owner.read.memberOfApp([node.appId]), [0n, false]);
  });

  it("refuses an unknown guest API version with UnsupportedGuestApiVersion", async () => {
    for (const version of [2, 255]) {
      const node = simulatedNodeV1(fx.kmsRoot);
      await expectRevert(
        registerTx(node, { ...node.proof, guestApiVersion: version }),
        "UnsupportedGuestApiVersion",
        [version],
      );
      assert.deepEqual(await fx.owner.read.memberOfApp([node.appId]), [0n, false]);
    }
  });
});

describe("setIndexer with guest API v1 chains", async () => {
  const fx = await setupCluster();

  function indexerV1(appId: Address = randomAppId()) {
    const appKey = deriveAppKey(fx.kmsRoot.secret, hexToBytes(appId));
    const signingKey = derivedPublicKey(deriveKeyV1(appKey, "ed25519", INDEXER_KEY.purpose), "ed25519");
    const appPubkey = secp256k1PublicKey(appKey);
    return {
      appId,
      signingKey: bytesToHex(signingKey),
      proof: {
        appId,
        appPubkey: bytesToHex(appPubkey),
        appSignature: bytesToHex(appSignKeyClaimV1(appKey, INDEXER_KEY.purpose, signingKey)),
        kmsSignature: bytesToHex(kmsSignAppKey(fx.kmsRoot.secret, hexToBytes(appId), appPubkey)),
        guestApiVersion: 1,
      },
    };
  }
  /** A compose hash allowed for the indexer role (IPolicy.AppRole.Indexer = 1), as setIndexer needs. */
  const codeId = async (): Promise<Hex> => {
    const code = bytesToHex(randomBytes(32));
    await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.owner.write.addComposeHashFor([code, 1]),
    });
    return code;
  };

  it("records a v1 indexer whose Ed25519 key the v1 chain proves", async () => {
    const indexer = indexerV1();
    await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.owner.write.addAppIdFor([indexer.appId, 1]),
    });
    const code = await codeId();
    await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.owner.write.setIndexer([
        "wss://indexer.example/ws",
        code,
        indexer.signingKey,
        indexer.proof,
      ]),
    });
    const record = await fx.owner.read.indexer();
    assert.equal(record.signingKey, indexer.signingKey);
    assert.equal(record.kmsRoot, fx.kmsRoot.address);
    assert.equal(record.codeId, code);
  });

  it("refuses the v1 chain presented as v0, and an unknown version, changing nothing", async () => {
    const before = await fx.owner.read.indexer();
    const indexer = indexerV1();
    await fx.publicClient.waitForTransactionReceipt({
      hash: await fx.owner.write.addAppIdFor([indexer.appId, 1]),
    });
    const code = await codeId();
    const set = (proof: typeof indexer.proof) =>
      fx.owner.write.setIndexer(["wss://other.example/ws", code, indexer.signingKey, proof]);
    await expectRevert(set({ ...indexer.proof, guestApiVersion: 0 }), "AppSignatureMismatch");
    await expectRevert(set({ ...indexer.proof, guestApiVersion: 2 }), "UnsupportedGuestApiVersion", [2]);
    assert.deepEqual(await fx.owner.read.indexer(), before);
  });
});
