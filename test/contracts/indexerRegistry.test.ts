import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { createKmsRoot, createSimulatedCvm, type KmsRoot } from "@attestmesh/scripts/dstack-sim/simulator.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { derivedKeyDigest, derivedPublicKey, kmsIssuedDigest } from "@attestmesh/shared/dstack/keychain.ts";
import { compressedToAddress, recoverSignerAddress } from "@attestmesh/shared/dstack/verify.ts";
import { INDEXER_KEY, MEMBER_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { type Address, bytesToHex, getAddress, type Hex, hexToBytes, parseEventLogs, toHex } from "viem";
import { type ClusterFixture, randomAppId, setupCluster } from "../helpers/cluster.ts";
import { canonical, expectRevert } from "../helpers/revert.ts";

const ZERO32 = toHex(0, { size: 32 });
const randomHash = (): Hex => bytesToHex(randomBytes(32));

/** An indexer CVM's signing key and its dstack chain, as the indexer would submit them. */
function simulatedIndexer(kmsRoot: KmsRoot, appId: Address = randomAppId(), purpose = INDEXER_KEY.purpose) {
  const cvm = createSimulatedCvm({ kmsRoot, appId: hexToBytes(appId) });
  const { key, signatureChain } = cvm.getKey(INDEXER_KEY.path, purpose, "ed25519");
  const signingKey = bytesToHex(derivedPublicKey(key, "ed25519"));
  return {
    appId,
    signingKey,
    appKeyAddress: compressedToAddress(cvm.appPublicKey),
    proof: {
      appId,
      appPubkey: bytesToHex(cvm.appPublicKey),
      appSignature: bytesToHex(signatureChain[0]),
      kmsSignature: bytesToHex(signatureChain[1]),
      guestApiVersion: 0 as 0 | 1,
    },
  };
}

type SimulatedIndexer = ReturnType<typeof simulatedIndexer>;

async function send(fx: ClusterFixture, write: Promise<Hex>) {
  const hash = await write;
  const receipt = await fx.publicClient.waitForTransactionReceipt({ hash });
  assert.equal(receipt.status, "success");
  const decoded = parseEventLogs({ abi: clusterAbi, logs: receipt.logs });
  assert.equal(decoded.length, receipt.logs.length, "every log decodes with the cluster ABI");
  for (const log of receipt.logs) assert.equal(getAddress(log.address), getAddress(fx.deployed.diamond));
  const { timestamp } = await fx.publicClient.getBlock({ blockNumber: receipt.blockNumber });
  return { events: decoded.map((e) => ({ name: e.eventName, args: canonical(e.args) })), timestamp };
}

describe("IndexerRegistryFacet", async () => {
  const fx = await setupCluster();
  const owner = fx.owner;

  /** A fresh indexer whose app id the cluster allows. */
  async function allowedIndexer(): Promise<SimulatedIndexer> {
    const indexer = simulatedIndexer(fx.kmsRoot);
    await send(fx, owner.write.addAppId([indexer.appId]));
    return indexer;
  }

  /** Sets a fresh indexer and returns it with the record's fields. */
  async function setFreshIndexer(endpoint = "wss://indexer.example/ws") {
    const indexer = await allowedIndexer();
    const codeId = randomHash();
    const { events, timestamp } = await send(
      fx,
      owner.write.setIndexer([endpoint, codeId, indexer.signingKey, indexer.proof]),
    );
    return { indexer, codeId, endpoint, events, timestamp };
  }

  /** The call must revert with `errorName(args)`, mine nothing and leave the indexer record as it was. */
  async function expectRefusal(attempt: () => Promise<unknown>, errorName: string, args: readonly unknown[]) {
    const before = await owner.read.indexer();
    const blockBefore = await fx.publicClient.getBlockNumber();
    await expectRevert(attempt(), errorName, args);
    assert.equal(await fx.publicClient.getBlockNumber(), blockBefore, "a refused call mines nothing");
    assert.deepEqual(await owner.read.indexer(), before, "a refused call leaves the record as it was");
  }

  it("reads an empty record before any indexer is set", async () => {
    assert.deepEqual(
      canonical(await owner.read.indexer()),
      canonical({
        signingKey: ZERO32,
        codeId: ZERO32,
        appId: getAddress(toHex(0, { size: 20 })),
        kmsRoot: getAddress(toHex(0, { size: 20 })),
        updatedAt: 0,
        endpoint: "",
      }),
    );
  });

  it("revoking the indexer's app id clears the record in the same transaction and emits IndexerCleared", async () => {
    const { indexer } = await setFreshIndexer();
    const { events } = await send(
      fx,
      owner.write.revokeAppId([indexer.appId, toHex("compromised", { size: 32 })]),
    );
    assert.ok(
      events.some((e) => e.name === "IndexerCleared"),
      "IndexerCleared is emitted",
    );
    const record = await owner.read.indexer();
    assert.equal(record.signingKey, `0x${"00".repeat(32)}`, "a revoked app id no longer vouches for the key");
    assert.equal(record.endpoint, "");
  });

  it("revoking another app id leaves the indexer record alone", async () => {
    const { indexer } = await setFreshIndexer();
    await send(fx, owner.write.revokeAppId([randomAppId(), toHex("other", { size: 32 })]));
    assert.equal((await owner.read.indexer()).signingKey, indexer.signingKey);
  });

  it("setIndexer records an indexer whose key has a valid indexer chain and emits IndexerSet", async () => {
    const { indexer, codeId, endpoint, events, timestamp } = await setFreshIndexer();
    assert.deepEqual(events, [
      {
        name: "IndexerSet",
        args: canonical({
          signingKey: indexer.signingKey,
          appId: indexer.appId,
          codeId,
          kmsRoot: fx.kmsRoot.address,
          endpoint,
        }),
      },
    ]);
    assert.deepEqual(
      canonical(await owner.read.indexer()),
      canonical({
        signingKey: indexer.signingKey,
        codeId,
        appId: indexer.appId,
        kmsRoot: fx.kmsRoot.address,
        updatedAt: timestamp,
        endpoint,
      }),
    );
  });

  it("setIndexer rotates to a new key, replacing every field of the record", async () => {
    const first = await setFreshIndexer("wss://old.example/ws");
    const next = await setFreshIndexer("wss://new.example/ws");
    assert.notEqual(next.indexer.signingKey, first.indexer.signingKey);
    assert.equal(next.events.length, 1);
    assert.equal(next.events[0]!.name, "IndexerSet");
    assert.deepEqual(
      canonical(await owner.read.indexer()),
      canonical({
        signingKey: next.indexer.signingKey,
        codeId: next.codeId,
        appId: next.indexer.appId,
        kmsRoot: fx.kmsRoot.address,
        updatedAt: next.timestamp,
        endpoint: "wss://new.example/ws",
      }),
    );
  });

  it("setIndexer accepts an endpoint of exactly 256 bytes", async () => {
    const endpoint = `wss://${"a".repeat(250)}`;
    assert.equal(Buffer.byteLength(endpoint), 256);
    await setFreshIndexer(endpoint);
    assert.equal((await owner.read.indexer()).endpoint, endpoint);
  });

  it("clearIndexer removes the record and emits IndexerCleared", async () => {
    await setFreshIndexer();
    const { events } = await send(fx, owner.write.clearIndexer());
    assert.deepEqual(events, [{ name: "IndexerCleared", args: undefined }]);
    const record = await owner.read.indexer();
    assert.equal(record.signingKey, ZERO32);
    assert.equal(record.codeId, ZERO32);
    assert.equal(BigInt(record.appId), 0n);
    assert.equal(BigInt(record.kmsRoot), 0n);
    assert.equal(record.updatedAt, 0);
    assert.equal(record.endpoint, "");
  });

  describe("refusals", () => {
    it("refuses setIndexer from a stranger with NotOwner", async () => {
      await setFreshIndexer();
      const indexer = await allowedIndexer();
      await expectRefusal(
        () => fx.stranger.write.setIndexer(["wss://x", randomHash(), indexer.signingKey, indexer.proof]),
        "NotOwner",
        [fx.strangerAddress],
      );
    });

    it("refuses clearIndexer from a stranger with NotOwner", async () => {
      await setFreshIndexer();
      await expectRefusal(() => fx.stranger.write.clearIndexer(), "NotOwner", [fx.strangerAddress]);
      assert.notEqual((await owner.read.indexer()).signingKey, ZERO32);
    });

    it("refuses an empty endpoint with InvalidEndpoint(0)", async () => {
      await setFreshIndexer();
      const indexer = await allowedIndexer();
      await expectRefusal(
        () => owner.write.setIndexer(["", randomHash(), indexer.signingKey, indexer.proof]),
        "InvalidEndpoint",
        [0n],
      );
    });

    it("refuses a 257-byte endpoint with InvalidEndpoint(257)", async () => {
      await setFreshIndexer();
      const indexer = await allowedIndexer();
      const endpoint = `wss://${"a".repeat(251)}`;
      await expectRefusal(
        () => owner.write.setIndexer([endpoint, randomHash(), indexer.signingKey, indexer.proof]),
        "InvalidEndpoint",
        [257n],
      );
    });

    it("counts the endpoint in bytes, not characters", async () => {
      await setFreshIndexer();
      const indexer = await allowedIndexer();
      const endpoint = `wss://${"é".repeat(126)}`; // 6 + 252 bytes, 132 characters
      await expectRefusal(
        () => owner.write.setIndexer([endpoint, randomHash(), indexer.signingKey, indexer.proof]),
        "InvalidEndpoint",
        [258n],
      );
    });

    it("refuses a zero code id with ZeroIndexerField", async () => {
      await setFreshIndexer();
      const indexer = await allowedIndexer();
      await expectRefusal(
        () => owner.write.setIndexer(["wss://x", ZERO32, indexer.signingKey, indexer.proof]),
        "ZeroIndexerField",
        [],
      );
    });

    it("refuses a zero signing key with ZeroIndexerField", async () => {
      await setFreshIndexer();
      const indexer = await allowedIndexer();
      await expectRefusal(
        () => owner.write.setIndexer(["wss://x", randomHash(), ZERO32, indexer.proof]),
        "ZeroIndexerField",
        [],
      );
    });

    it("refuses a chain issued for a different Ed25519 key with AppSignatureMismatch", async () => {
      await setFreshIndexer();
      const indexer = await allowedIndexer();
      const otherKey = bytesToHex(derivedPublicKey(randomBytes(32), "ed25519"));
      // The contract recovers the app signature over the key it was given, so it finds another signer.
      const recovered = recoverSignerAddress(
        derivedKeyDigest(INDEXER_KEY.purpose, hexToBytes(otherKey)),
        hexToBytes(indexer.proof.appSignature),
      );
      assert.notEqual(recovered, indexer.appKeyAddress);
      await expectRefusal(
        () => owner.write.setIndexer(["wss://x", randomHash(), otherKey, indexer.proof]),
        "AppSignatureMismatch",
        [indexer.appKeyAddress, recovered],
      );
    });

    it("refuses a chain made for the member purpose with AppSignatureMismatch", async () => {
      await setFreshIndexer();
      const memberPurpose = simulatedIndexer(fx.kmsRoot, randomAppId(), MEMBER_KEY.purpose);
      await send(fx, owner.write.addAppId([memberPurpose.appId]));
      const recovered = recoverSignerAddress(
        derivedKeyDigest(INDEXER_KEY.purpose, hexToBytes(memberPurpose.signingKey)),
        hexToBytes(memberPurpose.proof.appSignature),
      );
      assert.notEqual(recovered, memberPurpose.appKeyAddress);
      await expectRefusal(
        () =>
          owner.write.setIndexer(["wss://x", randomHash(), memberPurpose.signingKey, memberPurpose.proof]),
        "AppSignatureMismatch",
        [memberPurpose.appKeyAddress, recovered],
      );
    });

    it("refuses a chain from a KMS root that is not allowed with KmsRootNotAllowed", async () => {
      await setFreshIndexer();
      const rogueRoot = createKmsRoot(randomBytes(32));
      assert.equal(await owner.read.isKmsRootAllowed([rogueRoot.address]), false);
      const indexer = simulatedIndexer(rogueRoot);
      await send(fx, owner.write.addAppId([indexer.appId]));
      await expectRefusal(
        () => owner.write.setIndexer(["wss://x", randomHash(), indexer.signingKey, indexer.proof]),
        "KmsRootNotAllowed",
        [rogueRoot.address],
      );
    });

    it("refuses an app id that is not allowed with AppIdNotAllowed", async () => {
      await setFreshIndexer();
      const indexer = simulatedIndexer(fx.kmsRoot);
      await expectRefusal(
        () => owner.write.setIndexer(["wss://x", randomHash(), indexer.signingKey, indexer.proof]),
        "AppIdNotAllowed",
        [indexer.appId],
      );
    });

    it("refuses a revoked app id with AppIdRevoked and its revocation time", async () => {
      await setFreshIndexer();
      const indexer = await allowedIndexer();
      const { timestamp } = await send(
        fx,
        owner.write.revokeAppId([indexer.appId, toHex("r", { size: 32 })]),
      );
      await expectRefusal(
        () => owner.write.setIndexer(["wss://x", randomHash(), indexer.signingKey, indexer.proof]),
        "AppIdRevoked",
        [indexer.appId, timestamp],
      );
    });

    it("refuses a 33-byte app key with a bad prefix with InvalidPublicKeyPrefix", async () => {
      await setFreshIndexer();
      const indexer = await allowedIndexer();
      const appPubkey = `0x04${indexer.proof.appPubkey.slice(4)}` as Hex;
      assert.equal(hexToBytes(appPubkey).length, 33);
      await expectRefusal(
        () =>
          owner.write.setIndexer([
            "wss://x",
            randomHash(),
            indexer.signingKey,
            { ...indexer.proof, appPubkey },
          ]),
        "InvalidPublicKeyPrefix",
        [4],
      );
    });

    it("refuses a 64-byte app signature with InvalidSignatureLength(64)", async () => {
      await setFreshIndexer();
      const indexer = await allowedIndexer();
      const appSignature = indexer.proof.appSignature.slice(0, 2 + 128) as Hex;
      await expectRefusal(
        () =>
          owner.write.setIndexer([
            "wss://x",
            randomHash(),
            indexer.signingKey,
            { ...indexer.proof, appSignature },
          ]),
        "InvalidSignatureLength",
        [64n],
      );
    });

    it("refuses a 64-byte KMS signature with InvalidSignatureLength(64)", async () => {
      await setFreshIndexer();
      const indexer = await allowedIndexer();
      const kmsSignature = indexer.proof.kmsSignature.slice(0, 2 + 128) as Hex;
      await expectRefusal(
        () =>
          owner.write.setIndexer([
            "wss://x",
            randomHash(),
            indexer.signingKey,
            { ...indexer.proof, kmsSignature },
          ]),
        "InvalidSignatureLength",
        [64n],
      );
    });

    it("refuses a chain whose proof names another app id (KMS signature then recovers a stranger)", async () => {
      await setFreshIndexer();
      const indexer = await allowedIndexer();
      const otherApp = randomAppId();
      await send(fx, owner.write.addAppId([otherApp]));
      const stranger = recoverSignerAddress(
        kmsIssuedDigest(hexToBytes(otherApp), hexToBytes(indexer.proof.appPubkey)),
        hexToBytes(indexer.proof.kmsSignature),
      );
      assert.notEqual(stranger, fx.kmsRoot.address);
      await expectRefusal(
        () =>
          owner.write.setIndexer([
            "wss://x",
            randomHash(),
            indexer.signingKey,
            { ...indexer.proof, appId: otherApp },
          ]),
        "KmsRootNotAllowed",
        [stranger],
      );
    });
  });
});
