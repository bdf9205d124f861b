import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { createKmsRoot, createSimulatedCvm, type KmsRoot } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { derivedKeyDigest, derivedPublicKey, kmsIssuedDigest } from "@attestmesh/shared/dstack/keychain.ts";
import { compressedToAddress, recoverSignerAddress } from "@attestmesh/shared/dstack/verify.ts";
import { INDEXER_KEY, MEMBER_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { type Address, bytesToHex, getAddress, type Hex, hexToBytes, toHex } from "viem";
import { randomAppId, setupCluster } from "../../../test/helpers/cluster.ts";
import { canonical, expectRevert } from "../../../test/helpers/revert.ts";
import { randomHash, send } from "../utils/chain.ts";

const ZERO32 = toHex(0, { size: 32 });
// IPolicy.AppRole
const NODE_ROLE = 0;
const INDEXER_ROLE = 1;

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

describe("IndexerRegistryFacet", async () => {
  const fx = await setupCluster();
  const owner = fx.owner;

  /** A fresh indexer whose app id the cluster allows with the indexer role. */
  async function allowedIndexer(): Promise<SimulatedIndexer> {
    const indexer = simulatedIndexer(fx.kmsRoot);
    await send(fx, owner.write.addAppIdFor([indexer.appId, INDEXER_ROLE]));
    return indexer;
  }

  /** A fresh compose hash allowed for the indexer role only. */
  async function indexerCodeId(): Promise<Hex> {
    const codeId = randomHash();
    await send(fx, owner.write.addComposeHashFor([codeId, INDEXER_ROLE]));
    return codeId;
  }

  /** Sets a fresh indexer and returns it with the record's fields. */
  async function setFreshIndexer(endpoint = "wss://indexer.example/ws") {
    const indexer = await allowedIndexer();
    const codeId = await indexerCodeId();
    const { events, timestamp } = await send(
      fx,
      owner.write.setIndexer([endpoint, codeId, indexer.signingKey, indexer.proof]),
    );
    return { indexer, codeId, endpoint, events, timestamp };
  }

  /** The call must revert with `errorName(args)`, mine nothing and leave what `read` returns as it was. */
  async function expectRefusalKeeping(
    read: () => Promise<unknown>,
    kept: string,
    attempt: () => Promise<unknown>,
    errorName: string,
    args: readonly unknown[],
  ) {
    const before = await read();
    const blockBefore = await fx.publicClient.getBlockNumber();
    await expectRevert(attempt(), errorName, args);
    assert.equal(await fx.publicClient.getBlockNumber(), blockBefore, "a refused call mines nothing");
    assert.deepEqual(await read(), before, `a refused call leaves ${kept} as it was`);
  }

  /** The call must revert with `errorName(args)`, mine nothing and leave the indexer record as it was. */
  const expectRefusal = (attempt: () => Promise<unknown>, errorName: string, args: readonly unknown[]) =>
    expectRefusalKeeping(() => owner.read.indexer(), "the record", attempt, errorName, args);

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
    type IndexerProof = SimulatedIndexer["proof"];
    interface Attempt {
      readonly attempt: () => Promise<unknown>;
      readonly error: string;
      readonly args: readonly unknown[];
    }
    /** The owner's setIndexer of an allowed indexer, with some of the fields changed. */
    const setWith = (
      indexer: SimulatedIndexer,
      change: { endpoint?: string; codeId?: Hex; signingKey?: Hex; proof?: Partial<IndexerProof> } = {},
    ) =>
      owner.write.setIndexer([
        change.endpoint ?? "wss://x",
        change.codeId ?? randomHash(),
        change.signingKey ?? indexer.signingKey,
        { ...indexer.proof, ...change.proof },
      ]);
    /** A row whose attempt is an allowed indexer's setIndexer with one field changed. */
    const changed =
      (
        change: (indexer: SimulatedIndexer) => Parameters<typeof setWith>[1],
        error: string,
        args: (indexer: SimulatedIndexer) => readonly unknown[],
      ) =>
      async (): Promise<Attempt> => {
        const indexer = await allowedIndexer();
        return { attempt: () => setWith(indexer, change(indexer)), error, args: args(indexer) };
      };

    // Every row runs with an indexer already set, so each refusal must leave that record as it was.
    const rows: readonly { readonly name: string; readonly arrange: () => Promise<Attempt> }[] = [
      {
        name: "refuses setIndexer from a stranger with NotOwner",
        arrange: async () => {
          const indexer = await allowedIndexer();
          return {
            attempt: () =>
              fx.stranger.write.setIndexer(["wss://x", randomHash(), indexer.signingKey, indexer.proof]),
            error: "NotOwner",
            args: [fx.strangerAddress],
          };
        },
      },
      {
        name: "refuses clearIndexer from a stranger with NotOwner",
        arrange: async () => ({
          attempt: () => fx.stranger.write.clearIndexer(),
          error: "NotOwner",
          args: [fx.strangerAddress],
        }),
      },
      {
        name: "refuses an empty endpoint with InvalidEndpoint(0)",
        arrange: changed(
          () => ({ endpoint: "" }),
          "InvalidEndpoint",
          () => [0n],
        ),
      },
      {
        name: "refuses a 257-byte endpoint with InvalidEndpoint(257)",
        arrange: changed(
          () => ({ endpoint: `wss://${"a".repeat(251)}` }),
          "InvalidEndpoint",
          () => [257n],
        ),
      },
      {
        name: "counts the endpoint in bytes, not characters",
        // 6 + 252 bytes, 132 characters
        arrange: changed(
          () => ({ endpoint: `wss://${"é".repeat(126)}` }),
          "InvalidEndpoint",
          () => [258n],
        ),
      },
      {
        name: "refuses a zero code id with ZeroIndexerField",
        arrange: changed(
          () => ({ codeId: ZERO32 }),
          "ZeroIndexerField",
          () => [],
        ),
      },
      {
        name: "refuses a zero signing key with ZeroIndexerField",
        arrange: changed(
          () => ({ signingKey: ZERO32 }),
          "ZeroIndexerField",
          () => [],
        ),
      },
      {
        name: "refuses a chain issued for a different Ed25519 key with AppSignatureMismatch",
        arrange: async () => {
          const indexer = await allowedIndexer();
          const otherKey = bytesToHex(derivedPublicKey(randomBytes(32), "ed25519"));
          // The contract recovers the app signature over the key it was given, so it finds another signer.
          const recovered = recoverSignerAddress(
            derivedKeyDigest(INDEXER_KEY.purpose, hexToBytes(otherKey)),
            hexToBytes(indexer.proof.appSignature),
          );
          assert.notEqual(recovered, indexer.appKeyAddress);
          return {
            attempt: () => setWith(indexer, { signingKey: otherKey }),
            error: "AppSignatureMismatch",
            args: [indexer.appKeyAddress, recovered],
          };
        },
      },
      {
        name: "refuses a chain made for the member purpose with AppSignatureMismatch",
        arrange: async () => {
          const memberPurpose = simulatedIndexer(fx.kmsRoot, randomAppId(), MEMBER_KEY.purpose);
          await send(fx, owner.write.addAppIdFor([memberPurpose.appId, INDEXER_ROLE]));
          const recovered = recoverSignerAddress(
            derivedKeyDigest(INDEXER_KEY.purpose, hexToBytes(memberPurpose.signingKey)),
            hexToBytes(memberPurpose.proof.appSignature),
          );
          assert.notEqual(recovered, memberPurpose.appKeyAddress);
          return {
            attempt: () => setWith(memberPurpose),
            error: "AppSignatureMismatch",
            args: [memberPurpose.appKeyAddress, recovered],
          };
        },
      },
      {
        name: "refuses a chain from a KMS root that is not allowed with KmsRootNotAllowed",
        arrange: async () => {
          const rogueRoot = createKmsRoot(randomBytes(32));
          assert.equal(await owner.read.isKmsRootAllowed([rogueRoot.address]), false);
          const indexer = simulatedIndexer(rogueRoot);
          await send(fx, owner.write.addAppIdFor([indexer.appId, INDEXER_ROLE]));
          return { attempt: () => setWith(indexer), error: "KmsRootNotAllowed", args: [rogueRoot.address] };
        },
      },
      {
        name: "refuses an app id that is not allowed with AppIdNotAllowed",
        arrange: async () => {
          const indexer = simulatedIndexer(fx.kmsRoot);
          return { attempt: () => setWith(indexer), error: "AppIdNotAllowed", args: [indexer.appId] };
        },
      },
      {
        name: "refuses a node app id (allowed, valid chain, indexer code id) with AppRoleMismatch",
        arrange: async () => {
          const indexer = simulatedIndexer(fx.kmsRoot);
          await send(fx, owner.write.addAppId([indexer.appId]));
          const codeId = await indexerCodeId();
          return {
            attempt: () => setWith(indexer, { codeId }),
            error: "AppRoleMismatch",
            args: [indexer.appId, NODE_ROLE, INDEXER_ROLE],
          };
        },
      },
      ...(["only for the node role", "for no role"] as const).map((allowed) => ({
        name: `refuses a code id allowed ${allowed} with ComposeHashNotAllowedFor`,
        arrange: async () => {
          const indexer = await allowedIndexer();
          const codeId = randomHash();
          if (allowed === "only for the node role") await send(fx, owner.write.addComposeHash([codeId]));
          return {
            attempt: () => setWith(indexer, { codeId }),
            error: "ComposeHashNotAllowedFor",
            args: [codeId, INDEXER_ROLE],
          };
        },
      })),
      {
        name: "refuses a revoked app id with AppIdRevoked and its revocation time",
        arrange: async () => {
          const indexer = await allowedIndexer();
          const { timestamp } = await send(
            fx,
            owner.write.revokeAppId([indexer.appId, toHex("r", { size: 32 })]),
          );
          return { attempt: () => setWith(indexer), error: "AppIdRevoked", args: [indexer.appId, timestamp] };
        },
      },
      {
        name: "refuses a 33-byte app key with a bad prefix with InvalidPublicKeyPrefix",
        arrange: changed(
          (indexer) => {
            const appPubkey = `0x04${indexer.proof.appPubkey.slice(4)}` as Hex;
            assert.equal(hexToBytes(appPubkey).length, 33);
            return { proof: { appPubkey } };
          },
          "InvalidPublicKeyPrefix",
          () => [4],
        ),
      },
      {
        name: "refuses a 64-byte app signature with InvalidSignatureLength(64)",
        arrange: changed(
          (indexer) => ({ proof: { appSignature: indexer.proof.appSignature.slice(0, 2 + 128) as Hex } }),
          "InvalidSignatureLength",
          () => [64n],
        ),
      },
      {
        name: "refuses a 64-byte KMS signature with InvalidSignatureLength(64)",
        arrange: changed(
          (indexer) => ({ proof: { kmsSignature: indexer.proof.kmsSignature.slice(0, 2 + 128) as Hex } }),
          "InvalidSignatureLength",
          () => [64n],
        ),
      },
      {
        name: "refuses a chain whose proof names another app id (KMS signature then recovers a stranger)",
        arrange: async () => {
          const indexer = await allowedIndexer();
          const otherApp = randomAppId();
          await send(fx, owner.write.addAppId([otherApp]));
          const stranger = recoverSignerAddress(
            kmsIssuedDigest(hexToBytes(otherApp), hexToBytes(indexer.proof.appPubkey)),
            hexToBytes(indexer.proof.kmsSignature),
          );
          assert.notEqual(stranger, fx.kmsRoot.address);
          return {
            attempt: () => setWith(indexer, { proof: { appId: otherApp } }),
            error: "KmsRootNotAllowed",
            args: [stranger],
          };
        },
      },
    ];

    for (const { name, arrange } of rows) {
      it(name, async () => {
        const { indexer: current } = await setFreshIndexer();
        const { attempt, error, args } = await arrange();
        await expectRefusal(attempt, error, args);
        assert.equal(
          (await owner.read.indexer()).signingKey,
          current.signingKey,
          "the indexer set before stays",
        );
      });
    }
  });

  describe("several indexers", () => {
    /** Adds a fresh allowed indexer beside those registered. */
    async function addFresh(endpoint = `wss://${randomBytes(4).toString("hex")}.example/ws`) {
      const indexer = await allowedIndexer();
      const codeId = await indexerCodeId();
      const result = await send(
        fx,
        owner.write.addIndexer([endpoint, codeId, indexer.signingKey, indexer.proof]),
      );
      return { indexer, codeId, endpoint, ...result };
    }
    const keys = async () => (await owner.read.indexers()).map((v) => v.signingKey);

    /** Must revert with `errorName(args)`, mine nothing and leave every record as it was. */
    const expectListRefusal = (
      attempt: () => Promise<unknown>,
      errorName: string,
      args: readonly unknown[],
    ) => expectRefusalKeeping(() => owner.read.indexers(), "every record", attempt, errorName, args);

    it("addIndexer registers a second indexer beside the first, emits IndexerAdded, and lists both in order", async () => {
      const first = await setFreshIndexer("wss://first.example/ws");
      const second = await addFresh("wss://second.example/ws");
      assert.deepEqual(second.events, [
        {
          name: "IndexerAdded",
          args: canonical({
            signingKey: second.indexer.signingKey,
            appId: second.indexer.appId,
            codeId: second.codeId,
            kmsRoot: fx.kmsRoot.address,
            endpoint: "wss://second.example/ws",
          }),
        },
      ]);
      assert.deepEqual(
        canonical(await owner.read.indexers()),
        canonical([
          {
            signingKey: first.indexer.signingKey,
            codeId: first.codeId,
            appId: first.indexer.appId,
            kmsRoot: fx.kmsRoot.address,
            updatedAt: first.timestamp,
            endpoint: "wss://first.example/ws",
          },
          {
            signingKey: second.indexer.signingKey,
            codeId: second.codeId,
            appId: second.indexer.appId,
            kmsRoot: fx.kmsRoot.address,
            updatedAt: second.timestamp,
            endpoint: "wss://second.example/ws",
          },
        ]),
      );
      assert.equal(
        (await owner.read.indexer()).signingKey,
        first.indexer.signingKey,
        "indexer() is the oldest",
      );
    });

    it("rotation without a gap: add the new indexer, then remove the old; the list is never empty", async () => {
      const old = await setFreshIndexer();
      const next = await addFresh();
      assert.deepEqual(await keys(), [old.indexer.signingKey, next.indexer.signingKey]);
      const { events } = await send(fx, owner.write.removeIndexer([old.indexer.signingKey]));
      assert.deepEqual(events, [
        { name: "IndexerRemoved", args: canonical({ signingKey: old.indexer.signingKey }) },
      ]);
      assert.deepEqual(await keys(), [next.indexer.signingKey]);
      assert.equal((await owner.read.indexer()).signingKey, next.indexer.signingKey);
    });

    it("removeIndexer keeps the others in order; removing the last also emits IndexerCleared", async () => {
      const a = await setFreshIndexer();
      const b = await addFresh();
      const c = await addFresh();
      await send(fx, owner.write.removeIndexer([b.indexer.signingKey]));
      assert.deepEqual(await keys(), [a.indexer.signingKey, c.indexer.signingKey]);
      await send(fx, owner.write.removeIndexer([a.indexer.signingKey]));
      const { events } = await send(fx, owner.write.removeIndexer([c.indexer.signingKey]));
      assert.deepEqual(
        events.map((e) => e.name),
        ["IndexerRemoved", "IndexerCleared"],
      );
      assert.deepEqual(await owner.read.indexers(), []);
      assert.equal((await owner.read.indexer()).signingKey, ZERO32);
      // A removed key can be added again.
      await send(
        fx,
        owner.write.addIndexer(["wss://again.example/ws", c.codeId, c.indexer.signingKey, c.indexer.proof]),
      );
      assert.deepEqual(await keys(), [c.indexer.signingKey]);
    });

    it("setIndexer replaces the whole list with one; clearIndexer empties it", async () => {
      await setFreshIndexer();
      await addFresh();
      await addFresh();
      const only = await setFreshIndexer();
      assert.deepEqual(await keys(), [only.indexer.signingKey]);
      await addFresh();
      await send(fx, owner.write.clearIndexer());
      assert.deepEqual(await owner.read.indexers(), []);
    });

    it("revoking an app id removes exactly its indexers, and emits IndexerRemoved for each", async () => {
      const kept = await setFreshIndexer();
      const revoked = await addFresh();
      const { events } = await send(
        fx,
        owner.write.revokeAppId([revoked.indexer.appId, toHex("compromised", { size: 32 })]),
      );
      assert.ok(
        events.some(
          (e) =>
            e.name === "IndexerRemoved" &&
            (e.args as { signingKey: string }).signingKey === revoked.indexer.signingKey,
        ),
      );
      assert.ok(!events.some((e) => e.name === "IndexerCleared"), "one indexer is left");
      assert.deepEqual(await keys(), [kept.indexer.signingKey]);
    });

    it("holds at most MAX_INDEXERS; one more is refused with TooManyIndexers", async () => {
      const max = await owner.read.MAX_INDEXERS();
      assert.equal(max, 8n);
      await setFreshIndexer();
      while ((await owner.read.indexers()).length < Number(max)) await addFresh();
      const extra = await allowedIndexer();
      const codeId = await indexerCodeId();
      await expectListRefusal(
        () => owner.write.addIndexer(["wss://x", codeId, extra.signingKey, extra.proof]),
        "TooManyIndexers",
        [max],
      );
    });

    it("refuses a key that is already registered with IndexerAlreadyRegistered", async () => {
      const current = await setFreshIndexer();
      await expectListRefusal(
        () =>
          owner.write.addIndexer([
            "wss://dup.example/ws",
            current.codeId,
            current.indexer.signingKey,
            current.indexer.proof,
          ]),
        "IndexerAlreadyRegistered",
        [current.indexer.signingKey],
      );
    });

    it("refuses removing a key that is not registered with IndexerNotRegistered", async () => {
      await setFreshIndexer();
      const unknown = randomHash();
      await expectListRefusal(() => owner.write.removeIndexer([unknown]), "IndexerNotRegistered", [unknown]);
    });

    it("refuses addIndexer and removeIndexer from a stranger with NotOwner", async () => {
      const current = await setFreshIndexer();
      const indexer = await allowedIndexer();
      const codeId = await indexerCodeId();
      await expectListRefusal(
        () => fx.stranger.write.addIndexer(["wss://x", codeId, indexer.signingKey, indexer.proof]),
        "NotOwner",
        [fx.strangerAddress],
      );
      await expectListRefusal(
        () => fx.stranger.write.removeIndexer([current.indexer.signingKey]),
        "NotOwner",
        [fx.strangerAddress],
      );
    });

    it("addIndexer runs the same checks as setIndexer: a bad chain, a node app id, an empty endpoint", async () => {
      await setFreshIndexer();
      const indexer = await allowedIndexer();
      const codeId = await indexerCodeId();
      await expectListRefusal(
        () => owner.write.addIndexer(["", codeId, indexer.signingKey, indexer.proof]),
        "InvalidEndpoint",
        [0n],
      );
      const otherKey = bytesToHex(derivedPublicKey(randomBytes(32), "ed25519"));
      const recovered = recoverSignerAddress(
        derivedKeyDigest(INDEXER_KEY.purpose, hexToBytes(otherKey)),
        hexToBytes(indexer.proof.appSignature),
      );
      await expectListRefusal(
        () => owner.write.addIndexer(["wss://x", codeId, otherKey, indexer.proof]),
        "AppSignatureMismatch",
        [indexer.appKeyAddress, recovered],
      );
      const nodeApp = simulatedIndexer(fx.kmsRoot);
      await send(fx, owner.write.addAppId([nodeApp.appId]));
      await expectListRefusal(
        () => owner.write.addIndexer(["wss://x", codeId, nodeApp.signingKey, nodeApp.proof]),
        "AppRoleMismatch",
        [nodeApp.appId, NODE_ROLE, INDEXER_ROLE],
      );
    });
  });
});
