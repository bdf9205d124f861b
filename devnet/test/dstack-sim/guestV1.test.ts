// The simulator's guest API v1 surface (dstack 0.6, docs/guest-api-v1.md @147e39c8), over its unix
// socket with raw prpc JSON: the spec's vectors byte for byte (KDF outputs and link 0), the versioned
// attestation, Info's compose document, the three 404s the spec tells apart, and an agent before 0.6.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decodeTdxAttestation } from "@attestmesh/shared/dstack/attestation.ts";
import { keyClaimDigestV1 } from "@attestmesh/shared/dstack/guestV1.ts";
import { kmsSignAppKey, secp256k1PublicKey } from "@attestmesh/shared/dstack/keychain.ts";
import { compressedToAddress, recoverSignerAddress } from "@attestmesh/shared/dstack/verify.ts";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils";
import { loadGuestV1Vectors } from "../../../test/fixtures/dstack/fixtures.ts";
import {
  DSTACK_API_VERSION,
  DSTACK_V1_API_VERSION,
  type DstackSimulator,
} from "../../src/dstack-sim/server.ts";
import { loadDstackAppKeys, parseSimulatedQuote } from "../../src/dstack-sim/simulator.ts";
import { APP_ID, DEVNET_ROOT, rawRequest, serving } from "./fixtures.ts";

const vectors = loadGuestV1Vectors();
const APP_COMPOSE = '{"docker_compose_file":"x-attestmesh:\\n  guest_api: v1\\nservices: {}\\n"}';

/** A CVM whose app key is the spec's app root key, issued by the devnet KMS root for APP_ID. */
function vectorCvm() {
  const appKey = hexToBytes(vectors.appRootKey);
  const k256_signature = bytesToHex(kmsSignAppKey(DEVNET_ROOT.secret, APP_ID, secp256k1PublicKey(appKey)));
  return loadDstackAppKeys({ k256_key: vectors.appRootKey, k256_signature }, APP_ID, {
    appCompose: APP_COMPOSE,
  });
}

type Answer = { status: number; contentType: string; text: string; json: Record<string, unknown> };

async function post(socketPath: string, path: string, body: unknown = {}): Promise<Answer> {
  const { status, headers, text, json } = await rawRequest(socketPath, { path, body: JSON.stringify(body) });
  return { status, contentType: String(headers["content-type"]), text, json };
}

