// The certificate cache: a verified certificate is checked once and then answered from memory (no RPC
// call, no signature check); a refused one is fetched again only after its backoff, and logged at most
// once a minute; a record whose keys changed is another certificate.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import type { MemberCertificate } from "@attestmesh/shared/certs/certificate.ts";
import { Registry } from "prom-client";
import { type Address, bytesToHex, getAddress } from "viem";
import { offlineCertificate } from "../../../test/helpers/certs.ts";
import { createMemberCertifier } from "../../src/certs/certifier.ts";
import type { RegistrationLocation } from "../../src/chain/follower.ts";
import type { Member } from "../../src/model/member.ts";
import { captureLogger } from "../helpers.ts";

const _randomAddress = (): Address => getAddress(bytesToHex(randomBytes(20)));

describe("member certifier", async () => {
  const { pinned, appId, certificate, memberKey } = await offlineCertificate({ chainId: 31337 });
  const member: Member = {
    memberId: 4n,
    appId,
    memberKey,
    wireguardKey: certificate.wireguardKey,
    identityKey: certificate.identityKey,
    meshIp: 0x0a4d0004,
    status: "active",
    registeredAt: 1,
  };

  function certifier(source: (m: Member) => Promise<MemberCertificate>, clock = { now: 0 }) {
    const log = captureLogger();
    const registry = new Registry();
    let calls = 0;
    const hints: (RegistrationLocation | undefined)[] = [];
    const c = createMemberCertifier({
      pinned,
      source: async (m, hint) => {
        calls += 1;
        hints.push(hint);
        return source(m);
      },
      logger: log.logger,
      registry,
      retryMs: 1000,
      maxRetryMs: 4000,
      logEveryMs: 60_000,
      now: () => clock.now,
    });
    return { c, log, registry, calls: () => calls, hints, clock };
  }

  test("verifies once, then answers from the cache with no source (RPC) call", async () => {
    const t = certifier(async () => certificate);
    assert.equal(t.c.cached(member), undefined);
    assert.equal((await t.c.certify(member)).ok, true);
    for (let i = 0; i < 100; i++) assert.equal((await t.c.certify(member)).ok, true);
    assert.ok(t.c.cached(member));
    assert.equal(t.calls(), 1);
    assert.match(await t.registry.metrics(), /attestmesh_member_certificates_total\{result="verified"\} 1/);
  });

  test("a record with other keys is another certificate, checked (and refused) on its own", async () => {
    const t = certifier(async () => certificate);
    await t.c.certify(member);
    const swapped = { ...member, wireguardKey: bytesToHex(randomBytes(32)) };
    const result = await t.c.certify(swapped);
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.reason, "WireguardKeyMismatch");
    assert.equal(t.c.cached(swapped), undefined);
    assert.equal(t.calls(), 2);
  });

  test("a refusal is retried only after its backoff (doubling), logged once a minute, counted by reason", async () => {
    const forged = { ...certificate, signature: bytesToHex(randomBytes(65)) };
    const t = certifier(async () => forged);
    const first = await t.c.certify(member);
    assert.equal(!first.ok && first.reason, "RegistrationSignatureMismatch");
    for (let i = 0; i < 50; i++) await t.c.certify(member);
    assert.equal(t.calls(), 1, "no new fetch inside the backoff");
    t.clock.now = 1000;
    await t.c.certify(member);
    assert.equal(t.calls(), 2);
    t.clock.now = 2999;
    await t.c.certify(member);
    assert.equal(t.calls(), 2, "the backoff doubled to 2 s");
    t.clock.now = 3000;
    await t.c.certify(member);
    assert.equal(t.calls(), 3);
    assert.equal(t.log.lines().filter((l) => l.msg.startsWith("member not verified")).length, 1);
    assert.equal(t.c.unverified(), 1);
    const text = await t.registry.metrics();
    assert.match(text, /attestmesh_member_certificates_total\{result="RegistrationSignatureMismatch"\} 3/);
    assert.match(text, /attestmesh_unverified_members 1/);
  });

  test("a source that fails (the RPC is down or lies) is CertificateUnavailable; nothing is cached as verified", async () => {
    const t = certifier(async () => {
      throw new Error("connect ECONNREFUSED");
    });
    const result = await t.c.certify(member);
    assert.equal(!result.ok && result.reason, "CertificateUnavailable");
    assert.equal(t.c.cached(member), undefined);
  });

  test("a registration hint reaches the source; the cache is keyed by the record, not the hint", async () => {
    const t = certifier(async () => certificate);
    const hint: RegistrationLocation = { blockNumber: 7n, transactionHash: `0x${"aa".repeat(32)}` };
    assert.equal((await t.c.certify(member, hint)).ok, true);
    assert.deepEqual(t.hints, [hint]);
    const other: RegistrationLocation = { blockNumber: 8n, transactionHash: `0x${"bb".repeat(32)}` };
    assert.equal((await t.c.certify(member, other)).ok, true);
    assert.equal((await t.c.certify(member)).ok, true);
    assert.equal(t.calls(), 1, "answered from the cache whatever the hint");
  });

  test("concurrent asks share one check", async () => {
    const t = certifier(async () => certificate);
    await Promise.all(Array.from({ length: 20 }, () => t.c.certify(member)));
    assert.equal(t.calls(), 1);
  });
});
