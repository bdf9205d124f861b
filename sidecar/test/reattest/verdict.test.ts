// Judging a peer's live attestation: real documents from GET /attestation (the handler over the dstack
// simulator's unix-socket API) and the real TDX fixture. Each attacker case fails with its named
// reason: a quote bound to another member's keys, a replayed answer to an old nonce (as it is, and with
// its nonce field rewritten), a compose hash the owner withdrew, a revoked device, a compose other than
// the one the peer registered with, simulator evidence in a cluster that does not allow the simulator,
// and a genuine TDX quote that binds nothing of ours.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { fixedCollateral } from "@attestmesh/shared/attestation/collateral.ts";
import { createDstackEvidenceSource } from "@attestmesh/shared/service/dstack.ts";
import { sha256 } from "@noble/hashes/sha2";
import { bytesToHex } from "viem";
import { loadNearMpcAttestation } from "../../../test/fixtures/tdx/fixtures.ts";
import { createAttestationHandler } from "../../src/attestation.ts";
import type { Member } from "../../src/model/member.ts";
import {
  claimsOf,
  judgeAttestation,
  judgePolicy,
  type PeerPolicy,
  type Verdict,
} from "../../src/reattest/verdict.ts";
import { captureLogger, simulatedGuestAgent, testMember } from "../helpers.ts";

const CHAIN_ID = 31337;
const CLUSTER = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const APP_COMPOSE = JSON.stringify({
  manifest_version: 2,
  name: "reattest-test",
  runner: "docker-compose",
  docker_compose_file: "services: {}\nx-attestmesh:\n  guest_api: v0\n",
});
const COMPOSE_HASH = bytesToHex(sha256(new TextEncoder().encode(APP_COMPOSE))).slice(2);
const DEVICE = "d1".repeat(32);

const member = (id: bigint) => testMember(id, { meshIp: 0x0a4d0007 });

const goodPolicy: PeerPolicy = {
  allowSimulator: true,
  requireTcbUpToDate: false,
  allowAnyDevice: true,
  composeHashes: new Set([COMPOSE_HASH]),
  deviceIds: new Set(),
  standing: "good",
  statedComposeHash: COMPOSE_HASH,
  statedDeviceId: DEVICE,
};

const reasonOf = (v: Verdict) => (v.ok ? "ok" : v.reason);

/** The near-mpc fixture's genuine TDX evidence, presented as `peer`'s answer to `nonce`. */
function tdxDocument(peer: Member, fixture: ReturnType<typeof loadNearMpcAttestation>, nonce: Uint8Array) {
  return {
    version: 1,
    claims: claimsOf(peer, CHAIN_ID, CLUSTER),
    nonce: `0x${Buffer.from(nonce).toString("hex")}`,
    guestApi: "v0",
    simulated: false,
    quote: `0x${Buffer.from(fixture.quote).toString("hex")}`,
    eventLog: fixture.tcb_info.event_log,
    appCompose: fixture.tcb_info.app_compose,
  };
}

