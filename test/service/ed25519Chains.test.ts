// An agent that cannot sign an Ed25519 key (dstack before 0.5.6 ignores `algorithm` and signs the
// secp256k1 key of the same secret) is detected by the sidecar and the indexer, which stop with a fatal
// error naming the dstack release needed, instead of retrying a registration that can never pass.
// Checked against the production negative (a real Phala Cloud chain of that kind) and against the
// simulator reproducing such an agent over its socket.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startDstackSimulator } from "@attestmesh/devnet/dstack-sim/server.ts";
import { createKmsRoot, createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { deriveIndexerKeys } from "@attestmesh/indexer/keys.ts";
import { verifyDstackKeyChain } from "@attestmesh/shared/dstack/verify.ts";
import { IDENTITY_KEY, type KeySpec } from "@attestmesh/shared/keys/purposes.ts";
import {
  createDstackAgent,
  FIRST_DSTACK_WITH_ED25519_CHAINS,
  recoverAppPublicKey,
  requireEd25519Chain,
} from "@attestmesh/shared/service/dstack.ts";
import { deriveNodeKeys } from "@attestmesh/sidecar/keys.ts";
import { captureLogger } from "@attestmesh/sidecar/testing/helpers.ts";
import { hexToBytes } from "viem";
import { loadKmsChains } from "../fixtures/dstack/fixtures.ts";

const PHALA_CLOUD_ROOT = "0xd5BDeB037F237Baac161EA37999B6aA37f7f4C77";

function isEd25519Unsupported(error: unknown): boolean {
  const e = error as { code?: string; retryable?: boolean; message?: string };
  assert.equal(e.code, "Ed25519ChainUnsupported");
  assert.equal(e.retryable, false, "fatal: only a newer dstack OS image helps");
  assert.match(
    e.message ?? "",
    new RegExp(`dstack ${FIRST_DSTACK_WITH_ED25519_CHAINS.replaceAll(".", "\\.")} or later`),
  );
  return true;
}

describe("the production negative (Phala Cloud, an 'Ed25519' key whose chain signs a secp256k1 key)", () => {
  const fixtures = loadKmsChains();
  const negative = fixtures.negative[0]!;
  // The same app's real secp256k1 chain: the anchor a node has from its own secp256k1 key.
  const sameApp = fixtures.chains.find((c) => c.appId === negative.appId && c.derivedPubkey.length === 68)!;

  test("the anchor chain of the same app verifies to Phala Cloud's production root", () => {
    assert.equal(
      verifyDstackKeyChain({
        appId: hexToBytes(sameApp.appId),
        purpose: sameApp.purpose,
        derivedPubkey: hexToBytes(sameApp.derivedPubkey),
        appPubkey: hexToBytes(sameApp.appPubkey),
        appSignature: hexToBytes(sameApp.appSignature),
        kmsSignature: hexToBytes(sameApp.kmsSignature),
      }),
      PHALA_CLOUD_ROOT,
    );
  });

  test("read for its Ed25519 key, the chain leads to another app key and no production root", () => {
    const appPubkey = recoverAppPublicKey(
      negative.purpose,
      hexToBytes(negative.derivedPubkey),
      hexToBytes(negative.appSignature),
    );
    assert.notEqual(Buffer.from(appPubkey).toString("hex"), sameApp.appPubkey.slice(2));
    const signer = verifyDstackKeyChain({
      appId: hexToBytes(negative.appId),
      purpose: negative.purpose,
      derivedPubkey: hexToBytes(negative.derivedPubkey),
      appPubkey,
      appSignature: hexToBytes(negative.appSignature),
      kmsSignature: hexToBytes(negative.kmsSignature),
    });
    assert.notEqual(signer, PHALA_CLOUD_ROOT);
  });

  test("requireEd25519Chain refuses it, naming dstack 0.5.6", () => {
    const spec: KeySpec = { path: "aci/legacy", purpose: negative.purpose, algorithm: "ed25519" };
    const appSignature = hexToBytes(negative.appSignature);
    const publicKey = hexToBytes(negative.derivedPubkey);
    const proven = {
      publicKey,
      appPubkey: recoverAppPublicKey(negative.purpose, publicKey, appSignature),
      appSignature,
      guestApiVersion: 0 as const,
    };
    assert.throws(
      () => requireEd25519Chain(hexToBytes(sameApp.appPubkey), spec, proven),
      isEd25519Unsupported,
    );
    // A secp256k1 key is never refused by this check (its chains verify on every dstack).
    requireEd25519Chain(hexToBytes(sameApp.appPubkey), { ...spec, algorithm: "secp256k1" }, proven);
  });
});

describe("a simulated dstack before 0.5.6, over its socket", () => {
  let dir: string;
  let close: () => Promise<void>;
  let socketPath: string;
  const appId = "0x0000000000000000000000000000000000000d56";

  before(async () => {
    dir = await mkdtemp("/tmp/am-ed25519-");
    socketPath = join(dir, "dstack.sock");
    const cvm = createSimulatedCvm({
      kmsRoot: createKmsRoot(),
      appId: hexToBytes(appId),
      ed25519Chains: false,
    });
    close = (await startDstackSimulator({ socketPath, cvm, logger: captureLogger("silent").logger })).close;
  });

  after(async () => {
    await close();
    await rm(dir, { recursive: true, force: true });
  });

  test("the sidecar stops deriving its keys with Ed25519ChainUnsupported (not InconsistentKeyChains)", async () => {
    await assert.rejects(deriveNodeKeys(createDstackAgent(socketPath, {})), (error: unknown) => {
      isEd25519Unsupported(error);
      assert.equal((error as { details: { path: string } }).details.path, IDENTITY_KEY.path);
      return true;
    });
  });

  test("the indexer stops deriving its signing key with Ed25519ChainUnsupported", async () => {
    await assert.rejects(deriveIndexerKeys(createDstackAgent(socketPath, {})), isEd25519Unsupported);
  });
});
