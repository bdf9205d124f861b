// End to end: `attestmesh attest` against running devnet members. Each sidecar serves a fresh,
// SIMULATED attestation at GET /attestation on its health port whose report data binds the member's
// on-chain keys and the CLI's nonce; the devnet cluster allows the simulator's KMS root, so the report
// passes and says SIMULATED (by member id, app id, URL, and the document saved). The real TDX fixture
// judged against the devnet's cluster verifies as evidence and is refused by its policy. The indexer's (simulated) quote is verified by every node on its hello.
// Peers re-attest each other over the mesh (the same devnet, last): every node attests every peer; a
// node added on a device of its own has that device revoked by the owner, and every other node cuts it
// off (WireGuard peer set, attestation verdict) and rotates the CSK without it before any eviction,
// while the revoked node is sampled throughout and never holds the new epoch's key; the same for a
// withdrawn compose hash. Last, a node whose sidecar serves quotes bound to other keys (its guest agent
// asked for quotes over other report data) is refused by every peer while still a member, then evicted,
// and never holds any CSK — neither the next epoch's nor the one current while it was peered and not
// judged yet (peers serve a key only on a passing verdict): sampled throughout, from before it registered.
// Needs root and /dev/net/tun, like every devnet test.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import {
  devnetClients,
  evictApp,
  revokeDevice,
  setComposeHashAllowed,
} from "@attestmesh/devnet/orchestration/chain.ts";
import { type DevnetNode, readState } from "@attestmesh/devnet/orchestration/state.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { testTempDir } from "@attestmesh/shared/testing/tempDir.ts";
import type { Hex } from "viem";
import { NEAR_MPC_ATTESTATION_FILE } from "../fixtures/tdx/fixtures.ts";
import { CLI, cli, devnetSkip, eventually, latestHandshakes, ROOT } from "./helpers/devnet.ts";

/**
 * Peers re-attest each other every this many seconds on this file's devnet (the devnet's default is
 * 60 s, production's 600 s), so a re-check of every peer is seen within seconds.
 */
const REATTEST_PERIOD_S = 10;
/** The environment every command that starts nodes runs with. */
const DEVNET_ENV = { ...process.env, ATTESTMESH_DEVNET_REATTEST_INTERVAL_S: String(REATTEST_PERIOD_S) };
/** A real sidecar whose guest agent is asked for every quote over other report data than its keys give. */
const OTHER_KEYS_ENTRY = join(ROOT, "test/e2e/fixtures/other-keys-sidecar.ts");

interface Attested {
  memberId: string;
  status: string;
  kind: string | null;
  reason: string | null;
  verifiedAt: string | null;
  verifications: number;
}
interface Health {
  phase: string;
  memberId: string | null;
  wireguardPublicKey: string | null;
  cskEpoch: string | null;
  cskAcquired: boolean;
  cskCommitment: string | null;
  livePeers: number;
  peers: { memberId: string }[];
  peerAttestations: Attested[];
}

async function health(node: DevnetNode): Promise<Health> {
  const res = await fetch(node.healthUrl, { signal: AbortSignal.timeout(3000) });
  return (await res.json()) as Health;
}

interface NodeEntry {
  name: string;
  healthUrl: string;
  appId: string;
  memberId: string | null;
  phase: string;
}

interface Report {
  ok: boolean;
  evidence: string;
  onChain: { memberId: string } | null;
  binding: { bound: boolean } | null;
  checks: { name: string; ok: boolean; reason?: string }[];
}

/** Runs the CLI and returns exit code and stdout, whatever the code. */
async function attest(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { cwd: ROOT });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

