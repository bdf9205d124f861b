// The dstack key proof: a chain built the way dstack builds it is proven, whatever encoding of v and s
// the guest agent sends (one implementation for every daemon: v normalised to {0, 1}, s to low s);
// a chain an attacker altered is refused.
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { startDstackSimulator } from "@attestmesh/devnet/dstack-sim/server.ts";
import { createKmsRoot, createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import {
  appSignDerivedKey,
  deriveAppKey,
  derivedPublicKey,
  deriveKey,
  kmsSignAppKey,
  secp256k1PublicKey,
} from "@attestmesh/shared/dstack/keychain.ts";
import { SECP256K1_HALF_N } from "@attestmesh/shared/dstack/verify.ts";
import { isAttestmeshError } from "@attestmesh/shared/errors.ts";
import { INDEXER_KEY, MEMBER_KEY } from "@attestmesh/shared/keys/purposes.ts";
import {
  createDstackAgent,
  createDstackEvidenceSource,
  type DerivedKey,
  normaliseSignature,
  parseAppId,
  parseBytes32,
  proveKey,
} from "@attestmesh/shared/service/dstack.ts";
import { testTempDir } from "@attestmesh/shared/testing/tempDir.ts";
import { keccak_256 } from "@noble/hashes/sha3";
import { pino } from "pino";
import { bytesToHex, getAddress, hexToBytes } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { malleableTwin } from "../dstack/corrupt.ts";

const KMS_ROOT = keccak_256(new TextEncoder().encode("attestmesh service-kit test kms root"));
const APP_ID = getAddress("0x1111111111111111111111111111111111111111");

/** GetKey as dstack answers it, for `spec`. */
function getKey(spec: { path: string; purpose: string; algorithm: "secp256k1" | "ed25519" }): DerivedKey {
  const appId = hexToBytes(APP_ID);
  const appKey = deriveAppKey(KMS_ROOT, appId);
  const appPub = secp256k1PublicKey(appKey);
  const key = deriveKey(appKey, spec.path);
  const pub = derivedPublicKey(key, spec.algorithm);
  return {
    key,
    signatureChain: [appSignDerivedKey(appKey, spec.purpose, pub), kmsSignAppKey(KMS_ROOT, appId, appPub)],
  };
}

const KMS_SIGNER = privateKeyToAccount(bytesToHex(KMS_ROOT)).address;

describe("proveKey", () => {
  for (const spec of [MEMBER_KEY, INDEXER_KEY]) {
    test(`${spec.path}: the chain leads to the KMS root`, () => {
      const proven = proveKey(APP_ID, spec, getKey(spec));
      assert.equal(proven.kmsSigner, KMS_SIGNER);
      assert.ok(proven.appSignature[64]! <= 1 && proven.kmsSignature[64]! <= 1);
    });

    test(`${spec.path}: v as 27/28 and a high s are normalised to the one encoding the contract accepts`, () => {
      const honest = getKey(spec);
      const [app, kms] = honest.signatureChain as [Uint8Array, Uint8Array];
      const v27 = (sig: Uint8Array) => Uint8Array.of(...sig.subarray(0, 64), sig[64]! + 27);
      const reference = proveKey(APP_ID, spec, honest);
      for (const chain of [
        [v27(app), v27(kms)],
        [malleableTwin(app), malleableTwin(kms)],
        [v27(malleableTwin(app)), v27(malleableTwin(kms))],
      ]) {
        const proven = proveKey(APP_ID, spec, { key: honest.key, signatureChain: chain });
        assert.deepEqual(proven.appSignature, reference.appSignature);
        assert.deepEqual(proven.kmsSignature, reference.kmsSignature);
        assert.ok(BigInt(bytesToHex(proven.appSignature.subarray(32, 64))) <= SECP256K1_HALF_N);
        assert.equal(proven.kmsSigner, KMS_SIGNER);
      }
    });
  }

  /** The chain does not lead to the KMS root: it is refused, or leads to a signer no cluster allows. */
  function notFromRoot(prove: () => { kmsSigner: string }): void {
    let signer: string | undefined;
    try {
      signer = prove().kmsSigner;
    } catch (error) {
      assert.ok(isAttestmeshError(error) && !error.retryable, String(error));
      return;
    }
    assert.notEqual(signer, KMS_SIGNER);
  }

  test("an attacker's key under an honest chain does not lead to the KMS root", () => {
    const honest = getKey(MEMBER_KEY);
    const attackerKey = keccak_256(new TextEncoder().encode("attacker"));
    notFromRoot(() =>
      proveKey(APP_ID, MEMBER_KEY, { key: attackerKey, signatureChain: honest.signatureChain }),
    );
  });

  test("an honest chain claimed for another app id or purpose does not lead to the KMS root", () => {
    const other = getAddress("0x2222222222222222222222222222222222222222");
    notFromRoot(() => proveKey(other, MEMBER_KEY, getKey(MEMBER_KEY)));
    notFromRoot(() => proveKey(APP_ID, { ...MEMBER_KEY, purpose: "something-else" }, getKey(MEMBER_KEY)));
  });

  test("a chain with one signature, or a short key, is refused before any math", () => {
    const honest = getKey(MEMBER_KEY);
    assert.throws(
      () =>
        proveKey(APP_ID, MEMBER_KEY, { key: honest.key, signatureChain: honest.signatureChain.slice(0, 1) }),
      (error: unknown) => isAttestmeshError(error, "InvalidSignatureChain"),
    );
    assert.throws(
      () =>
        proveKey(APP_ID, MEMBER_KEY, {
          key: honest.key.subarray(0, 31),
          signatureChain: honest.signatureChain,
        }),
      (error: unknown) => isAttestmeshError(error, "InvalidDerivedKey"),
    );
  });
});

describe("normaliseSignature and parseAppId", () => {
  test("v outside {0, 1, 27, 28} and a wrong length are refused", () => {
    const sig = new Uint8Array(65);
    sig[64] = 2;
    assert.throws(
      () => normaliseSignature(sig, "kmsSignature"),
      (e: unknown) => isAttestmeshError(e, "InvalidSignatureV"),
    );
    assert.throws(
      () => normaliseSignature(new Uint8Array(64), "kmsSignature"),
      (e: unknown) => isAttestmeshError(e, "InvalidSignatureLength"),
    );
  });

  test("app ids with or without 0x become checksummed addresses; anything else is refused", () => {
    assert.equal(parseAppId(APP_ID.slice(2).toLowerCase()), APP_ID);
    assert.equal(parseAppId(APP_ID.toLowerCase()), APP_ID);
    assert.throws(
      () => parseAppId("0x1234"),
      (e: unknown) => isAttestmeshError(e, "InvalidAppId"),
    );
  });
});

describe("the guest agent's Info", () => {
  test("a 32-byte field with or without 0x becomes lowercase 0x-hex; anything else is refused", () => {
    const hash = `0x${"Ab".repeat(32)}`;
    assert.equal(parseBytes32("compose_hash", hash.slice(2)), hash.toLowerCase());
    assert.equal(parseBytes32("compose_hash", hash), hash.toLowerCase());
    for (const bad of [undefined, "", "0x1234", `0x${"zz".repeat(32)}`, `0x${"00".repeat(33)}`]) {
      assert.throws(
        () => parseBytes32("device_id", bad),
        (e: unknown) => isAttestmeshError(e, "InvalidInfo"),
        String(bad),
      );
    }
  });

  test("the agent reads the compose hash and device id a member states, from the SDK's Info", async (t) => {
    const dir = testTempDir(t, "attestmesh-info-");
    const composeHash = keccak_256(new TextEncoder().encode("info test compose"));
    const deviceId = keccak_256(new TextEncoder().encode("info test device"));
    const cvm = createSimulatedCvm({
      kmsRoot: createKmsRoot(KMS_ROOT),
      appId: hexToBytes(APP_ID),
      composeHash,
      deviceId,
    });
    const simulator = await startDstackSimulator({
      socketPath: join(dir, "dstack.sock"),
      cvm,
      logger: pino({ level: "silent" }),
    });
    try {
      const info = await createDstackAgent(simulator.socketPath).info();
      assert.deepEqual(info, {
        appId: APP_ID,
        composeHash: bytesToHex(composeHash),
        deviceId: bytesToHex(deviceId),
      });
    } finally {
      await simulator.close();
    }
  });
});

describe("the evidence source", () => {
  for (const guestApi of ["v0", "v1"] as const) {
    test(`${guestApi}: asks Info once for the CVM's life; each later quote is one guest-agent call`, async (t) => {
      const dir = testTempDir(t, "attestmesh-evidence-");
      const appCompose = JSON.stringify({
        manifest_version: 2,
        name: "evidence-test",
        runner: "docker-compose",
        docker_compose_file: `services: {}\nx-attestmesh:\n  guest_api: ${guestApi}\n`,
      });
      const routes: string[] = [];
      const logger = pino(
        { level: "debug" },
        {
          write: (line: string) => {
            const { route, msg } = JSON.parse(line) as { route?: string; msg?: string };
            if (msg === "request" && route !== undefined) routes.push(route);
          },
        },
      );
      const socketPath = join(dir, "dstack.sock");
      const source = createDstackEvidenceSource(socketPath, {});
      // No guest agent yet: the failure is not remembered.
      await assert.rejects(source.evidence(new Uint8Array(64)), (e) =>
        isAttestmeshError(e, "DstackUnavailable"),
      );
      const cvm = createSimulatedCvm({
        kmsRoot: createKmsRoot(KMS_ROOT),
        appId: hexToBytes(APP_ID),
        appCompose,
      });
      const simulator = await startDstackSimulator({ socketPath, cvm, logger });
      try {
        const quote = guestApi === "v0" ? "/GetQuote" : "/v1/Attest";
        const first = await source.evidence(new Uint8Array(64).fill(1));
        const infos = guestApi === "v0" ? ["/Info"] : ["/Info", "/v1/Info"];
        assert.deepEqual(new Set(routes), new Set([...infos, quote]));
        assert.equal(routes.length, infos.length + 1);
        routes.length = 0;
        const later = [];
        for (let i = 2; i <= 4; i++) later.push(await source.evidence(new Uint8Array(64).fill(i)));
        assert.deepEqual(routes, [quote, quote, quote], "no Info after the first");
        for (const evidence of [first, ...later]) {
          assert.equal(evidence.appCompose, appCompose);
          assert.equal(evidence.guestApi, guestApi);
        }
        assert.equal(new Set([first, ...later].map((e) => e.quote)).size, 4, "every quote is fresh");
      } finally {
        await simulator.close();
      }
    });
  }
});