describe("judging a peer's live attestation", () => {
  let agent: Awaited<ReturnType<typeof simulatedGuestAgent>>;
  const peer = member(7n);
  /** Whose keys the peer's GET /attestation binds (the peer's own, unless a test plays an attacker). */
  let served: Member = peer;
  let handler: ReturnType<typeof createAttestationHandler>;
  const collateral = fixedCollateral(loadNearMpcAttestation().collateral, "fixture");

  before(async () => {
    agent = await simulatedGuestAgent(APP_COMPOSE, "am-reattest-");
    handler = createAttestationHandler({
      source: createDstackEvidenceSource(agent.socketPath, {}),
      claims: () => claimsOf(served, CHAIN_ID, CLUSTER),
      limit: 100,
      windowMs: 60_000,
      logger: captureLogger("silent").logger,
    });
  });

  after(async () => {
    await agent.close();
  });

  async function fetchDocument(nonce: Uint8Array): Promise<Record<string, unknown>> {
    const answer = await handler(
      new URL(`http://x/attestation?nonce=0x${Buffer.from(nonce).toString("hex")}`),
    );
    assert.equal(answer.status, 200, answer.body);
    return JSON.parse(answer.body) as Record<string, unknown>;
  }

  const judge = (document: unknown, nonce: Uint8Array, policy: PeerPolicy = goodPolicy, who = peer) =>
    judgeAttestation({
      member: who,
      chainId: CHAIN_ID,
      cluster: CLUSTER,
      nonce,
      document,
      policy,
      collateral,
      at: Math.floor(Date.now() / 1000),
    });

  test("an honest peer's fresh SIMULATED attestation passes where the simulator is allowed", async () => {
    const nonce = randomBytes(32);
    const { verdict, verified } = await judge(await fetchDocument(nonce), nonce);
    assert.equal(verdict.ok, true, JSON.stringify(verdict));
    assert.equal(verdict.kind, "simulated");
    assert.equal(verdict.composeHash, COMPOSE_HASH);
    assert.match(verdict.ok ? verdict.detail : "", /SIMULATED/);
    assert.deepEqual(verified, { kind: "simulated", composeHash: COMPOSE_HASH });
  });

  test("attacker: a quote bound to another member's keys is refused", async () => {
    served = member(7n); // same id, other keys: what a node holding someone else's quote would serve
    try {
      const nonce = randomBytes(32);
      const { verdict } = await judge(await fetchDocument(nonce), nonce);
      assert.equal(reasonOf(verdict), "ReportDataMismatch");
      assert.equal(verdict.ok ? undefined : verdict.cause, "evidence");
      assert.match(verdict.ok ? "" : verdict.detail, /not bound to its on-chain keys/);
    } finally {
      served = peer;
    }
    // The document's own claims are never trusted: another member's claims with its keys are refused too.
    const other = member(8n);
    served = other;
    try {
      const nonce = randomBytes(32);
      const { verdict } = await judge(await fetchDocument(nonce), nonce);
      assert.equal(reasonOf(verdict), "ReportDataMismatch");
    } finally {
      served = peer;
    }
  });

  test("attacker: a replayed answer to an old nonce is refused, with or without its nonce rewritten", async () => {
    const old = randomBytes(32);
    const document = await fetchDocument(old);
    const fresh = randomBytes(32);
    assert.equal(reasonOf((await judge(document, fresh)).verdict), "NonceMismatch");
    const rewritten = { ...document, nonce: `0x${fresh.toString("hex")}` };
    assert.equal(reasonOf((await judge(rewritten, fresh)).verdict), "ReportDataMismatch");
  });

  test("attacker: SIMULATED evidence where the cluster does not allow the simulator is refused", async () => {
    const nonce = randomBytes(32);
    const { verdict, verified } = await judge(await fetchDocument(nonce), nonce, {
      ...goodPolicy,
      allowSimulator: false,
    });
    assert.equal(reasonOf(verdict), "SimulatorNotAllowed");
    assert.equal(verified, undefined);
  });

  test("a compose hash the owner withdrew is refused by the policy", async () => {
    const nonce = randomBytes(32);
    const { verdict } = await judge(await fetchDocument(nonce), nonce, {
      ...goodPolicy,
      composeHashes: new Set(),
      standing: "compose-hash-not-allowed",
    });
    assert.equal(reasonOf(verdict), "ComposeHashNotAllowed");
    assert.equal(verdict.ok ? undefined : verdict.cause, "policy");
  });

  test("a device the owner revoked is refused (standing, and the device a TDX quote names)", async () => {
    const nonce = randomBytes(32);
    const { verdict } = await judge(await fetchDocument(nonce), nonce, {
      ...goodPolicy,
      standing: "device-revoked",
    });
    assert.equal(reasonOf(verdict), "DeviceRevoked");
    const tdx = { kind: "tdx" as const, composeHash: COMPOSE_HASH, deviceId: DEVICE, tcbStatus: "UpToDate" };
    assert.equal(reasonOf(judgePolicy(tdx, { ...goodPolicy, evidenceDeviceRevoked: true })), "DeviceRevoked");
    assert.equal(
      reasonOf(judgePolicy(tdx, { ...goodPolicy, allowAnyDevice: false, evidenceDeviceRevoked: false })),
      "DeviceNotAllowed",
    );
    assert.equal(
      reasonOf(
        judgePolicy(tdx, {
          ...goodPolicy,
          allowAnyDevice: false,
          deviceIds: new Set([DEVICE]),
          evidenceDeviceRevoked: false,
        }),
      ),
      "ok",
    );
  });

  test("a peer running another compose than the one it registered with is refused", async () => {
    const nonce = randomBytes(32);
    const otherHash = "ee".repeat(32);
    const { verdict } = await judge(await fetchDocument(nonce), nonce, {
      ...goodPolicy,
      composeHashes: new Set([COMPOSE_HASH, otherHash]),
      statedComposeHash: otherHash,
    });
    assert.equal(reasonOf(verdict), "ComposeHashNotStated");
  });

  test("attacker: a genuine TDX quote that binds nothing of ours is refused", async () => {
    const fixture = loadNearMpcAttestation();
    const nonce = randomBytes(32);
    const document = tdxDocument(peer, fixture, nonce);
    const { verdict } = await judgeAttestation({
      member: peer,
      chainId: CHAIN_ID,
      cluster: CLUSTER,
      nonce,
      document,
      policy: { ...goodPolicy, allowSimulator: false },
      collateral,
      at: fixture.verifyAt,
    });
    assert.equal(reasonOf(verdict), "ReportDataMismatch");
    assert.equal(verdict.kind, "tdx");
  });

  test("not an attestation document: refused by name", async () => {
    const nonce = randomBytes(32);
    assert.equal(reasonOf((await judge({ hello: 1 }, nonce)).verdict), "DocumentInvalid");
  });

  test("no collateral is our problem, not the peer's: judging throws a retryable error", async () => {
    const fixture = loadNearMpcAttestation();
    const nonce = randomBytes(32);
    await assert.rejects(
      judgeAttestation({
        member: peer,
        chainId: CHAIN_ID,
        cluster: CLUSTER,
        nonce,
        document: tdxDocument(peer, fixture, nonce),
        policy: goodPolicy,
        collateral: {
          describe: "PCCS down",
          get: async () => {
            const { AttestmeshError } = await import("@attestmesh/shared/errors.ts");
            throw new AttestmeshError("PCCS down", { code: "CollateralUnavailable", retryable: true });
          },
        },
        at: fixture.verifyAt,
      }),
      /CollateralUnavailable|no collateral/,
    );
  });
});
