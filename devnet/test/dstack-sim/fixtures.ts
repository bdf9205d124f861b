// What the dstack simulator's server and CLI tests share: one simulated app, dstack's own simulator
// key file, the check of a key chain the official SDK returned, a raw HTTP request over the socket, and
// a simulator serving a CVM for a describe block.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { after, before } from "node:test";
import { derivedPublicKey, type KeyAlgorithm } from "@attestmesh/shared/dstack/keychain.ts";
import { verifyDstackKeyChain } from "@attestmesh/shared/dstack/verify.ts";
import { keccak_256 } from "@noble/hashes/sha3";
import { hexToBytes, utf8ToBytes } from "@noble/hashes/utils";
import pino from "pino";
import {
  type DstackSimulator,
  type DstackSimulatorOptions,
  startDstackSimulator,
} from "../../src/dstack-sim/server.ts";
import { createKmsRoot, createSimulatedCvm, type SimulatedCvm } from "../../src/dstack-sim/simulator.ts";

export const APP_ID_HEX = "1111111111111111111111111111111111111111";
export const APP_ID = hexToBytes(APP_ID_HEX);
export const COMPOSE_HASH = keccak_256(utf8ToBytes("server test compose"));
// Non-ASCII on purpose: the SDK's socket client only works if responses stay ASCII.
export const APP_NAME = "café ☕ node";
export const DEVNET_ROOT = createKmsRoot();

// dstack's own simulator key file (sdk/simulator/appkeys.json), the fields this project uses.
export const FIXTURE_APP_ID_HEX = "5bb4ff9a3837357f19dc176407a5709c62eb6c56";
export const FIXTURE_KMS_ROOT = "0xa7f6043c29f9cc1d9d6acf554c53e0c6792aaeaf";
export const FIXTURE_APPKEYS = {
  k256_key: "d6e88992cdeeee35fe70b5db61ab66cdb191fb9b6ec9313757ef162dd7214d5d",
  k256_signature:
    "9e618603e72d01fedb82deff6daf2d62a572becf0059eec3f89c1ab40e1f2e594d2a283f843f34e8f39e4cc49a612496ce67223a12ac923f8efe330346dfc6c500",
};

export function testCvm(): SimulatedCvm {
  return createSimulatedCvm({
    kmsRoot: DEVNET_ROOT,
    appId: APP_ID,
    composeHash: COMPOSE_HASH,
    appName: APP_NAME,
  });
}

/** The chain the SDK returned, checked with the off-chain verifier; returns the KMS signer. */
export function verifySdkKey(
  response: { key: Uint8Array; signature_chain: Uint8Array[] },
  appId: Uint8Array,
  appPubkey: Uint8Array,
  purpose: string,
  algorithm: KeyAlgorithm,
): string {
  assert.equal(response.signature_chain.length, 2);
  return verifyDstackKeyChain({
    appId,
    purpose,
    derivedPubkey: derivedPublicKey(response.key, algorithm),
    appPubkey,
    appSignature: response.signature_chain[0]!,
    kmsSignature: response.signature_chain[1]!,
  });
}

export type RawResponse = {
  status: number;
  headers: Record<string, unknown>;
  text: string;
  json: Record<string, unknown>;
};

/** One HTTP request over the unix socket, outside the SDK (which cannot send malformed ones). */
export function rawRequest(
  socketPath: string,
  options: { method?: string; path: string; body?: string | Buffer },
): Promise<RawResponse> {
  return new Promise((answer, fail) => {
    const req = request(
      {
        socketPath,
        method: options.method ?? "POST",
        path: options.path,
        agent: false,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {}
          answer({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on("error", fail);
    req.end(options.body);
  });
}

/**
 * Serves `options.cvm` on a socket in a fresh temporary directory for the enclosing describe block
 * (started before its tests, closed and removed after them), handing the simulator to `use`.
 */
export function serving(
  options: Omit<DstackSimulatorOptions, "socketPath" | "logger">,
  use: (sim: DstackSimulator) => void,
): void {
  let sim: DstackSimulator;
  let dir: string;
  before(async () => {
    dir = await mkdtemp("/tmp/dstack-sim-test-");
    sim = await startDstackSimulator({
      ...options,
      socketPath: join(dir, "dstack.sock"),
      logger: pino({ level: "silent" }),
    });
    use(sim);
  });
  after(async () => {
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  });
}
