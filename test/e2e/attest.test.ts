// End to end: `attestmesh attest` against running devnet members. Each sidecar serves a fresh,
// SIMULATED attestation at GET /attestation on its health port whose report data binds the member's
// on-chain keys and the CLI's nonce; the devnet cluster allows the simulator's KMS root, so the report
// passes and says SIMULATED. The indexer's (simulated) quote is verified by every node on its hello.
// Peers re-attest each other over the mesh (the same devnet, last): every node attests every peer; a
// node added on a device of its own has that device revoked by the owner, and every other node cuts it
// off (WireGuard peer set, attestation verdict) and rotates the CSK without it before any eviction,
// while the revoked node is sampled throughout and never holds the new epoch's key.
// Needs root and /dev/net/tun, like every devnet test.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import {
  devnetClients,
  revokeDevice,
  setComposeHashAllowed,
} from "@attestmesh/devnet/orchestration/chain.ts";
import { type DevnetNode, readState } from "@attestmesh/devnet/orchestration/state.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import type { Hex } from "viem";
import { CLI, cli, devnetSkip, eventually, ROOT } from "./helpers/devnet.ts";

interface Attested {
  memberId: string;
  status: string;
  kind: string | null;
  reason: string | null;
}
interface Health {
  phase: string;
  memberId: string | null;
  cskEpoch: string | null;
  cskAcquired: boolean;
  peers: { memberId: string }[];
  peerAttestations: Attested[];
}

async function health(node: DevnetNode): Promise<Health> {
  const res = await fetch(node.healthUrl, { signal: AbortSignal.timeout(3000) });
  return (await res.json()) as Health;
}

interface NodeEntry {
  name: string;
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
      await cli(["devnet", "up", "--detach", "--json", "--nodes", "2", "--funded-keys"]),
    ) as { nodes: NodeEntry[] };
    nodes = status.nodes;
  });

  after(async () => {
    await cli(["devnet", "down"]).catch(() => {});
  });

  it("every member's live attestation verifies, binds its on-chain keys, and says SIMULATED", async () => {
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
  });

  it("the indexer's simulated quote was verified by every node", async () => {
    const state = await readState();
    assert.ok(state?.indexer !== undefined, "the devnet runs an indexer");
    const { readFile } = await import("node:fs/promises");
    const { join } = await import("node:path");
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

  /**
   * A node joins on a device or a compose of its own; every peer attests it; the owner revokes that
   * device or withdraws that compose hash. Every other node cuts it off and holds the next epoch while
   * it is still active on chain, and its own report, sampled throughout, never shows the new epoch.
   */
  async function cutOffAndRotate(trigger: "revoke" | "withdraw", reason: string): Promise<number> {
    let state = (await readState())!;
    const passed = (h: Health, id: string) =>
      h.peerAttestations.some((a) => a.memberId === id && a.status === "passed" && a.kind === "simulated");
    const members = (nodes: readonly DevnetNode[]) => nodes.filter((n) => !cutOff.has(n.name));
    const everyPeerAttested = async (nodes: readonly DevnetNode[]) => {
      const reports = await Promise.all(members(nodes).map(health));
      const ids = reports.map((h) => h.memberId!);
      return reports.every((h) => ids.every((id) => id === h.memberId || passed(h, id)));
    };
    await eventually(
      "every node to have re-attested every peer",
      () => everyPeerAttested(state.nodes),
      90_000,
    );

    // A device, or a compose, of its own, so taking it away touches no other member.
    const deviceId = `0x${randomBytes(32).toString("hex")}` as Hex;
    const own = trigger === "revoke" ? ["--device-id", deviceId] : ["--compose-variant", "attest-e2e"];
    await cli(["devnet", "add-node", "--json", "--timeout", "180", ...own]);
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
});
