// GET /attestation against the dstack simulator's real unix-socket API (v0 GetQuote and v1 Attest, as
// the compose pins), served by the health server: the quote's report data commits to the member's
// claims and the caller's nonce, the document verifies (simulated, where the simulator is allowed),
// and bad nonces, non-members and floods are refused.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { fixedCollateral } from "@attestmesh/shared/attestation/collateral.ts";
import {
  attestationReportData,
  type MemberClaims,
  parseAttestationFile,
} from "@attestmesh/shared/attestation/document.ts";
import { verifyEvidence } from "@attestmesh/shared/attestation/verify.ts";
import { createDstackEvidenceSource } from "@attestmesh/shared/service/dstack.ts";
import { Registry } from "prom-client";
import { bytesToHex, type Hex } from "viem";
import { loadNearMpcAttestation } from "../../test/fixtures/tdx/fixtures.ts";
import { createAttestationHandler } from "../src/attestation.ts";
import { type HealthServer, startHealthServer } from "../src/health.ts";
import { captureLogger, simulatedGuestAgent } from "./helpers.ts";

const claims: MemberClaims = {
  chainId: 31337,
  cluster: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
  memberId: "7",
  memberKey: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
  wireguardKey: bytesToHex(randomBytes(32)) as Hex,
  identityKey: bytesToHex(randomBytes(32)) as Hex,
};

function compose(guestApi: "v0" | "v1"): string {
  return JSON.stringify({
    manifest_version: 2,
    name: "attestation-test",
    runner: "docker-compose",
    docker_compose_file: `services: {}\nx-attestmesh:\n  guest_api: ${guestApi}\n`,
  });
}

for (const guestApi of ["v0", "v1"] as const) {
  describe(`GET /attestation on guest API ${guestApi}`, () => {
    let agent: Awaited<ReturnType<typeof simulatedGuestAgent>>;
    let health: HealthServer;
    let member: MemberClaims | undefined = claims;
    const appCompose = compose(guestApi);
    const log = captureLogger();

    before(async () => {
      agent = await simulatedGuestAgent(appCompose, "am-attest-");
      health = await startHealthServer({
        host: "127.0.0.1",
        port: 0,
        status: () => {
          throw new Error("not asked");
        },
        registry: new Registry(),
        logger: log.logger,
        attestation: createAttestationHandler({
          source: createDstackEvidenceSource(agent.socketPath, {}),
          claims: () => member,
          limit: 3,
          windowMs: 60_000,
          logger: log.logger,
        }),
      });
    });

    after(async () => {
      await health.close();
      await agent.close();
    });

    const get = (query: string) => fetch(`${health.url}/attestation${query}`);

    test("serves a fresh quote binding the claims and the nonce, with log and compose; it verifies", async () => {
      const nonce = randomBytes(32);
      const response = await get(`?nonce=0x${nonce.toString("hex")}`);
      assert.equal(response.status, 200);
      const file = parseAttestationFile(await response.json());
      assert.equal(file.document?.guestApi, guestApi);
      assert.equal(file.document?.simulated, true);
      assert.deepEqual(file.document?.claims, claims);
      assert.equal(file.evidence.appCompose, appCompose);
      const options = {
        at: Math.floor(Date.now() / 1000),
        collateral: fixedCollateral(loadNearMpcAttestation().collateral, "unused"),
        expectedReportData: attestationReportData(claims, nonce),
      };
      const report = await verifyEvidence(file.evidence, { ...options, allowSimulator: true });
      assert.equal(report.ok, true, JSON.stringify(report.checks, null, 2));
      assert.equal(report.kind, "simulated");
      // Another nonce (a replayed answer) does not bind.
      const replayed = await verifyEvidence(file.evidence, {
        ...options,
        allowSimulator: true,
        expectedReportData: attestationReportData(claims, randomBytes(32)),
      });
      assert.equal(replayed.checks.find((c) => !c.ok)?.reason, "ReportDataMismatch");
      const refused = await verifyEvidence(file.evidence, { ...options, allowSimulator: false });
      assert.equal(refused.checks.find((c) => !c.ok)?.reason, "SimulatorNotAllowed");
      assert.ok(log.lines().some((l) => l.msg === "served a SIMULATED attestation"));
    });

    test("a missing or malformed nonce is refused", async () => {
      for (const query of ["", "?nonce=", "?nonce=0x1234", `?nonce=0x${"zz".repeat(32)}`]) {
        assert.equal((await get(query)).status, 400, query);
      }
    });

    test("not a member yet: nothing to attest to", async () => {
      member = undefined;
      try {
        assert.equal((await get(`?nonce=0x${"11".repeat(32)}`)).status, 503);
      } finally {
        member = claims;
      }
    });

    test("rate-limited: a flood gets 429 with Retry-After", async () => {
      const statuses: number[] = [];
      let retryAfter: string | null = null;
      for (let i = 0; i < 4; i += 1) {
        const response = await get(`?nonce=0x${randomBytes(32).toString("hex")}`);
        statuses.push(response.status);
        if (response.status === 429) retryAfter = response.headers.get("retry-after");
        await response.arrayBuffer();
      }
      assert.ok(statuses.includes(429), statuses.join(","));
      assert.ok(Number(retryAfter) > 0);
    });
  });
}
