// The trust rules of admission, one attacker per rule: each tries to register without what the rule
// demands and must fail with the exact custom error, leaving the app id and the mesh as they were.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { createKmsRoot } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { derivedPublicKey } from "@attestmesh/shared/dstack/keychain.ts";
import { INDEXER_KEY, MEMBER_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { secp256k1 } from "@noble/curves/secp256k1";
import {
  type Address,
  bytesToHex,
  concat,
  type Hex,
  hexToBytes,
  keccak256,
  recoverAddress,
  recoverTypedDataAddress,
  stringToBytes,
  toHex,
} from "viem";
import { generatePrivateKey, privateKeyToAccount, publicKeyToAddress } from "viem/accounts";
import {
  admit,
  type ClusterFixture,
  randomAppId,
  type SimulatedNode,
  setupCluster,
  signRegistration,
  simulatedNode,
} from "../../../test/helpers/cluster.ts";
import { expectRevert } from "../../../test/helpers/revert.ts";
import { registerSigned, registerWith, registrationSigner } from "../utils/chain.ts";

const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

type Proof = SimulatedNode["proof"];

/** Address of a 33-byte compressed secp256k1 key, decompressed with noble (not the verifier under test). */
function addressOfCompressed(key: Hex): Address {
  return publicKeyToAddress(`0x${secp256k1.Point.fromHex(key.slice(2)).toHex(false)}`);
}

/** keccak256(purpose ":" lowerhex(key)): what an app key signs over a derived key. */
function appDigest(purpose: string, derivedKey: Hex): Hex {
  return keccak256(stringToBytes(`${purpose}:${derivedKey.slice(2).toLowerCase()}`));
}

/** keccak256("dstack-kms-issued:" || appId || appPubkey): what a KMS root signs over an app key. */
function kmsDigest(appId: Address, appPubkey: Hex): Hex {
  return keccak256(concat([toHex(stringToBytes("dstack-kms-issued:")), appId, appPubkey]));
}

/** A raw recoverable secp256k1 signature r || s || v (v in {0,1}, low s) over a 32-byte digest. */
function signDigest(secret: Uint8Array, digest: Uint8Array): Hex {
  const signature = secp256k1.sign(digest, secret, { lowS: true, prehash: false });
  return bytesToHex(new Uint8Array([...signature.toBytes("compact"), signature.recovery!]));
}

function withV(signature: Hex, v: number): Hex {
  const bytes = hexToBytes(signature);
  bytes[64] = v;
  return bytesToHex(bytes);
}

/** Everything a refused registration must leave as it was. */
async function snapshot(fx: ClusterFixture, appId: Address) {
  return {
    block: await fx.publicClient.getBlockNumber(),
    nonce: await fx.owner.read.registrationNonce([appId]),
    memberOfApp: await fx.owner.read.memberOfApp([appId]),
    isMember: await fx.owner.read.isMember([appId]),
    mesh: await fx.owner.read.meshConfig(),
    csk: await fx.owner.read.currentCsk(),
  };
}

/** Runs `attack`, which must revert with `errorName(args)`, and checks that nothing changed. */
async function refused(
  fx: ClusterFixture,
  appId: Address,
  attack: () => Promise<unknown>,
  errorName: string,
  args?: readonly unknown[],
) {
  const before = await snapshot(fx, appId);
  await expectRevert(attack(), errorName, args);
  assert.deepEqual(await snapshot(fx, appId), before, "a refused registration changes nothing");
}

/** Expects `node`'s own registration, signed as it stands, to be refused like `refused` says. */
async function refusedAsSigned(
  fx: ClusterFixture,
  node: SimulatedNode,
  errorName: string,
  args: readonly unknown[],
) {
  await refused(fx, node.appId, () => registerWith(fx, node), errorName, args);
}

/** Expects `node`'s registration with `signature` to be refused with RegistrationSignatureMismatch, naming
 * the member key and the signer the contract recovered for `nonce`. */
async function refusedSignature(fx: ClusterFixture, node: SimulatedNode, signature: Hex, nonce: bigint) {
  await refused(
    fx,
    node.appId,
    () => registerWith(fx, node, node.proof, signature),
    "RegistrationSignatureMismatch",
    [node.memberAccount.address, await registrationSigner(fx, node, nonce, signature)],
  );
}

async function allowedNode(fx: ClusterFixture, node: SimulatedNode = simulatedNode(fx.kmsRoot)) {
  await fx.owner.write.addAppId([node.appId]);
  return node;
}

describe("trust rules of register", async () => {
  const fx = await setupCluster();

  it("refuses a registration with no key chain at all: empty and garbage proof bytes", async () => {
    const node = await allowedNode(fx);
    const signature = await signRegistration(fx, node);
    const empty: Proof = {
      appId: node.appId,
      memberPubkey: "0x",
      appPubkey: "0x",
      appSignature: "0x",
      kmsSignature: "0x",
      guestApiVersion: 0,
    };
    const malformed: Array<[Proof, string, readonly unknown[]]> = [
      [empty, "InvalidPublicKeyLength", [0]],
      [{ ...empty, memberPubkey: node.proof.memberPubkey }, "InvalidPublicKeyLength", [0]],
      [{ ...node.proof, memberPubkey: bytesToHex(randomBytes(20)) }, "InvalidPublicKeyLength", [20]],
      [{ ...node.proof, appPubkey: toHex(new Uint8Array(33).fill(0xab)) }, "InvalidPublicKeyPrefix", [0xab]],
      [{ ...node.proof, kmsSignature: bytesToHex(randomBytes(64)) }, "InvalidSignatureLength", [64]],
    ];
    for (const [proof, error, args] of malformed) {
      await refused(fx, node.appId, () => registerWith(fx, node, proof, signature), error, args);
    }

    // Well-formed keys and signatures that belong together in no chain: real signatures over other data.
    const appSecret = randomBytes(32);
    const forged: Proof = {
      ...node.proof,
      appPubkey: bytesToHex(secp256k1.getPublicKey(appSecret, true)),
      appSignature: signDigest(appSecret, randomBytes(32)),
      kmsSignature: signDigest(randomBytes(32), randomBytes(32)),
    };
    await refused(fx, node.appId, () => registerWith(fx, node, forged, signature), "AppSignatureMismatch", [
      addressOfCompressed(forged.appPubkey),
      await recoverAddress({
        hash: appDigest(MEMBER_KEY.purpose, node.proof.memberPubkey),
        signature: forged.appSignature,
      }),
    ]);
  });

  it("refuses a key chain signed by a KMS root the owner never allowed with KmsRootNotAllowed", async () => {
    const rogueRoot = createKmsRoot(randomBytes(32));
    const node = await allowedNode(fx, simulatedNode(rogueRoot));
    await refusedAsSigned(fx, node, "KmsRootNotAllowed", [rogueRoot.address]);
  });

  it("refuses a key chain from a KMS root the owner removed, though it admitted members before", async () => {
    const secondRoot = createKmsRoot(randomBytes(32));
    await fx.owner.write.addKmsRoot([secondRoot.address]);
    const early = simulatedNode(secondRoot);
    assert.ok((await admit(fx, early)) > 0n, "the root admits while allowed");
    await fx.owner.write.removeKmsRoot([secondRoot.address]);
    const late = await allowedNode(fx, simulatedNode(secondRoot));
    await refusedAsSigned(fx, late, "KmsRootNotAllowed", [secondRoot.address]);
  });

  it("refuses an app id the owner never allowed with AppIdNotAllowed", async () => {
    const node = simulatedNode(fx.kmsRoot);
    await refusedAsSigned(fx, node, "AppIdNotAllowed", [node.appId]);
  });

  it("refuses a revoked app id with AppIdRevoked, and the owner cannot allow it again", async () => {
    const node = await allowedNode(fx);
    const hash = await fx.owner.write.revokeAppId([node.appId, keccak256(toHex("compromised"))]);
    const receipt = await fx.publicClient.waitForTransactionReceipt({ hash });
    const { timestamp } = await fx.publicClient.getBlock({ blockNumber: receipt.blockNumber });
    await refusedAsSigned(fx, node, "AppIdRevoked", [node.appId, timestamp]);
    await expectRevert(fx.owner.write.addAppId([node.appId]), "AppIdRevoked", [node.appId, timestamp]);
  });

  it("refuses a registration signed by any key but the chain's member key with RegistrationSignatureMismatch", async () => {
    // The chain is public once posted: an attacker replays it with its own signature (and keys).
    const node = await allowedNode(fx);
    const attacker = privateKeyToAccount(generatePrivateKey());
    const signature = await signRegistration(fx, { ...node, memberAccount: attacker });
    await refused(
      fx,
      node.appId,
      () => registerWith(fx, node, node.proof, signature),
      "RegistrationSignatureMismatch",
      [node.memberAccount.address, attacker.address],
    );
  });

  it("refuses a relayer that swaps in its own WireGuard or identity key under the member's signature", async () => {
    const node = await allowedNode(fx);
    const signature = await signRegistration(fx, node);
    const swapped = { ...node, wireguardKey: bytesToHex(randomBytes(32)) };
    const domain = memberDomain(fx.chainId, fx.deployed.diamond);
    await refused(
      fx,
      node.appId,
      () => registerWith(fx, swapped, node.proof, signature),
      "RegistrationSignatureMismatch",
      [
        node.memberAccount.address,
        await recoverTypedDataAddress({
          domain,
          types: memberTypes,
          primaryType: "Register",
          message: {
            appId: node.appId,
            wireguardKey: swapped.wireguardKey,
            identityKey: node.identityKey,
            ...node.claims,
            nonce: 0n,
          },
          signature,
        }),
      ],
    );
    await refused(
      fx,
      node.appId,
      () =>
        fx.relayer.write.register([
          node.proof,
          node.wireguardKey,
          bytesToHex(randomBytes(32)),
          node.claims,
          signature,
        ]),
      "RegistrationSignatureMismatch",
    );
  });

  it("refuses a valid chain of app A presented as app B: the KMS signature binds the app id", async () => {
    // The app signature covers only the member key, so it still verifies; the KMS signature is over
    // (app id, app key), so for app B it recovers some unrelated address, which is no allowed root.
    // The contract therefore reports KmsRootNotAllowed(that address), not AppSignatureMismatch.
    const nodeA = simulatedNode(fx.kmsRoot);
    const appB = randomAppId();
    await fx.owner.write.addAppId([appB]);
    const asB = { ...nodeA, appId: appB };
    const proof = { ...nodeA.proof, appId: appB };
    const phantomRoot = await recoverAddress({
      hash: kmsDigest(appB, nodeA.proof.appPubkey),
      signature: nodeA.proof.kmsSignature,
    });
    assert.notEqual(phantomRoot, fx.kmsRoot.address);
    await refused(fx, appB, () => registerWith(fx, asB, proof), "KmsRootNotAllowed", [phantomRoot]);
  });

  it("refuses a member key whose chain was issued for the indexer purpose", async () => {
    // The same secp256k1 key, but the app key vouched for it as an indexer key: the app signature
    // does not verify over the member purpose.
    const node = await allowedNode(fx);
    const indexerChain = node.cvm.getKey(MEMBER_KEY.path, INDEXER_KEY.purpose, "secp256k1");
    const proof = { ...node.proof, appSignature: bytesToHex(indexerChain.signatureChain[0]) };
    await refused(fx, node.appId, () => registerWith(fx, node, proof), "AppSignatureMismatch", [
      addressOfCompressed(node.proof.appPubkey),
      await recoverAddress({
        hash: appDigest(MEMBER_KEY.purpose, node.proof.memberPubkey),
        signature: proof.appSignature,
      }),
    ]);

    // The real indexer key (Ed25519, 32 bytes) cannot even be presented as a member key.
    const indexerKey = node.cvm.getKey(INDEXER_KEY.path, INDEXER_KEY.purpose, INDEXER_KEY.algorithm);
    const indexerProof = {
      ...node.proof,
      memberPubkey: bytesToHex(derivedPublicKey(indexerKey.key, "ed25519")),
      appSignature: bytesToHex(indexerKey.signatureChain[0]),
    };
    await refused(fx, node.appId, () => registerWith(fx, node, indexerProof), "InvalidPublicKeyLength", [32]);
  });

  it("refuses a registration signed for another cluster diamond", async () => {
    const node = await allowedNode(fx);
    const otherCluster = privateKeyToAccount(generatePrivateKey()).address;
    const signature = await signRegistration(fx, node, { cluster: otherCluster });
    await refusedSignature(fx, node, signature, 0n);
  });

  it("refuses a registration signed for another chain id", async () => {
    const node = await allowedNode(fx);
    const signature = await signRegistration(fx, node, { chainId: 8453 });
    assert.notEqual(fx.chainId, 8453);
    await refusedSignature(fx, node, signature, 0n);
  });

  it("refuses a replay of an old registration after eviction and re-allowing", async () => {
    const node = await allowedNode(fx);
    const oldSignature = await registerSigned(fx, node, 0n);
    const [memberId] = await fx.owner.read.memberOfApp([node.appId]);
    await fx.owner.write.evict([memberId, 1]);
    await fx.owner.write.addAppId([node.appId]);
    await refusedSignature(fx, node, oldSignature, 1n);
  });

  it("refuses the malleable high-s twin of a valid registration signature with SignatureMalleable", async () => {
    const node = await allowedNode(fx);
    const signature = hexToBytes(await signRegistration(fx, node));
    const s = BigInt(bytesToHex(signature.slice(32, 64)));
    const highS = SECP256K1_N - s;
    const twin = new Uint8Array(65);
    twin.set(signature.slice(0, 32));
    twin.set(hexToBytes(toHex(highS, { size: 32 })), 32);
    twin[64] = signature[64] === 27 ? 28 : 27;
    // The twin is a valid ECDSA signature by the member key: only the low-s rule refuses it.
    assert.equal(
      await registrationSigner(fx, node, 0n, bytesToHex(twin)),
      node.memberAccount.address,
      "the twin recovers to the member key",
    );
    await refused(
      fx,
      node.appId,
      () => registerWith(fx, node, node.proof, bytesToHex(twin)),
      "SignatureMalleable",
      [highS],
    );
  });

  it("accepts recovery ids as 27/28 as well as 0/1, in the chain and in the registration signature", async () => {
    const node = await allowedNode(fx);
    const proof = {
      ...node.proof,
      appSignature: withV(node.proof.appSignature, hexToBytes(node.proof.appSignature)[64]! + 27),
      kmsSignature: withV(node.proof.kmsSignature, hexToBytes(node.proof.kmsSignature)[64]! + 27),
    };
    const signature = await signRegistration(fx, node);
    const v = hexToBytes(signature)[64]!;
    assert.ok(v === 27 || v === 28, "viem signs with v = 27/28");
    await registerWith(fx, node, proof, withV(signature, v - 27));
    const [memberId, active] = await fx.owner.read.memberOfApp([node.appId]);
    assert.ok(active);
    assert.equal((await fx.owner.read.member([memberId])).memberKey, node.memberAccount.address);

    // And the other way round: a 0/1 chain (as dstack issues it) with a 27/28 registration signature.
    const other = await allowedNode(fx);
    assert.ok(hexToBytes(other.proof.kmsSignature)[64]! <= 1, "the simulator issues v = 0/1");
    await registerWith(fx, other);
    assert.equal(await fx.owner.read.isMember([other.appId]), true);
  });
});
