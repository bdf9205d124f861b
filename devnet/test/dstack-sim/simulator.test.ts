import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  deriveAppKey,
  derivedPublicKey,
  deriveKey,
  KEY_ALGORITHMS,
  secp256k1PublicKey,
} from "@attestmesh/shared/dstack/keychain.ts";
import { compressedToAddress, verifyDstackKeyChain } from "@attestmesh/shared/dstack/verify.ts";
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import { sha256 } from "@noble/hashes/sha2";
import { keccak_256 } from "@noble/hashes/sha3";
import { bytesToHex, hexToBytes, utf8ToBytes } from "@noble/hashes/utils";
import { privateKeyToAddress } from "viem/accounts";
import { SIMULATOR_APPKEYS_FILE } from "../../../test/fixtures/dstack/fixtures.ts";
import {
  createKmsRoot,
  createSimulatedCvm,
  DEVNET_KMS_ROOT_SECRET,
  loadDstackAppKeys,
  parseSimulatedQuote,
  SIMULATED_QUOTE_LENGTH,
  SIMULATED_QUOTE_MARKER,
} from "../../src/dstack-sim/simulator.ts";

const APP_ID = hexToBytes("1111111111111111111111111111111111111111");
const FIXTURE_APP_ID = hexToBytes("5bb4ff9a3837357f19dc176407a5709c62eb6c56");
const FIXTURE_KMS_ROOT = "0xa7f6043c29f9cc1d9d6acf554c53e0c6792aaeaf";
// The two fields of dstack's sdk/simulator/appkeys.json this project uses.
const FIXTURE_APPKEYS = {
  k256_key: "d6e88992cdeeee35fe70b5db61ab66cdb191fb9b6ec9313757ef162dd7214d5d",
  k256_signature:
    "9e618603e72d01fedb82deff6daf2d62a572becf0059eec3f89c1ab40e1f2e594d2a283f843f34e8f39e4cc49a612496ce67223a12ac923f8efe330346dfc6c500",
};
const FIXTURE_FILE = SIMULATOR_APPKEYS_FILE;

function chainInput(
  cvm: ReturnType<typeof createSimulatedCvm>,
  path: string,
  purpose: string,
  algorithm = KEY_ALGORITHMS[0]!,
) {
  const { key, signatureChain } = cvm.getKey(path, purpose, algorithm);
  return {
    appId: cvm.info().appId,
    purpose,
    derivedPubkey: derivedPublicKey(key, algorithm),
    appPubkey: cvm.appPublicKey,
    appSignature: signatureChain[0],
    kmsSignature: signatureChain[1],
  };
}

describe("KMS root", () => {
  test("the devnet root is keccak256 of its public label and has the matching address", () => {
    assert.deepEqual(
      DEVNET_KMS_ROOT_SECRET,
      keccak_256(utf8ToBytes("attestmesh devnet kms root — not a secret")),
    );
    const root = createKmsRoot();
    assert.deepEqual(root.secret, DEVNET_KMS_ROOT_SECRET);
    assert.equal(root.address, privateKeyToAddress(`0x${bytesToHex(DEVNET_KMS_ROOT_SECRET)}`));
    assert.equal(compressedToAddress(root.publicKey), root.address);
  });

  test("another secret gives another root", () => {
    const other = createKmsRoot(keccak_256(utf8ToBytes("other")));
    assert.notEqual(other.address, createKmsRoot().address);
  });
});

