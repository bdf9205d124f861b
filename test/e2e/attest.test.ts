// End to end: `attestmesh attest` against running devnet members. Each sidecar serves a fresh,
// SIMULATED attestation at GET /attestation on its health port whose report data binds the member's
// on-chain keys and the CLI's nonce; the devnet cluster allows the simulator's KMS root, so the report
// passes and says SIMULATED. The indexer's (simulated) quote is verified by every node on its hello.
// Needs root and /dev/net/tun, like every devnet test.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { readState } from "@attestmesh/devnet/orchestration/state.ts";
import { CLI, cli, devnetSkip, ROOT } from "./helpers/devnet.ts";

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
});
