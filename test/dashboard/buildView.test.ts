// The dashboard's data layer on synthetic clusters: links from the members' own reports, drift against
// today's policy, the CSK timeline, the policy trail (same events and replay as `policy history`), spend.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { buildLinks, buildView, LINK_SEND_LIMIT } from "@attestmesh/scripts/dashboard/buildView.ts";
import { rebuildPolicy } from "@attestmesh/scripts/owner/policyHistory.ts";
import {
  accountOf,
  appIdOf,
  COMPOSE,
  deviceOf,
  KMS_ROOT,
  OLD_COMPOSE,
  OLD_KMS_ROOT,
  synthetic,
} from "../helpers/dashboardSynthetic.ts";

const link = (view: ReturnType<typeof buildView>, a: string, b: string) =>
  view.links.find((l) => l.a === a && l.b === b);

describe("dashboard view", () => {
  it("shows every member, and a handshaken link for every pair of healthy active members", () => {
    const s = synthetic({ members: 8 });
    const view = buildView(s.facts, s.health, s.nowMs);
    assert.equal(view.members.length, 8);
    assert.equal(view.linkSummary.pairs, 28);
    assert.equal(view.links.length, 28);
    assert.ok(view.links.every((l) => l.state === "handshaken"));
    // (i + j) % 3 === 0 goes through the gateway in the synthetic cluster.
    assert.equal(link(view, "1", "2")?.path, "gateway");
    assert.equal(link(view, "1", "3")?.path, "udp");
    assert.deepEqual(link(view, "1", "2")?.reportedBy, ["1", "2"]);
  });

  it("a pair takes the worst of its two reports: silent, then missing", () => {
    const s = synthetic({ members: 4, silent: [[1, 2]], missing: [[3, 4]] });
    const view = buildView(s.facts, s.health, s.nowMs);
    assert.equal(link(view, "1", "2")?.state, "silent");
    assert.equal(link(view, "3", "4")?.state, "missing");
    assert.equal(link(view, "3", "4")?.path, "udp", "the other side still reports its path");
    assert.deepEqual(
      { h: view.linkSummary.handshaken, s: view.linkSummary.silent, m: view.linkSummary.missing },
      { h: 4, s: 1, m: 1 },
    );
  });

  it("a handshake older than WireGuard's 180 s session counts as silent", () => {
    const s = synthetic({ members: 2 });
    const view = buildView(s.facts, s.health, s.nowMs + 200_000);
    assert.equal(link(view, "1", "2")?.state, "silent");
  });

  it("links of unreachable members rest on the other side's report; with no report they are unknown", () => {
    const one = synthetic({ members: 3, unreachable: [3] });
    const view = buildView(one.facts, one.health, one.nowMs);
    assert.deepEqual(link(view, "1", "3")?.reportedBy, ["1"]);
    const none = synthetic({ members: 2, unreachable: [1, 2] });
    const dark = buildView(none.facts, none.health, none.nowMs);
    assert.equal(dark.links.length, 0);
    assert.equal(dark.linkSummary.unknown, 1);
    assert.equal(dark.members[0]!.health?.reachable, false);
  });

  it("an evicted member is no node and no link, and its departure opened a CSK epoch", () => {
    const s = synthetic({ members: 5, evicted: [3] });
    const view = buildView(s.facts, s.health, s.nowMs);
    assert.equal(view.members.find((m) => m.memberId === "3")?.status, "evicted");
    assert.ok(view.links.every((l) => l.a !== "3" && l.b !== "3"));
    assert.equal(view.linkSummary.pairs, 6);
    assert.deepEqual(
      view.csk.epochs.map((e) => [e.epoch, e.causeMemberId, e.causeStatus, e.commits.map((c) => c.memberId)]),
      [
        ["0", null, null, ["1"]],
        ["1", "3", "evicted", ["1"]],
      ],
    );
    assert.equal(view.csk.current?.epoch, "1");
    assert.ok(view.csk.epochs[1]!.openedAt?.endsWith("Z"));
  });

  it("a new epoch nobody committed yet shows as such, not as a commitment of zeros", () => {
    const s = synthetic({ members: 3, evicted: [2] });
    const zero = `0x${"0".repeat(64)}`;
    const facts = { ...s.facts, currentCsk: { epoch: 1n, commitment: zero, committer: 0n } };
    const view = buildView(facts, s.health, s.nowMs);
    assert.deepEqual(view.csk.current, { epoch: "1", commitment: null, committer: null });
    assert.equal(
      view.csk.epochs[0]!.openedBlock !== null,
      true,
      "epoch 0 opened with the first registration",
    );
  });

  it("drift: a revoked app id and a withdrawn KMS root of active members, each with the CLI command", () => {
    const s = synthetic({ members: 4, revokedApps: [2], oldKmsRoot: [4] });
    const view = buildView(s.facts, s.health, s.nowMs);
    assert.deepEqual(
      view.policy.drift.map((d) => [d.kind, d.memberId, d.command]),
      [
        ["app-id-revoked", "2", "attestmesh evict 2"],
        ["kms-root-withdrawn", "4", "attestmesh evict 4"],
      ],
    );
    const four = view.members.find((m) => m.memberId === "4")!;
    assert.equal(four.kmsRoot, OLD_KMS_ROOT);
    assert.equal(four.kmsRootAllowed, false);
    assert.equal(view.members[0]!.kmsRoot, KMS_ROOT);
    assert.equal(view.members[0]!.kmsRootAllowed, true);
  });

  it("drift: an app id removed from the allowlist while its member stays active", () => {
    const s = synthetic({ members: 3 });
    const facts = {
      ...s.facts,
      policy: { ...s.facts.policy, appIds: s.facts.policy.appIds.filter((a) => a !== appIdOf(3)) },
    };
    const view = buildView(facts, s.health, s.nowMs);
    assert.deepEqual(
      view.policy.drift.map((d) => [d.kind, d.memberId]),
      [["app-id-withdrawn", "3"]],
    );
  });

  it("a card carries the member's recorded claims, each with whether the policy allows it now", () => {
    const s = synthetic({ members: 3, oldCompose: [2], revokedDevices: [3] });
    const view = buildView(s.facts, s.health, s.nowMs);
    const [one, two, three] = view.members;
    assert.equal(one!.composeHash, COMPOSE);
    assert.equal(one!.composeHashAllowed, true);
    assert.equal(one!.deviceId, deviceOf(1));
    assert.equal(one!.deviceAllowed, true, "any device is allowed in the synthetic policy");
    assert.equal(one!.standing, "good");
    assert.equal(two!.composeHash, OLD_COMPOSE);
    assert.equal(two!.composeHashAllowed, false);
    assert.equal(two!.standing, "compose-hash-not-allowed");
    assert.equal(three!.deviceAllowed, false, "a revoked device beats allow-any-device");
    assert.ok(three!.deviceRevokedAt?.endsWith("Z"));
    assert.equal(three!.standing, "device-revoked");
    assert.deepEqual(one!.attestation.state, "unchecked", "no check has run");
  });

  it("drift: members on a withdrawn compose, a revoked device, an old KMS root, each once with its command", () => {
    const s = synthetic({ members: 5, oldCompose: [2], revokedDevices: [3], oldKmsRoot: [4] });
    const view = buildView(s.facts, s.health, s.nowMs);
    assert.deepEqual(
      view.policy.drift.map((d) => [d.kind, d.memberId, d.command]),
      [
        ["compose-withdrawn", "2", "attestmesh evict 2"],
        ["device-revoked", "3", "attestmesh evict 3"],
        ["kms-root-withdrawn", "4", "attestmesh evict 4"],
      ],
    );
    assert.match(view.policy.drift[0]!.detail, new RegExp(OLD_COMPOSE));
  });

  it("drift: a device the chain holds only by fingerprint still shows, from the chain's standing", () => {
    const s = synthetic({ members: 2, revokedDevices: [2], fingerprintOnly: [2] });
    const view = buildView(s.facts, s.health, s.nowMs);
    const two = view.members[1]!;
    assert.equal(two.deviceId, null);
    assert.equal(two.deviceAllowed, false);
    assert.deepEqual(
      view.policy.drift.map((d) => [d.kind, d.memberId]),
      [["device-revoked", "2"]],
    );
    assert.match(view.policy.drift[0]!.detail, /device-revoked/);
  });

  it("a device withdrawn from a restricted allowlist is drift; an evicted member is never drift", () => {
    const s = synthetic({ members: 3, evicted: [3] });
    const facts = {
      ...s.facts,
      policy: { ...s.facts.policy, allowAnyDevice: false, deviceIds: [deviceOf(2), deviceOf(3)] },
    };
    const view = buildView(facts, s.health, s.nowMs);
    assert.deepEqual(
      view.policy.drift.map((d) => [d.kind, d.memberId]),
      [["device-not-allowed", "1"]],
    );
  });

  it("attestation checks reach the cards; indexers show what their own /healthz says, for the registered key only", () => {
    const s = synthetic({ members: 2 });
    const KEY = `0x${"11".repeat(32)}`;
    const OTHER = `0x${"22".repeat(32)}`;
    const facts = {
      ...s.facts,
      indexers: [
        { endpoint: "ws://10.0.0.9:8790/", signingKey: KEY, appId: appIdOf(90), codeId: COMPOSE },
        { endpoint: "wss://idx.example/", signingKey: OTHER, appId: appIdOf(91), codeId: COMPOSE },
        {
          endpoint: "ws://10.0.0.10:8790/",
          signingKey: `0x${"33".repeat(32)}`,
          appId: appIdOf(92),
          codeId: COMPOSE,
        },
      ],
    };
    const cluster = facts.cluster.toLowerCase();
    const row = { cluster, head: "42", lastSeq: "7", following: true };
    const verified = {
      state: "verified" as const,
      evidence: "SIMULATED" as const,
      detail: null,
      checkedAt: new Date(s.nowMs).toISOString(),
      lastVerifiedAt: new Date(s.nowMs).toISOString(),
    };
    const view = buildView(facts, s.health, s.nowMs, {
      attestation: new Map([["1", verified]]),
      indexerHealth: new Map([
        [KEY, { body: { signingKey: KEY, clusters: [row], subscribers: 3 }, checkedAtMs: s.nowMs }],
        // An impostor on the second endpoint: another key, so nothing it says is shown as the indexer's.
        [OTHER, { body: { signingKey: KEY, clusters: [row], subscribers: 9 }, checkedAtMs: s.nowMs }],
      ]),
      updates: "woken by indexer",
    });
    assert.deepEqual(view.members[0]!.attestation, verified);
    assert.equal(view.members[1]!.attestation.state, "unchecked");
    assert.deepEqual(
      view.indexers.map((i) => [i.reachable, i.keyMatches, i.following, i.head, i.lastSeq, i.subscribers]),
      [
        [true, true, true, "42", "7", 3],
        [true, false, null, null, null, null],
        [false, null, null, null, null, null],
      ],
    );
    assert.equal(view.sources.updates, "woken by indexer");
  });

  it("the policy trail is the policy events in chain order, and its replay is the CLI's rebuildPolicy", () => {
    const s = synthetic({ members: 3, revokedApps: [1] });
    const shuffled = { ...s.facts, logs: [...s.facts.logs].reverse() };
    const view = buildView(shuffled, s.health, s.nowMs);
    const names = view.policy.events.map((e) => e.name);
    assert.ok(!names.includes("MemberRegistered") && !names.includes("CskCommitted"));
    assert.deepEqual(
      view.policy.events.map((e) => Number(e.block)),
      [...view.policy.events.map((e) => Number(e.block))].sort((a, b) => a - b),
    );
    const replayed = rebuildPolicy(s.facts.logs);
    assert.deepEqual(
      view.policy.now.appIdRevocations.map((r) => r.appId),
      replayed.appIdRevocations.map((r) => r.appId),
    );
    assert.equal(typeof view.policy.events[0]!.args.kmsRoot, "string");
    assert.doesNotThrow(() => JSON.stringify(view), "the view is JSON (no bigint)");
  });

  it("spend: per member through the factory's account owners, per UTC day, total", () => {
    const s = synthetic({ members: 3 });
    const view = buildView(s.facts, s.health, s.nowMs);
    assert.ok(view.spend.available);
    if (!view.spend.available) return;
    assert.equal(view.spend.totalWei, (3n * (1n + 2n + 3n) * 10n ** 14n).toString());
    assert.deepEqual(view.spend.perMember[0], {
      memberId: "3",
      account: accountOf(3).toLowerCase(),
      wei: (3n * 3n * 10n ** 14n).toString(),
    });
    assert.equal(view.spend.perDay.length, 3);
    assert.equal(view.members[2]!.spendWei, (9n * 10n ** 14n).toString());
  });

  it("spend without a paymaster is not available, with the reason, and no member shows a figure", () => {
    const s = synthetic({ members: 2 });
    const view = buildView(
      { ...s.facts, spend: { available: false, reason: "no paymaster given" } },
      s.health,
      s.nowMs,
    );
    assert.deepEqual(view.spend, { available: false, reason: "no paymaster given" });
    assert.equal(view.members[0]!.spendWei, null);
  });

  it("with 1,000 members, healthy links are counted but only the problem links are sent", () => {
    const s = synthetic({ members: 1000, silent: [[10, 20]], missing: [[30, 40]] });
    const started = performance.now();
    const view = buildView(s.facts, s.health, s.nowMs);
    const ms = performance.now() - started;
    assert.equal(view.linkSummary.pairs, 499_500);
    assert.ok(view.linkSummary.pairs > LINK_SEND_LIMIT);
    assert.equal(view.linkSummary.handshakenIncluded, false);
    assert.deepEqual(
      view.links.map((l) => [l.a, l.b, l.state]),
      [
        ["10", "20", "silent"],
        ["30", "40", "missing"],
      ],
    );
    assert.ok(ms < 10_000, `built in ${ms.toFixed(0)} ms`);
  });

  it("buildLinks ignores reports about members that are not active", () => {
    const s = synthetic({ members: 3, evicted: [2] });
    const active = s.facts.members.filter((m) => m.status === "active");
    const bodies = new Map([...s.health.values()].map((p) => [p.body!.memberId!, p.body!]));
    const { links } = buildLinks(active, bodies, s.nowMs);
    assert.deepEqual(
      links.map((l) => [l.a, l.b]),
      [["1", "3"]],
    );
  });
});