describe("createSimulatedCvm", () => {
  const kmsRoot = createKmsRoot();
  const cvm = createSimulatedCvm({ kmsRoot, appId: APP_ID });

  for (const algorithm of KEY_ALGORITHMS) {
    test(`${algorithm}: GetKey's chain verifies to the KMS root`, () => {
      assert.equal(verifyDstackKeyChain(chainInput(cvm, "/wg", "wireguard", algorithm)), kmsRoot.address);
    });
  }

  test("GetKey's key is dstack's derivation from the root, app id and path", () => {
    const appKey = deriveAppKey(kmsRoot.secret, APP_ID);
    assert.deepEqual(cvm.appPublicKey, secp256k1PublicKey(appKey));
    assert.deepEqual(cvm.getKey("/wg", "wireguard").key, deriveKey(appKey, "/wg"));
    // The key does not depend on purpose or algorithm; only the signature does.
    assert.deepEqual(cvm.getKey("/wg", "other", "ed25519").key, deriveKey(appKey, "/wg"));
  });

  test("is deterministic across instances; paths and app ids separate keys", () => {
    const again = createSimulatedCvm({ kmsRoot, appId: APP_ID.slice() });
    assert.deepEqual(again.getKey("/a", "p"), cvm.getKey("/a", "p"));
    assert.notDeepEqual(cvm.getKey("/b", "p").key, cvm.getKey("/a", "p").key);
    const otherApp = createSimulatedCvm({
      kmsRoot,
      appId: hexToBytes("2222222222222222222222222222222222222222"),
    });
    assert.notDeepEqual(otherApp.getKey("/a", "p").key, cvm.getKey("/a", "p").key);
    assert.notDeepEqual(otherApp.appPublicKey, cvm.appPublicKey);
  });

  test("a CVM under another root verifies to that root", () => {
    const otherRoot = createKmsRoot(keccak_256(utf8ToBytes("another root")));
    const other = createSimulatedCvm({ kmsRoot: otherRoot, appId: APP_ID });
    assert.equal(verifyDstackKeyChain(chainInput(other, "/wg", "wireguard")), otherRoot.address);
    assert.notEqual(otherRoot.address, kmsRoot.address);
  });

  test("info reports the identity given, defaults otherwise, and the KMS root address", () => {
    const composeHash = keccak_256(utf8ToBytes("compose"));
    const instanceId = hexToBytes("abababababababababababababababababababab");
    const deviceId = keccak_256(utf8ToBytes("device"));
    const info = createSimulatedCvm({
      kmsRoot,
      appId: APP_ID,
      composeHash,
      instanceId,
      deviceId,
      appName: "n1",
    }).info();
    assert.deepEqual(info.appId, APP_ID);
    assert.deepEqual(info.composeHash, composeHash);
    assert.deepEqual(info.instanceId, instanceId);
    assert.deepEqual(info.deviceId, deviceId);
    assert.equal(info.appName, "n1");
    assert.equal(info.kmsRootAddress, kmsRoot.address);
    const defaults = cvm.info();
    assert.equal(defaults.composeHash.length, 32);
    // As dstack measures it: sha256 over the exact bytes of the compose document served.
    assert.deepEqual(defaults.composeHash, sha256(utf8ToBytes(defaults.appCompose)));
    const own = createSimulatedCvm({ kmsRoot, appId: APP_ID, appCompose: '{"name":"x"}' }).info();
    assert.deepEqual(own.composeHash, sha256(utf8ToBytes('{"name":"x"}')));
    assert.equal(defaults.instanceId.length, 20);
    assert.equal(defaults.deviceId.length, 32);
    assert.equal(defaults.appName, "attestmesh-simulated");
  });

  test("returned bytes are copies: mutating them does not change the CVM", () => {
    cvm.info().appId.fill(0);
    cvm.getKey("/wg", "wireguard").signatureChain[1].fill(0);
    assert.deepEqual(cvm.info().appId, APP_ID);
    assert.equal(verifyDstackKeyChain(chainInput(cvm, "/wg", "wireguard")), kmsRoot.address);
  });

  test("refuses identity fields of the wrong size", () => {
    for (const options of [
      { appId: APP_ID.slice(1) },
      { appId: APP_ID, composeHash: new Uint8Array(31) },
      { appId: APP_ID, instanceId: new Uint8Array(32) },
      { appId: APP_ID, deviceId: new Uint8Array(20) },
    ]) {
      assert.throws(
        () => createSimulatedCvm({ kmsRoot, ...options }),
        (e) => isAttestmeshError(e, "InvalidSimulatorOption"),
      );
    }
  });
});