describe("attestmesh attest against devnet members", { skip: devnetSkip }, () => {
  let nodes: NodeEntry[] = [];

  before(async () => {
    const status = JSON.parse(
      await cli(["devnet", "up", "--detach", "--json", "--nodes", "2", "--funded-keys"], { env: DEVNET_ENV }),
    ) as { nodes: NodeEntry[] };
    nodes = status.nodes;
  });

  after(async () => {
    await cli(["devnet", "down"]).catch(() => {});
  });

  it("every member's live attestation verifies, binds its on-chain keys, and says SIMULATED", async (t) => {
    assert.equal(nodes.length, 2);
    for (const node of nodes) {
      assert.equal(node.phase, "healthy", `${node.name} is ${node.phase}`);
      for (const target of [node.memberId!, node.appId]) {
        const run = await attest(["attest", target, "--network", "devnet", "--json"]);
        const report = JSON.parse(run.stdout) as Report;
        const failed = report.checks.filter((c) => !c.ok);
        assert.equal(run.code, 0, `${node.name} ${target}: ${JSON.stringify(failed)} ${run.stderr}`);
        assert.equal(report.evidence, "SIMULATED");
        assert.equal(report.onChain?.memberId, node.memberId);
        assert.equal(report.binding?.bound, true);
      }
    }
    const text = await attest(["attest", nodes[0]!.memberId!, "--network", "devnet"]);
    assert.match(text.stdout, /VERIFIED \(SIMULATED evidence/);

    // By URL (its health port's /attestation), saved; the saved document verifies too, for its own nonce.
    const node = nodes[1]!;
    const saved = join(testTempDir(t, "attestmesh-e2e-attest-"), "member.json");
    const url = node.healthUrl.replace(/\/healthz$/, "/attestation");
    for (const args of [[url, "--save", saved], [saved]]) {
      const run = await attest(["attest", ...args, "--network", "devnet", "--json"]);
      const report = JSON.parse(run.stdout) as Report;
      assert.equal(run.code, 0, `${args[0]}: ${JSON.stringify(report.checks.filter((c) => !c.ok))}`);
      assert.equal(report.onChain?.memberId, node.memberId);
      assert.equal(report.binding?.bound, true);
    }
    assert.match(
      (await attest(["attest", saved, "--network", "devnet"])).stderr,
      /a saved attestation, made for nonce 0x[0-9a-f]{64}; freshness is not proven/,
    );
  });

  it("attest <the real TDX fixture> against the devnet: the evidence verifies, the devnet's policy does not admit it", async () => {
    const run = await attest(["attest", NEAR_MPC_ATTESTATION_FILE, "--network", "devnet", "--json"]);
    const report = JSON.parse(run.stdout) as Report & { runs: { tcbStatus: string | null } };
    assert.equal(report.evidence, "tdx", "real evidence, not SIMULATED");
    assert.equal(report.runs.tcbStatus, "UpToDate");
    assert.equal(report.onChain, null, "a bare quote claims no member");
    const failed = report.checks.filter((c) => !c.ok).map((c) => `${c.name}:${c.reason}`);
    for (const name of ["quote", "collateral", "tcb", "rtmr-replay", "compose-hash"]) {
      assert.ok(
        report.checks.some((c) => c.name === name && c.ok),
        `${name} passes: ${failed.join(", ")}`,
      );
    }
    assert.equal(run.code, 2);
    assert.ok(failed.includes("compose-policy:ComposeHashNotAllowed"), failed.join(", "));
    assert.ok(failed.includes("app-id:AppIdNotAllowed"), failed.join(", "));
    assert.match(run.stderr, /bare quote/);
  });

  it("the indexer's simulated quote was verified by every node", async () => {
    const state = await readState();
    assert.ok(state?.indexer !== undefined, "the devnet runs an indexer");
    for (const node of state!.nodes) {
      const log = await readFile(join(node.logDir, "sidecar.log"), "utf8");
      assert.match(
        log,
        /indexer subscription verified[^\n]*SIMULATED|SIMULATED[^\n]*indexer subscription verified/,
      );
    }
  });
  /** Nodes an earlier case cut off: still members on chain, refused by every peer, left out of the checks. */
  const cutOff = new Set<string>();
  const members = (nodes: readonly DevnetNode[]) => nodes.filter((n) => !cutOff.has(n.name));
  const passed = (h: Health, id: string) =>
    h.peerAttestations.some((a) => a.memberId === id && a.status === "passed" && a.kind === "simulated");
  /** Every member not cut off has attested every other one (a passing, SIMULATED verdict). */
  const everyPeerAttested = async (nodes: readonly DevnetNode[]) => {
    const reports = await Promise.all(members(nodes).map(health));
    const ids = reports.map((h) => h.memberId!);
    return reports.every((h) => ids.every((id) => id === h.memberId || passed(h, id)));
  };

  it("every node re-attests every peer: a fresh quote of each, judged again within the period, passing", async () => {
    const state = (await readState())!;
    await eventually("every node to have attested every peer", () => everyPeerAttested(state.nodes), 90_000);
    const since = Date.now();
    const before = await Promise.all(state.nodes.map(health));
    const rechecked = await eventually(
      `every node to have re-attested every peer after ${new Date(since).toISOString()}`,
      async () => {
        const reports = await Promise.all(state.nodes.map(health));
        const pairs = reports.flatMap((h, i) =>
          reports
            .filter((p) => p.memberId !== h.memberId)
            .map((p) => {
              const a = h.peerAttestations.find((x) => x.memberId === p.memberId);
              const earlier = before[i]!.peerAttestations.find((x) => x.memberId === p.memberId);
              return { a, earlier };
            }),
        );
        const fresh = pairs.every(
          ({ a, earlier }) =>
            a?.status === "passed" &&
            a.kind === "simulated" &&
            a.verifiedAt !== null &&
            Date.parse(a.verifiedAt) > since &&
            a.verifications > (earlier?.verifications ?? 0),
        );
        return fresh ? Date.now() - since : false;
      },
      (3 * REATTEST_PERIOD_S + 15) * 1000,
    );
    process.stdout.write(`# every node re-attested every peer within ${rechecked} ms\n`);
  });

  /**
   * A node joins on a device or a compose of its own; every peer attests it; the owner revokes that
   * device or withdraws that compose hash. Every other node cuts it off and holds the next epoch while
   * it is still active on chain, and its own report, sampled throughout, never shows the new epoch.
   */
  async function cutOffAndRotate(trigger: "revoke" | "withdraw", reason: string): Promise<number> {
    let state = (await readState())!;
    await eventually(
      "every node to have re-attested every peer",
      () => everyPeerAttested(state.nodes),
      90_000,
    );

    // A device, or a compose, of its own, so taking it away touches no other member.
    const deviceId = `0x${randomBytes(32).toString("hex")}` as Hex;
    const own = trigger === "revoke" ? ["--device-id", deviceId] : ["--compose-variant", "attest-e2e"];
    await cli(["devnet", "add-node", "--json", "--timeout", "180", ...own], { env: DEVNET_ENV });
    state = (await readState())!;
    const target = state.nodes.at(-1)!;
    const others = members(state.nodes.slice(0, -1));
    await eventually(
      "every node to have re-attested the new one, and it them",
      () => everyPeerAttested(state.nodes),
      90_000,
    );
    const targetId = BigInt((await health(target)).memberId!);
    const clients = devnetClients(state.rpcUrl, state.chainId);
    const { client } = clients;
    const currentEpoch = async () =>
      (await client.readContract({ address: state.diamond, abi: clusterAbi, functionName: "currentCsk" }))[0];
    const epoch = await currentEpoch();
    await eventually(
      `every node to hold epoch ${epoch}`,
      async () =>
        (await Promise.all(members(state.nodes).map(health))).every(
          (h) => h.cskEpoch === epoch.toString() && h.cskAcquired,
        ),
      120_000,
    );

    // The attack: the node cut off tries to keep (or get) the next key. Sample its own report throughout.
    const next = epoch + 1n;
    const samples: Health[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push(await health(target).catch(() => ({ cskEpoch: null }) as Health));
        await sleep(50);
      }
    })();
    const began = Date.now();
    if (trigger === "revoke") await revokeDevice(clients, state.diamond, deviceId);
    else await setComposeHashAllowed(clients, state.diamond, target.composeHash!, false);
    assert.equal(
      await currentEpoch(),
      next,
      `the ${trigger === "revoke" ? "revocation" : "withdrawal"} opened the next epoch`,
    );
    const cutMs = await eventually(
      "every other node to cut the node off (no WireGuard peer, attestation refused)",
      async () => {
        const reports = await Promise.all(others.map(health));
        const cut = reports.every(
          (h) =>
            !h.peers.some((p) => p.memberId === targetId.toString()) &&
            h.peerAttestations.some((a) => a.memberId === targetId.toString() && a.status === "failed"),
        );
        return cut ? Date.now() - began : false;
      },
      60_000,
      50,
    );
    await eventually(
      `every other node to hold epoch ${next}`,
      async () =>
        (await Promise.all(others.map(health))).every((h) => h.cskEpoch === next.toString() && h.cskAcquired),
      120_000,
    );
    const record = await client.readContract({
      address: state.diamond,
      abi: clusterAbi,
      functionName: "member",
      args: [targetId],
    });
    assert.equal(
      record.status,
      1,
      "rotated before any eviction: the member cut off is still active on chain",
    );
    await sleep(3000);
    sampling = false;
    await sampler;
    cutOff.add(target.name);
    assert.ok(samples.length > 20, `sampled ${samples.length} times`);
    const leaked = samples.filter((h) => h.cskEpoch !== null && BigInt(h.cskEpoch) >= next);
    assert.deepEqual(leaked, [], "the node cut off never held the new epoch's key");
    const verdicts = (await Promise.all(others.map(health))).map(
      (h) => h.peerAttestations.find((a) => a.memberId === targetId.toString())?.reason,
    );
    assert.deepEqual(
      verdicts,
      others.map(() => reason),
    );
    return cutMs;
  }

  it("peers re-attest each other; a revoked device is cut off by every peer and the CSK rotates without it, before any eviction", async () => {
    const cutMs = await cutOffAndRotate("revoke", "DeviceRevoked");
    process.stdout.write(`# revoked device cut off by every peer in ${cutMs} ms\n`);
  });

  it("a withdrawn compose hash is cut off by every peer and the CSK rotates without it, before any eviction", async () => {
    const cutMs = await cutOffAndRotate("withdraw", "ComposeHashNotAllowed");
    process.stdout.write(`# withdrawn compose hash cut off by every peer in ${cutMs} ms\n`);
  });

  /** The public keys of `node`'s WireGuard peers, as wg(8) in its namespace lists them. */
  const wgPeers = async (node: DevnetNode) => [
    ...(await latestHandshakes(node.netns, node.wgInterface)).keys(),
  ];

  it("a node serving a quote bound to other keys is refused by every peer: no WireGuard peer, never any CSK (not even the one current when it was peered), sampled throughout", async () => {
    let state = (await readState())!;
    await eventually("every node to have attested every peer", () => everyPeerAttested(state.nodes), 90_000);
    // The attack: a real sidecar with its own keys, registering honestly, whose guest agent is asked for
    // quotes over other report data. Its peers refuse it, so it never becomes healthy: no wait for that.
    await cli(["devnet", "add-node", "--json", "--no-wait", "--sidecar-entry", OTHER_KEYS_ENTRY], {
      env: DEVNET_ENV,
    });
    const started = Date.now();
    state = (await readState())!;
    const target = state.nodes.at(-1)!;
    const others = state.nodes.slice(0, -1);
    const honest = members(others);

    // Sampled from before it registers until the end: every peer's report and WireGuard peers, and its own.
    interface Sample {
      at: number;
      reports: (Health | null)[];
      wg: (string[] | null)[];
      target: Health | null;
    }
    const samples: Sample[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const at = Date.now();
        const [reports, wg, own] = await Promise.all([
          Promise.all(honest.map((n) => health(n).catch(() => null))),
          Promise.all(honest.map((n) => wgPeers(n).catch(() => null))),
          health(target).catch(() => null),
        ]);
        samples.push({ at, reports, wg, target: own });
        await sleep(50);
      }
    })();
    const stopSampling = async () => {
      sampling = false;
      await sampler;
    };

    try {
      const targetId = await eventually(
        "the node to register",
        async () => (await health(target)).memberId ?? undefined,
        120_000,
      );
      const targetKey = (await health(target)).wireguardPublicKey!;
      const verdictOf = (h: Health) => h.peerAttestations.find((a) => a.memberId === targetId);
      const refusedAll = await eventually(
        "every peer to refuse it (ReportDataMismatch) and leave it out of WireGuard",
        async () => {
          const reports = await Promise.all(honest.map(health));
          const wg = await Promise.all(honest.map(wgPeers));
          const cut = reports.every(
            (h, i) =>
              verdictOf(h)?.status === "failed" &&
              verdictOf(h)?.reason === "ReportDataMismatch" &&
              !h.peers.some((p) => p.memberId === targetId) &&
              !wg[i]!.includes(targetKey),
          );
          return cut ? Date.now() - started : false;
        },
        120_000,
        50,
      );

      await eventually(
        "the node cut off to hear no live peer",
        async () => (await health(target)).livePeers === 0,
      );
      const clients = devnetClients(state.rpcUrl, state.chainId);
      const { client } = clients;
      const memberStatus = async () =>
        (
          await client.readContract({
            address: state.diamond,
            abi: clusterAbi,
            functionName: "member",
            args: [BigInt(targetId)],
          })
        ).status;
      assert.equal(await memberStatus(), 1, "refused on its evidence alone: still an active member on chain");
      // Refused on its evidence alone, before any eviction: no member has a WireGuard peer for it. Nodes
      // cut off earlier (stale on chain) are left out of its view, so it never peers with them: they
      // never complete a handshake with it. Its own report binds nothing.
      for (const node of others) {
        const handshakes = await latestHandshakes(node.netns, node.wgInterface);
        const verdict = verdictOf(await health(node));
        const seen = `${node.name}: verdict ${verdict?.status}/${verdict?.reason}, handshake ${handshakes.get(targetKey)}`;
        if (honest.includes(node))
          assert.ok(!handshakes.has(targetKey), `no WireGuard peer for it (${seen})`);
        else assert.equal(handshakes.get(targetKey) ?? 0, 0, `never a handshake with it (${seen})`);
        process.stdout.write(`# ${seen}\n`);
      }
      const run = await attest(["attest", targetId, "--network", "devnet", "--json"]);
      const report = JSON.parse(run.stdout) as Report;
      assert.equal(run.code, 2, run.stderr);
      assert.equal(report.binding?.bound, false);
      assert.deepEqual(
        report.checks.filter((c) => !c.ok).map((c) => `${c.name}:${c.reason}`),
        ["report-data:ReportDataMismatch"],
      );

      // The CSK moves on without it. An evidence refusal opens no epoch (the chain does not know of it).
      // An epoch the owner merely opens, it could commit itself: alone, it ranks first in its own view,
      // and the chain takes the first commitment (its peers then wait for a re-open). So the owner evicts
      // it, which opens the next epoch and leaves it nothing it may commit.
      const currentCsk = async () =>
        client.readContract({ address: state.diamond, abi: clusterAbi, functionName: "currentCsk" });
      const [epoch] = await currentCsk();
      await evictApp(clients, state.diamond, target.appId, 1);
      const next = epoch + 1n;
      assert.equal((await currentCsk())[0], next, "the eviction opened the next epoch");
      const rotated = await eventually(
        `every peer to hold epoch ${next}`,
        async () => {
          // Committed by the node cut off, its peers could never hold this epoch's key: stop waiting.
          if ((await currentCsk())[2].toString() === targetId) return "committed by the node cut off";
          const reports = await Promise.all(honest.map(health));
          return (
            reports.every((h) => h.cskEpoch === next.toString() && h.cskAcquired) && "held by every peer"
          );
        },
        120_000,
      );
      assert.equal(rotated, "held by every peer", `epoch ${next}`);
      const [, commitment] = await currentCsk();
      await sleep(3000);
      await stopSampling();

      // At no moment did any peer pass it; once a peer had refused it and dropped it, that peer never
      // had it as a WireGuard peer again; it never held the next epoch's key.
      assert.ok(samples.length > 50, `sampled ${samples.length} times`);
      assert.equal(samples[0]!.target?.memberId ?? null, null, "sampling began before it registered");
      const violations: string[] = [];
      const cutAt = honest.map(() => Number.POSITIVE_INFINITY);
      let firstPeered = Number.POSITIVE_INFINITY;
      let lastPeered = Number.NEGATIVE_INFINITY;
      for (const sample of samples) {
        honest.forEach((node, i) => {
          const report = sample.reports[i] ?? null;
          const wg = sample.wg[i] ?? null;
          const verdict = report === null ? undefined : verdictOf(report);
          if (verdict?.status === "passed") violations.push(`${node.name} passed it at ${sample.at}`);
          const peered =
            (report?.peers.some((p) => p.memberId === targetId) ?? false) ||
            (wg?.includes(targetKey) ?? false);
          if (peered) {
            firstPeered = Math.min(firstPeered, sample.at);
            lastPeered = Math.max(lastPeered, sample.at);
            if (sample.at > cutAt[i]!) violations.push(`${node.name} peered with it again at ${sample.at}`);
          } else if (verdict?.status === "failed" && report !== null && wg !== null) {
            cutAt[i] = Math.min(cutAt[i]!, sample.at);
          }
        });
        // Any key at all: the next epoch's, and (issue 14's gap) the one current while it was peered and
        // not judged yet, which its peers used to serve it before their first verdict.
        const own = sample.target?.cskEpoch;
        if (own !== null && own !== undefined) {
          violations.push(`it held epoch ${own} (${sample.target?.cskCommitment}) at ${sample.at}`);
        }
      }
      assert.deepEqual(violations, [], "the attack never succeeded at any sample");
      assert.ok(
        cutAt.every((t) => Number.isFinite(t)),
        "every peer's cutting it off was sampled",
      );
      const own = await health(target);
      assert.notEqual(own.cskCommitment, commitment, "it does not hold the key every peer holds");

      // Until its first attestation is judged it is an unattested peer like any newcomer (the peers fetch
      // attestations over the mesh, so peering comes first): its peers answer "not attested yet" and seal
      // nothing, so it never held the key of the epoch current when it joined, at any sample.
      const joined = samples.filter((x) => x.target?.cskAcquired || x.target?.cskEpoch === epoch.toString());
      process.stdout.write(
        `# it ${joined.length > 0 ? "got" : "never got"} the key of epoch ${epoch}, current when it joined (${joined.length} samples)\n`,
      );
      assert.equal(joined.length, 0, `it held the key of epoch ${epoch}, current when it joined`);
      const peeredFor = Number.isFinite(firstPeered) ? `${lastPeered - firstPeered} ms` : "never sampled";
      process.stdout.write(
        `# quote bound to other keys: cut off by every peer ${refusedAll} ms after the node started (registration included); a WireGuard peer of some peer for ${peeredFor} before its first attestation was judged; ${samples.length} samples\n`,
      );
    } finally {
      await stopSampling();
    }
  });
});
