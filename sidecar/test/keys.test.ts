import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { inspect } from "node:util";
import { startDstackSimulator } from "@attestmesh/devnet/dstack-sim/server.ts";
import { createKmsRoot, createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { derivedPublicKey, signRecoverable } from "@attestmesh/shared/dstack/keychain.ts";
import { SECP256K1_HALF_N } from "@attestmesh/shared/dstack/verify.ts";
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import { IDENTITY_KEY, MEMBER_KEY, WIREGUARD_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { malleableTwin } from "@attestmesh/shared/testing/dstack/corrupt.ts";
import { bytesToHex, getAddress, hexToBytes } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import {
  createDstackKeySource,
  deriveNodeKeys,
  type KeySource,
  normaliseSignature,
  parseAppId,
  proveKey,
  recoverAppPublicKey,
} from "../src/keys.ts";
import { wireguardKeyPair } from "../src/wireguard/keys.ts";
import { captureLogger, simulatorKeySource } from "./helpers.ts";

const kmsRoot = createKmsRoot();
const APP_ID = getAddress("0x00000000000000000000000000000000000a11ce");
const cvm = createSimulatedCvm({ kmsRoot, appId: hexToBytes(APP_ID) });

function withV(signature: Uint8Array, v: number): Uint8Array {
  const copy = signature.slice();
  copy[64] = v;
  return copy;
}

describe("normaliseSignature", () => {
  const signature = signRecoverable(hexToBytes(`0x${"11".repeat(32)}`), new Uint8Array(32).fill(7));

  test("maps v 27/28 to 0/1 and keeps 0/1", () => {
    const v = signature[64]!;
    assert.equal(normaliseSignature(withV(signature, v + 27), "sig")[64], v);
    assert.equal(normaliseSignature(withV(signature, v), "sig")[64], v);
    assert.deepEqual(normaliseSignature(withV(signature, v + 27), "sig"), signature);
  });

  test("turns a high s into the low twin and flips v", () => {
    const twin = malleableTwin(signature);
    assert.ok(BigInt(bytesToHex(twin.subarray(32, 64))) > SECP256K1_HALF_N);
    assert.deepEqual(normaliseSignature(twin, "sig"), signature);
    assert.deepEqual(normaliseSignature(withV(twin, twin[64]! + 27), "sig"), signature);
  });

  test("refuses a bad v or length", () => {
    assert.throws(() => normaliseSignature(withV(signature, 2), "appSignature"), {
      code: "InvalidSignatureV",
    });
    assert.throws(() => normaliseSignature(withV(signature, 29), "appSignature"), {
      code: "InvalidSignatureV",
    });
    assert.throws(() => normaliseSignature(signature.subarray(0, 64), "appSignature"), {
      code: "InvalidSignatureLength",
    });
  });

  test("does not modify its input", () => {
    const input = withV(signature, 28);
    normaliseSignature(input, "sig");
    assert.equal(input[64], 28);
  });
});

describe("proof building", () => {
  const member = cvm.getKey(MEMBER_KEY.path, MEMBER_KEY.purpose, "secp256k1");
  const memberPub = derivedPublicKey(member.key, "secp256k1");

  test("recovers the app key from the app signature", () => {
    assert.deepEqual(
      recoverAppPublicKey(MEMBER_KEY.purpose, memberPub, member.signatureChain[0]),
      cvm.appPublicKey,
    );
  });

  test("proveKey checks the chain up to the KMS root", () => {
    const proven = proveKey(APP_ID, MEMBER_KEY, member);
    assert.deepEqual(proven.publicKey, memberPub);
    assert.deepEqual(proven.appPubkey, cvm.appPublicKey);
    assert.equal(proven.kmsSigner, kmsRoot.address);
  });

  test("accepts dstack's 27/28 and high-s encodings and emits v in {0, 1} with low s", () => {
    const [app, kms] = member.signatureChain;
    const variants = [
      [withV(app, app[64]! + 27), withV(kms, kms[64]! + 27)],
      [malleableTwin(app), malleableTwin(kms)],
      [withV(malleableTwin(app), malleableTwin(app)[64]! + 27), kms],
    ];
    for (const chain of variants) {
      const proven = proveKey(APP_ID, MEMBER_KEY, { key: member.key, signatureChain: chain });
      assert.deepEqual(proven.appSignature, app);
      assert.deepEqual(proven.kmsSignature, kms);
      assert.deepEqual(proven.appPubkey, cvm.appPublicKey);
      assert.equal(proven.kmsSigner, kmsRoot.address);
    }
  });

  test("works for Ed25519 keys (32-byte derived public key)", () => {
    const identity = cvm.getKey(IDENTITY_KEY.path, IDENTITY_KEY.purpose, "ed25519");
    const proven = proveKey(APP_ID, IDENTITY_KEY, identity);
    assert.equal(proven.publicKey.length, 32);
    assert.equal(proven.kmsSigner, kmsRoot.address);
  });

  test("a chain for another app id leads to another KMS signer", () => {
    const other = getAddress("0x00000000000000000000000000000000000b0b00");
    assert.notEqual(proveKey(other, MEMBER_KEY, member).kmsSigner, kmsRoot.address);
  });

  test("refuses malformed answers with fatal errors", () => {
    assert.throws(
      () =>
        proveKey(APP_ID, MEMBER_KEY, {
          key: member.key.subarray(0, 31),
          signatureChain: member.signatureChain,
        }),
      {
        code: "InvalidDerivedKey",
        retryable: false,
      },
    );
    assert.throws(
      () => proveKey(APP_ID, MEMBER_KEY, { key: member.key, signatureChain: [member.signatureChain[0]] }),
      {
        code: "InvalidSignatureChain",
      },
    );
    const badKms = member.signatureChain[1].slice();
    badKms.fill(0, 0, 32);
    assert.throws(
      () =>
        proveKey(APP_ID, MEMBER_KEY, { key: member.key, signatureChain: [member.signatureChain[0], badKms] }),
      {
        code: "InvalidSignatureR",
      },
    );
  });

  test("a chain checked under another purpose does not reach the KMS root", () => {
    // keccak256(purpose ":" hex(pub)) differs, so another app key is recovered, whose KMS signature
    // then recovers to an unrelated signer: the contract's KMS-root allowlist refuses it.
    const spec = { ...MEMBER_KEY, purpose: "someone-else-v1" };
    const proven = proveKey(APP_ID, spec, member);
    assert.notDeepEqual(proven.appPubkey, cvm.appPublicKey);
    assert.notEqual(proven.kmsSigner, kmsRoot.address);
  });
});

describe("deriveNodeKeys", () => {
  test("derives the member proof, identity and WireGuard keys from the simulator", async () => {
    const keys = await deriveNodeKeys(simulatorKeySource(cvm));
    const member = cvm.getKey(MEMBER_KEY.path, MEMBER_KEY.purpose, "secp256k1");
    const identity = cvm.getKey(IDENTITY_KEY.path, IDENTITY_KEY.purpose, "ed25519");
    const wireguard = cvm.getKey(WIREGUARD_KEY.path, WIREGUARD_KEY.purpose, "ed25519");
    assert.equal(keys.appId, APP_ID);
    assert.equal(keys.kmsSigner, kmsRoot.address);
    assert.equal(keys.appPubkey, bytesToHex(cvm.appPublicKey));
    assert.equal(keys.member.address, privateKeyToAccount(bytesToHex(member.key)).address);
    assert.deepEqual(keys.member.proof, {
      appId: APP_ID,
      memberPubkey: bytesToHex(derivedPublicKey(member.key, "secp256k1")),
      appPubkey: bytesToHex(cvm.appPublicKey),
      appSignature: bytesToHex(member.signatureChain[0]),
      kmsSignature: bytesToHex(member.signatureChain[1]),
      guestApiVersion: 0,
    });
    assert.equal(keys.identity.publicKey, bytesToHex(derivedPublicKey(identity.key, "ed25519")));
    const wg = wireguardKeyPair(wireguard.key);
    assert.equal(keys.wireguard.publicKey, bytesToHex(wg.publicKey));
    assert.equal(keys.wireguard.publicKeyBase64, wg.publicKeyBase64);
    assert.deepEqual(keys.wireguard.privateKey.reveal(), wg.privateKey);
  });

  test("secrets never print: JSON, inspect and a pino line show placeholders", async () => {
    const keys = await deriveNodeKeys(simulatorKeySource(cvm));
    const member = cvm.getKey(MEMBER_KEY.path, MEMBER_KEY.purpose, "secp256k1");
    const secrets = [
      bytesToHex(member.key).slice(2),
      bytesToHex(keys.wireguard.privateKey.reveal()).slice(2),
      bytesToHex(keys.identity.secret.reveal()).slice(2),
    ];
    const { logger, text } = captureLogger();
    logger.info({ keys }, "keys");
    for (const printed of [JSON.stringify(keys), inspect(keys, { depth: 10 }), text()]) {
      for (const secret of secrets) assert.ok(!printed.includes(secret), "a secret leaked");
    }
  });

  test("a corrupted chain on one key is caught as inconsistent with the others", async () => {
    const source: KeySource = {
      ...simulatorKeySource(cvm),
      async getKey(path, purpose, algorithm) {
        const result = cvm.getKey(path, purpose, algorithm);
        if (path !== WIREGUARD_KEY.path) return { key: result.key, signatureChain: result.signatureChain };
        // Signed by another app key: a self-consistent chain, but not this CVM's.
        const other = createSimulatedCvm({
          kmsRoot,
          appId: hexToBytes(getAddress("0x00000000000000000000000000000000000e7e00")),
        });
        return { key: result.key, signatureChain: other.getKey(path, purpose, algorithm).signatureChain };
      },
    };
    await assert.rejects(deriveNodeKeys(source), { code: "InconsistentKeyChains", retryable: false });
  });

  test("parseAppId accepts dstack's bare hex and 0x hex, refuses anything else", () => {
    assert.equal(parseAppId("00000000000000000000000000000000000a11ce"), APP_ID);
    assert.equal(parseAppId("0x00000000000000000000000000000000000A11CE"), APP_ID);
    assert.throws(() => parseAppId("a11ce"), { code: "InvalidAppId" });
  });
});

describe("the official dstack SDK against the simulator's unix socket", () => {
  let dir: string;
  let close: () => Promise<void>;
  let socketPath: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "am-keys-"));
    socketPath = join(dir, "dstack.sock");
    const simulator = await startDstackSimulator({ socketPath, cvm, logger: captureLogger("silent").logger });
    close = simulator.close;
  });

  after(async () => {
    await close();
    await rm(dir, { recursive: true, force: true });
  });

  test("derives exactly the keys the library gives", async () => {
    const viaSdk = await deriveNodeKeys(createDstackKeySource(socketPath));
    const viaLibrary = await deriveNodeKeys(simulatorKeySource(cvm));
    assert.equal(viaSdk.appId, APP_ID);
    assert.deepEqual(viaSdk.member.proof, viaLibrary.member.proof);
    assert.equal(viaSdk.member.address, viaLibrary.member.address);
    assert.equal(viaSdk.identity.publicKey, viaLibrary.identity.publicKey);
    assert.equal(viaSdk.wireguard.publicKey, viaLibrary.wireguard.publicKey);
  });

  test("a missing socket is a retryable DstackUnavailable that names the fix", async () => {
    const source = createDstackKeySource(join(dir, "absent.sock"));
    await assert.rejects(source.appId(), (error: unknown) => {
      assert.ok(isAttestmeshError(error, "DstackUnavailable"));
      assert.equal(error.retryable, true);
      assert.match(error.message, /DSTACK_SIMULATOR_ENDPOINT/);
      return true;
    });
  });
});