describe("simulated quote", () => {
  const composeHash = keccak_256(utf8ToBytes("compose"));
  const cvm = createSimulatedCvm({ kmsRoot: createKmsRoot(), appId: APP_ID, composeHash });

  test("starts with the marker and carries report data, app id and compose hash", () => {
    const reportData = keccak_256(utf8ToBytes("report"));
    const quote = cvm.getQuote(reportData);
    assert.equal(quote.length, SIMULATED_QUOTE_LENGTH);
    assert.equal(
      new TextDecoder().decode(quote.subarray(0, SIMULATED_QUOTE_MARKER.length)),
      "ATTESTMESH-SIMULATED-QUOTE-v1",
    );
    const fields = parseSimulatedQuote(quote);
    assert.deepEqual(fields.reportData.subarray(0, 32), reportData);
    assert.deepEqual(fields.reportData.subarray(32), new Uint8Array(32));
    assert.deepEqual(fields.appId, APP_ID);
    assert.deepEqual(fields.composeHash, composeHash);
    // Fixed layout: report data right after the marker, then app id, then compose hash.
    assert.equal(bytesToHex(quote.subarray(29, 61)), bytesToHex(reportData));
    assert.equal(bytesToHex(quote.subarray(93, 113)), bytesToHex(APP_ID));
    assert.equal(bytesToHex(quote.subarray(113, 145)), bytesToHex(composeHash));
  });

  test("accepts 0 to 64 bytes of report data and refuses 65", () => {
    assert.deepEqual(parseSimulatedQuote(cvm.getQuote(new Uint8Array(0))).reportData, new Uint8Array(64));
    const full = keccak_256(utf8ToBytes("a")).map((b, i) => b ^ i);
    const sixtyFour = new Uint8Array([...full, ...full]);
    assert.deepEqual(parseSimulatedQuote(cvm.getQuote(sixtyFour)).reportData, sixtyFour);
    assert.throws(
      () => cvm.getQuote(new Uint8Array(65)),
      (e) => isAttestmeshError(e, "ReportDataTooLong"),
    );
  });

  test("the parser refuses other bytes", () => {
    const quote = cvm.getQuote(new Uint8Array(1));
    const wrongMarker = quote.slice();
    wrongMarker[0] = 0x61;
    for (const bytes of [
      quote.slice(0, -1),
      new Uint8Array([...quote, 0]),
      wrongMarker,
      new Uint8Array(SIMULATED_QUOTE_LENGTH),
    ]) {
      assert.throws(
        () => parseSimulatedQuote(bytes),
        (e) => isAttestmeshError(e, "InvalidSimulatedQuote"),
      );
    }
  });
});

describe("loadDstackAppKeys", () => {
  test("the fixture's app key signs chains that verify to the fixture KMS root", () => {
    const cvm = loadDstackAppKeys(FIXTURE_APPKEYS, FIXTURE_APP_ID);
    assert.equal(
      bytesToHex(cvm.appPublicKey),
      "02818494263695e8839122dbd88e281d7380622999df4e60a14befa0f2d096fc7c",
    );
    assert.equal(cvm.info().kmsRootAddress.toLowerCase(), FIXTURE_KMS_ROOT);
    for (const algorithm of KEY_ALGORITHMS) {
      const input = chainInput(cvm, "/attestmesh/wg", "wireguard", algorithm);
      assert.equal(verifyDstackKeyChain(input).toLowerCase(), FIXTURE_KMS_ROOT);
      assert.equal(bytesToHex(input.kmsSignature), FIXTURE_APPKEYS.k256_signature);
    }
  });

  test("reads the fixture file as text", () => {
    const cvm = loadDstackAppKeys(readFileSync(FIXTURE_FILE, "utf8"), FIXTURE_APP_ID);
    assert.equal(verifyDstackKeyChain(chainInput(cvm, "/x", "y")).toLowerCase(), FIXTURE_KMS_ROOT);
  });

  test("for another app id the fixed KMS signature recovers someone else", () => {
    const cvm = loadDstackAppKeys(FIXTURE_APPKEYS, APP_ID);
    assert.notEqual(verifyDstackKeyChain(chainInput(cvm, "/x", "y")).toLowerCase(), FIXTURE_KMS_ROOT);
  });

  test("refuses malformed files", () => {
    for (const json of [
      "not json",
      "null",
      { k256_key: FIXTURE_APPKEYS.k256_key },
      { ...FIXTURE_APPKEYS, k256_key: "zz".repeat(32) },
      { ...FIXTURE_APPKEYS, k256_signature: FIXTURE_APPKEYS.k256_signature.slice(2) },
    ]) {
      assert.throws(
        () => loadDstackAppKeys(json, FIXTURE_APP_ID),
        (e) => isAttestmeshError(e, "InvalidAppKeysFile"),
      );
    }
  });
});
