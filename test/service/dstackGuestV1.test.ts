// The service kit's guest API v1 client and the compose-pinned agent, against the dstack simulator over
// its unix socket: v1 keys and quotes for the sidecar and the indexer when the attested compose pins
// v1, v0 (the SDK) otherwise; an agent without v1 is a fatal error, never a silent fall-back; a v1 chain
// is never taken for a v0 one; the environment cannot choose the guest API.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type GuestApis, startDstackSimulator } from "@attestmesh/devnet/dstack-sim/server.ts";
import {
  createKmsRoot,
  createSimulatedCvm,
  parseSimulatedQuote,
  type SimulatedCvm,
} from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { deriveIndexerKeys } from "@attestmesh/indexer/keys.ts";
import { quoteReportData } from "@attestmesh/shared/indexer/protocol.ts";
import { IDENTITY_KEY, MEMBER_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { createDstackAgent, proveKey } from "@attestmesh/shared/service/dstack.ts";
import {
  createDstackV1Agent,
  createDstackV1Client,
  isServiceNotFound,
} from "@attestmesh/shared/service/dstackV1.ts";
import { deriveNodeKeys } from "@attestmesh/sidecar/keys.ts";
import { captureLogger } from "@attestmesh/sidecar/testing/helpers.ts";
import { bytesToHex, getAddress, hexToBytes } from "viem";

const KMS_ROOT = createKmsRoot();
const APP_ID = getAddress("0x0000000000000000000000000000000000000601");

const composePinning = (guestApi: string | undefined): string =>
  JSON.stringify({
    docker_compose_file: `${guestApi === undefined ? "" : `x-attestmesh:\n  guest_api: ${guestApi}\n`}services: {}\n`,
    manifest_version: 2,
  });

interface Agent {
  readonly socketPath: string;
  readonly cvm: SimulatedCvm;
  close(): Promise<void>;
}

const dirs: string[] = [];
const closers: (() => Promise<void>)[] = [];

async function agent(guestApis: GuestApis, pinned: string | undefined): Promise<Agent> {
  const dir = await mkdtemp("/tmp/am-guest-v1-");
  dirs.push(dir);
  const cvm = createSimulatedCvm({
    kmsRoot: KMS_ROOT,
    appId: hexToBytes(APP_ID),
    appCompose: composePinning(pinned),
  });
  const socketPath = join(dir, "dstack.sock");
  const sim = await startDstackSimulator({
    socketPath,
    cvm,
    guestApis,
    logger: captureLogger("silent").logger,
  });
  closers.push(sim.close);
  return { socketPath, cvm, close: sim.close };
}

after(async () => {
  for (const close of closers) await close();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

function rawPost(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: "POST", agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end("{}");
  });
}

describe("the v1 client against a dstack 0.6 agent", () => {
  let a: Agent;
  before(async () => {
    a = await agent("v0+v1", "v1");
  });

  test("GetKey: the v1 key, its raw public key, and a chain proven up to the KMS root as a v1 chain", async () => {
    const derived = await createDstackV1Client(a.socketPath).getKey(MEMBER_KEY.purpose, "secp256k1");
    const expected = a.cvm.getKeyV1(MEMBER_KEY.purpose, "secp256k1");
    assert.deepEqual(derived.key, expected.key);
    assert.deepEqual(derived.publicKey, expected.publicKey);
    const proven = proveKey(APP_ID, MEMBER_KEY, derived);
    assert.equal(proven.guestApiVersion, 1);
    assert.equal(proven.kmsSigner, KMS_ROOT.address);
    assert.deepEqual(proven.appPubkey, a.cvm.appPublicKey);
  });

  test("a v1 chain is never taken for a v0 chain, nor a v0 chain for a v1 one", async () => {
    const v1 = await createDstackV1Client(a.socketPath).getKey(MEMBER_KEY.purpose, "secp256k1");
    const asV0 = proveKey(APP_ID, MEMBER_KEY, { ...v1, guestApiVersion: 0 });
    assert.notEqual(asV0.kmsSigner, KMS_ROOT.address);
    const v0 = a.cvm.getKey(MEMBER_KEY.path, MEMBER_KEY.purpose, "secp256k1");
    const asV1 = proveKey(APP_ID, MEMBER_KEY, { ...v0, guestApiVersion: 1 });
    assert.notEqual(asV1.kmsSigner, KMS_ROOT.address);
  });

  test("an agent whose public_key is not the key's own is refused (InvalidDerivedKey)", async () => {
    const v1 = await createDstackV1Client(a.socketPath).getKey(MEMBER_KEY.purpose, "secp256k1");
    const other = a.cvm.getKeyV1("someone else", "secp256k1").publicKey;
    assert.throws(() => proveKey(APP_ID, MEMBER_KEY, { ...v1, publicKey: other }), {
      code: "InvalidDerivedKey",
    });
  });

  test("Attest: the quote inside the versioned attestation binds the report data", async () => {
    const reportData = new Uint8Array(64).fill(7);
    const quote = await createDstackV1Agent(a.socketPath).getQuote(reportData);
    assert.deepEqual(parseSimulatedQuote(hexToBytes(quote)).reportData, reportData);
  });

  test("Info and Version", async () => {
    const client = createDstackV1Client(a.socketPath);
    const info = await client.info();
    assert.equal(info.appId, APP_ID);
    assert.equal(info.appCompose, composePinning("v1"));
    assert.match((await client.version()).version, /^0\.6\./);
    // What a member states at registration: the v1 agent reports the compose hash and device id too.
    const cvm = a.cvm.info();
    const identity = await createDstackV1Agent(a.socketPath).info();
    assert.deepEqual(identity, {
      appId: APP_ID,
      composeHash: bytesToHex(cvm.composeHash),
      deviceId: bytesToHex(cvm.deviceId),
    });
  });

  test("a 404 `Service not found` means v1 is mounted without that method", async () => {
    const answer = await rawPost(a.socketPath, "/v1/GetQuote");
    assert.equal(answer.status, 404);
    assert.equal(isServiceNotFound(answer.body), true);
  });
});

describe("an agent without guest API v1 (before dstack 0.6)", () => {
  let old: Agent;
  before(async () => {
    old = await agent("v0", "v1");
  });

  test("its /v1 404 is told apart from `Service not found`", async () => {
    const answer = await rawPost(old.socketPath, "/v1/Version");
    assert.equal(answer.status, 404);
    assert.equal(isServiceNotFound(answer.body), false);
  });

  for (const call of ["getKey", "attest", "info", "version"] as const) {
    test(`v1 ${call} is a fatal DstackGuestApiV1Unavailable naming dstack 0.6`, async () => {
      const client = createDstackV1Client(old.socketPath);
      const run = {
        getKey: () => client.getKey("d", "secp256k1"),
        attest: () => client.attest(new Uint8Array(1)),
        info: () => client.info(),
        version: () => client.version(),
      }[call];
      await assert.rejects(run(), (error: Error & { code?: string; retryable?: boolean }) => {
        assert.equal(error.code, "DstackGuestApiV1Unavailable");
        assert.equal(error.retryable, false);
        assert.match(error.message, /dstack 0\.6/);
        return true;
      });
    });
  }

  test("a node pinned to v1 stops instead of falling back to v0 keys", async () => {
    await assert.rejects(deriveNodeKeys(createDstackAgent(old.socketPath, {})), {
      code: "DstackGuestApiV1Unavailable",
      retryable: false,
    });
  });
});

describe("the guest API comes from the attested compose, never from the environment", () => {
  test("pinned v1: the sidecar's keys come from /v1/GetKey and its proof says v1", async () => {
    const a = await agent("v0+v1", "v1");
    const source = createDstackAgent(a.socketPath, {});
    assert.equal(await source.guestApi(), "v1");
    const keys = await deriveNodeKeys(source);
    assert.equal(keys.kmsSigner, KMS_ROOT.address);
    assert.equal(keys.member.proof.guestApiVersion, 1);
    assert.equal(
      keys.member.proof.memberPubkey,
      bytesToHex(a.cvm.getKeyV1(MEMBER_KEY.purpose, "secp256k1").publicKey),
    );
    assert.equal(
      keys.identity.publicKey,
      bytesToHex(a.cvm.getKeyV1(IDENTITY_KEY.purpose, "ed25519").publicKey),
    );
  });

  test("pinned v1: the indexer's key and quote come from v1", async () => {
    const a = await agent("v0+v1", "v1");
    const keys = await deriveIndexerKeys(createDstackAgent(a.socketPath, {}));
    assert.equal(keys.proof.guestApiVersion, 1);
    assert.equal(keys.kmsRoot, KMS_ROOT.address);
    assert.deepEqual(parseSimulatedQuote(hexToBytes(keys.quote)).reportData, quoteReportData(keys.publicKey));
  });

  for (const pinned of [undefined, "v0"]) {
    test(`${pinned === undefined ? "no pin (default)" : "pinned v0"}: v0 keys through the SDK, even on a 0.6 agent`, async () => {
      const a = await agent("v0+v1", pinned);
      const source = createDstackAgent(a.socketPath, {});
      assert.equal(await source.guestApi(), "v0");
      const keys = await deriveNodeKeys(source);
      assert.equal(keys.member.proof.guestApiVersion, 0);
      const v0 = a.cvm.getKey(MEMBER_KEY.path, MEMBER_KEY.purpose, "secp256k1");
      assert.equal(keys.member.proof.appSignature, bytesToHex(v0.signatureChain[0]));
    });
  }

  test("an environment that tries to choose the guest API is refused before any call", () => {
    for (const name of ["ATTESTMESH_GUEST_API", "DSTACK_GUEST_API"]) {
      assert.throws(() => createDstackAgent("/nonexistent.sock", { [name]: "v1" }), {
        code: "PinnedSettingInEnvironment",
        retryable: false,
      });
    }
  });
});
