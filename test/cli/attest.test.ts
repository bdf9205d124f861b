// `attestmesh check <file>` and `attestmesh attest <file>`, in-process against a cluster on an in-process
// Hardhat network: a real TDX quote bundle judged against the current policy (revocation before any
// allowlist), and a member's saved attestation document whose quote must bind that member's on-chain keys.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { runtimeEvent } from "@attestmesh/devnet/dstack-sim/server.ts";
import { createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import {
  type AttestationDocument,
  attestationReportData,
  type MemberClaims,
} from "@attestmesh/shared/attestation/document.ts";
import { fileTempDir } from "@attestmesh/shared/testing/tempDir.ts";
import { sha256 } from "@noble/hashes/sha2";
import { bytesToHex, type Hex, hexToBytes, stringToBytes } from "viem";
import { loadNearMpcAttestation, NEAR_MPC_ATTESTATION_FILE } from "../fixtures/tdx/fixtures.ts";
import { cliCluster } from "../helpers/cli.ts";
import { admit, simulatedNode } from "../helpers/cluster.ts";

const tmp = fileTempDir("attestmesh-attest-");

interface Report {
  ok: boolean;
  evidence: string;
  runs: { composeHash: Hex; tcbStatus: string | null; deviceId: Hex | null; appId: Hex };
  onChain: { memberId: string } | null;
  binding: { bound: boolean } | null;
  checks: { name: string; ok: boolean; reason?: string }[];
}
const failed = (r: Report) => r.checks.filter((c) => !c.ok).map((c) => `${c.name}:${c.reason}`);

describe("attestmesh check <quote file> and attest <file>", async () => {
  const fx = await cliCluster();
  const { cli, owner, publicClient } = fx;
  const mine = async (hash: Promise<Hex>) => publicClient.waitForTransactionReceipt({ hash: await hash });
  const fixture = loadNearMpcAttestation();

  it("check <bundle>: the real quote verifies; the policy decides, revocation first", async () => {
    const run = await cli(["check", NEAR_MPC_ATTESTATION_FILE, "--json"]);
    assert.equal(run.code, 2, run.stderr);
    let report = run.json<Report>();
    assert.equal(report.evidence, "tdx");
    assert.equal(report.runs.tcbStatus, "UpToDate");
    assert.deepEqual(failed(report).sort(), [
      "app-id:AppIdNotAllowed",
      "compose-policy:ComposeHashNotAllowed",
      "device-policy:DeviceNotAllowed",
    ]);
    await mine(owner.write.addAppId([report.runs.appId]));
    await mine(owner.write.addComposeHash([report.runs.composeHash]));
    await mine(owner.write.addDevice([report.runs.deviceId!]));
    const allowed = await cli(["check", NEAR_MPC_ATTESTATION_FILE, "--json"]);
    assert.equal(allowed.code, 0, allowed.stdout);
    const text = await cli(["check", NEAR_MPC_ATTESTATION_FILE]);
    assert.match(text.stdout, /attestation: VERIFIED/);
    assert.match(text.stdout, /pass {2}rtmr-replay/);
    // Revoked beats allowlisted.
    await mine(
      owner.write.revokeDevice([report.runs.deviceId!, bytesToHex(stringToBytes("stolen", { size: 32 }))]),
    );
    const revoked = await cli(["check", NEAR_MPC_ATTESTATION_FILE, "--json"]);
    assert.equal(revoked.code, 2);
    report = revoked.json<Report>();
    assert.equal(failed(report)[0], "revocation:DeviceRevoked", "revocation is judged first");
  });

  it("check <bundle> at today's time: the collateral is stale and the quote refused", async () => {
    const run = await cli(["check", NEAR_MPC_ATTESTATION_FILE, "--at", new Date().toISOString(), "--json"]);
    assert.equal(run.code, 2);
    assert.ok(failed(run.json<Report>()).includes("collateral:CollateralOutsideWindow"));
  });

  it("check <bundle> with one flipped quote byte is refused", async () => {
    const quote = [...fixture.quote];
    quote[600] = (quote[600]! ^ 1) as number;
    const file = join(tmp, "flipped.json");
    writeFileSync(file, JSON.stringify({ ...fixture, quote }));
    const run = await cli(["check", file, "--json"]);
    assert.equal(run.code, 2);
    assert.ok(failed(run.json<Report>()).includes("quote:QuoteSignatureInvalid"));
  });

  it("attest <document>: a member's simulated attestation binds its on-chain keys and is labelled", async () => {
    const node = simulatedNode(fx.kmsRoot);
    const memberId = await admit(fx, node);
    const appCompose = '{"manifest_version":2,"name":"attest-test"}';
    const composeHash = sha256(stringToBytes(appCompose));
    await mine(owner.write.addComposeHash([bytesToHex(composeHash)]));
    const cvm = createSimulatedCvm({
      kmsRoot: fx.kmsRoot,
      appId: hexToBytes(node.appId),
      composeHash,
      appCompose,
    });
    const claims: MemberClaims = {
      chainId: fx.chainId,
      cluster: fx.deployed.diamond,
      memberId: memberId.toString(),
      memberKey: node.memberAccount.address,
      wireguardKey: node.wireguardKey,
      identityKey: node.identityKey,
    };
    const nonce = new Uint8Array(randomBytes(32));
    const document = (reportClaims: MemberClaims): AttestationDocument => ({
      version: 1,
      claims,
      nonce: bytesToHex(nonce),
      guestApi: "v0",
      simulated: true,
      quote: bytesToHex(cvm.getQuote(attestationReportData(reportClaims, nonce))),
      eventLog: [
        runtimeEvent("app-id", hexToBytes(node.appId)),
        runtimeEvent("compose-hash", composeHash),
        runtimeEvent("instance-id", new Uint8Array(0)),
      ],
      appCompose,
    });
    const good = join(tmp, "member.json");
    writeFileSync(good, JSON.stringify(document(claims)));
    const run = await cli(["attest", good, "--json"]);
    const report = run.json<Report>();
    assert.equal(run.code, 0, JSON.stringify(failed(report)));
    assert.equal(report.evidence, "SIMULATED");
    assert.equal(report.onChain?.memberId, memberId.toString());
    assert.equal(report.binding?.bound, true);
    const text = await cli(["attest", good]);
    assert.match(text.stdout, /SIMULATED evidence/);
    assert.match(text.stdout, /binding: the quote binds these keys/);

    // A node serving a quote bound to other keys (say, an impostor's WireGuard key) is refused.
    const other = join(tmp, "other-keys.json");
    writeFileSync(other, JSON.stringify(document({ ...claims, wireguardKey: bytesToHex(randomBytes(32)) })));
    const refused = await cli(["attest", other, "--json"]);
    assert.equal(refused.code, 2);
    assert.deepEqual(failed(refused.json<Report>()), ["report-data:ReportDataMismatch"]);
    assert.equal(refused.json<Report>().binding?.bound, false);

    // The compose hash withdrawn: the same evidence no longer passes.
    await mine(owner.write.removeComposeHash([bytesToHex(composeHash)]));
    const withdrawn = await cli(["attest", good, "--json"]);
    assert.equal(withdrawn.code, 2);
    assert.deepEqual(failed(withdrawn.json<Report>()), ["compose-policy:ComposeHashNotAllowed"]);
  });

  it("attest <quote bundle>: the real quote, judged like check, claiming no member", async () => {
    const run = await cli(["attest", NEAR_MPC_ATTESTATION_FILE, "--json"]);
    const report = run.json<Report>();
    assert.equal(report.onChain, null);
    assert.equal(report.binding, null);
    assert.equal(report.runs.tcbStatus, "UpToDate");
    assert.ok(report.checks.some((c) => c.name === "rtmr-replay" && c.ok));
    assert.ok(report.checks.some((c) => c.name === "compose-hash" && c.ok));
    // The device was revoked by the first test: revocation decides.
    assert.equal(run.code, 2);
    assert.equal(failed(report)[0], "revocation:DeviceRevoked");
    assert.match(run.stderr, /bare quote/);
  });
});