describe("guest API v1 on the simulator (dstack 0.6)", () => {
  let sim: DstackSimulator;
  serving({ cvm: vectorCvm(), guestApis: "v0+v1" }, (served) => {
    sim = served;
  });

  for (const v of vectors.keys) {
    const domain =
      v.domainHex === undefined ? (v.domain ?? "") : Buffer.from(v.domainHex, "hex").toString("latin1");
    test(`/v1/GetKey reproduces the spec vector (${v.algorithm}, domain ${JSON.stringify(domain)})`, async () => {
      const answer = await post(sim.socketPath, "/v1/GetKey", { domain, algorithm: v.algorithm });
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.json.key, v.privateKey);
      assert.equal(answer.json.public_key, v.publicKey);
      const chain = answer.json.signature_chain as string[];
      assert.equal(chain.length, 2);
      // Link 0 recovers the app root key over the v1 claim; link 1 to the KMS root, as in v0.
      const appAddress = compressedToAddress(secp256k1PublicKey(hexToBytes(vectors.appRootKey)));
      const claim = keyClaimDigestV1(Buffer.from(domain, "latin1"), hexToBytes(v.publicKey));
      assert.equal(recoverSignerAddress(claim, hexToBytes(chain[0]!)), appAddress);
    });
  }

  test("/v1/GetKey link 0 is the spec's signature byte for byte", async () => {
    const { domain, algorithm, publicKey, signature } = vectors.link0;
    const answer = await post(sim.socketPath, "/v1/GetKey", { domain, algorithm });
    assert.equal(answer.json.public_key, publicKey);
    assert.equal((answer.json.signature_chain as string[])[0], signature);
  });

  test("v1 keys are not v0 keys, and v0 stays served at / and /v0", async () => {
    const v1 = await post(sim.socketPath, "/v1/GetKey", { domain: "d", algorithm: "secp256k1" });
    const root = await post(sim.socketPath, "/GetKey", { path: "d", purpose: "d", algorithm: "secp256k1" });
    const v0 = await post(sim.socketPath, "/v0/GetKey", { path: "d", purpose: "d", algorithm: "secp256k1" });
    assert.equal(root.status, 200);
    assert.deepEqual(v0.json, root.json, "/v0 is the same handler as the unversioned alias");
    assert.notEqual(v1.json.key, root.json.key);
  });

  test("v1 GetKey takes no default and no alias for algorithm (400)", async () => {
    for (const algorithm of [undefined, "", "k256", "secp256k1_prehashed"]) {
      const answer = await post(sim.socketPath, "/v1/GetKey", { domain: "d", algorithm });
      assert.equal(answer.status, 400, String(algorithm));
      assert.match(String(answer.json.error), /secp256k1.*ed25519/);
    }
  });

  test("/v1/Attest returns a versioned attestation carrying the quote, event log and report data", async () => {
    const reportData = "ab".repeat(40);
    const tooLong = await post(sim.socketPath, "/v1/Attest", { report_data: "00".repeat(65) });
    assert.equal(tooLong.status, 400);
    const answer = await post(sim.socketPath, "/v1/Attest", { report_data: reportData });
    assert.equal(answer.status, 200, answer.text);
    const attestation = hexToBytes(answer.json.attestation as string);
    assert.ok(attestation[0]! >= 0x80 && attestation[0]! <= 0x8f, "a MessagePack map (V1), not SCALE V0");
    const decoded = decodeTdxAttestation(attestation);
    assert.equal(decoded.platform, "tdx");
    const quote = parseSimulatedQuote(decoded.quote);
    assert.equal(bytesToHex(quote.reportData), `${reportData}${"00".repeat(24)}`);
    assert.deepEqual(decoded.reportData, quote.reportData);
    assert.deepEqual(
      decoded.eventLog.map((e) => e.event),
      ["app-id", "compose-hash", "instance-id"],
    );
    assert.deepEqual(answer.json.boottime_gpu_evidence, []);
  });

  test("/v1/Info and v0 Info return the configured compose document verbatim", async () => {
    const v1 = await post(sim.socketPath, "/v1/Info");
    assert.equal(v1.json.app_compose, APP_COMPOSE);
    assert.equal(v1.json.app_id, bytesToHex(APP_ID));
    const v0 = await post(sim.socketPath, "/Info");
    assert.equal(
      (JSON.parse(v0.json.tcb_info as string) as { app_compose: string }).app_compose,
      APP_COMPOSE,
    );
  });

  test("/v1/Version reports 0.6; an unknown v1 method is 404 `Service not found`", async () => {
    assert.equal((await post(sim.socketPath, "/v1/Version")).json.version, DSTACK_V1_API_VERSION);
    for (const method of ["GetQuote", "Sign", "Nope"]) {
      const answer = await post(sim.socketPath, `/v1/${method}`);
      assert.equal(answer.status, 404);
      assert.equal(answer.json.error, `Service not found: ${method}`);
    }
  });
});

describe("an agent before dstack 0.6 (guest API v0 only)", () => {
  let sim: DstackSimulator;
  serving({ cvm: vectorCvm(), guestApis: "v0" }, (served) => {
    sim = served;
  });

  test("every /v1 path is a plain 404 with no `Service not found` JSON (no such mount)", async () => {
    for (const path of ["/v1/Version", "/v1/GetKey", "/v1/Attest", "/v1/Info"]) {
      const answer = await post(sim.socketPath, path, { domain: "d", algorithm: "secp256k1" });
      assert.equal(answer.status, 404, path);
      assert.doesNotMatch(answer.text, /Service not found/);
      assert.throws(() => JSON.parse(answer.text));
    }
  });

  test("v0 keeps working and reports a pre-0.6 version", async () => {
    assert.equal((await post(sim.socketPath, "/Version")).json.version, DSTACK_API_VERSION);
    const key = await post(sim.socketPath, "/GetKey", { path: "p", purpose: "p", algorithm: "ed25519" });
    assert.equal(key.status, 200);
  });
});
