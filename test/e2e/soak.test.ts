// The soak harness, its short seeded version (issue 17): `runSoak`, as `attestmesh devnet soak` runs it,
// brings up a fresh 4-node devnet and runs the seed's schedule of faults while members message each
// other and ACK what they read and a TCP stream crosses the mesh. Every invariant it checks every second
// must hold: zero violations. Short means the seed's first thirteen faults at a quarter of the gaps and
// hold times (never under two chain polls; the pause still outlasts the heartbeat timeout): all twelve
// kinds, sidecar SIGTERM and SIGKILL restarts, a SIGSTOP past the heartbeat timeout, the indexer killed,
// an RPC provider lying and one down, the gateway killed and one delaying, UDP blocked on a node's
// underlay, a node evicted, one revoked and two joining; recovery is not hurried. The long runs are the CLI's (`--nodes 8 --minutes 60`, docs/soak.md). Needs root and
// /dev/net/tun; run it under the machine-wide devnet lock.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { runSoak, type SoakReport } from "@attestmesh/devnet/soak/soak.ts";
import { cli, devnetSkip } from "./helpers/devnet.ts";

const SEED = 20261206;
/** The seed's first thirteen faults, in its order (one seed, one schedule): every kind, `node-add` twice. */
const SCHEDULE = [
  "sidecar-sigterm",
  "node-evict",
  "node-add",
  "sidecar-pause",
  "indexer-kill",
  "gateway-drop",
  "rpc-lie",
  "sidecar-sigkill",
  "app-revoke",
  "node-add",
  "rpc-down",
  "udp-block",
  "gateway-delay",
];

describe("soak: the seed's first thirteen faults under traffic, at a quarter pace", {
  skip: devnetSkip,
  timeout: 900_000,
}, () => {
  after(async () => {
    await cli(["devnet", "down"]).catch(() => {});
  });

  it("injects faults of all twelve kinds, recovers from each, and violates no invariant", async () => {
    const started = Date.now();
    const report: SoakReport = await runSoak({
      nodes: 4,
      minutes: 3,
      seed: SEED,
      pace: 0.25,
      maxFaults: SCHEDULE.length,
      outDir: "test-artifacts/soak",
      progress: (message) =>
        process.stderr.write(`# ${((Date.now() - started) / 1000).toFixed(1)} s ${message}\n`),
    });
    process.stderr.write(
      `# soak seed ${SEED}: ${report.faults.length} faults, ${report.violations.length} violations, ${report.messages.sent} messages\n`,
    );
    assert.deepEqual(report.violations, [], "no invariant violated");
    assert.deepEqual(
      report.faults.map((f) => f.kind),
      SCHEDULE,
      "the seed's schedule, every fault injected before the 3-minute cap",
    );
    assert.deepEqual(
      report.faults.filter((f) => f.error !== undefined),
      [],
      "every fault was injected",
    );
    assert.ok(report.messages.sent >= 10, `only ${report.messages.sent} messages sent`);
    assert.equal(report.messages.delivered, report.messages.sent - report.messages.toDeparted);
    assert.ok(report.tcp.echoed > 1000, "the TCP stream carried traffic");
    assert.ok(report.secrets.checked >= 12, "the log scan searched every node's keys and the CSK");
  });
});
