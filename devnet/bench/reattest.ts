// Peer re-attestation costs and reach.
//
// `--mode cost` (in process, no root): N members each serve GET /attestation over TCP on a loopback
// "mesh IP" (the real handler and mesh server) answering with the real dstack TDX evidence of
// test/fixtures/tdx (its quote, event log and app-compose: the size and the verification work of a
// production attestation), and every member fetches and judges every other one with the real verdict
// code, collateral cached. The fixture's quote does not bind our nonce, so each verdict is a refusal
// (ReportDataMismatch), reached after every check ran: the full cost. Prints the median quote
// verification time, bytes per check, and per node at the default period (ATTESTMESH_REATTEST_INTERVAL_S
// default): the traffic (sent + received) and the CPU share of one core.
//
// `--mode revoke` (the devnet, root, under the devnet lock): a devnet of --nodes nodes; --rounds times a
// node joins on a device of its own, every peer attests it, the owner revokes its device, and the time
// until every other node cut it off (no WireGuard peer, verdict failed) is measured; prints the median.
// `--mode withdraw`: the same, with a compose of its own (add-node --compose-variant; the owner allows its
// hash as it joins) whose hash the owner withdraws instead of revoking a device.
//
//   node devnet/bench/reattest.ts --mode cost --nodes 8 [--json]
//   flock /tmp/attestmesh-devnet.lock node devnet/bench/reattest.ts --mode revoke --rounds 5 [--json]
//   flock /tmp/attestmesh-devnet.lock node devnet/bench/reattest.ts --mode withdraw --rounds 5 [--json]
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import {
  devnetClients,
  revokeDevice,
  setComposeHashAllowed,
} from "@attestmesh/devnet/orchestration/chain.ts";
import { type DevnetNode, readState } from "@attestmesh/devnet/orchestration/state.ts";
import { fixedCollateral } from "@attestmesh/shared/attestation/collateral.ts";
import { parseEventLog } from "@attestmesh/shared/attestation/eventLog.ts";
import { verifyEvidence } from "@attestmesh/shared/attestation/verify.ts";
import { numberToIp } from "@attestmesh/shared/mesh/cidr.ts";
import { CONFIG_DOCS } from "@attestmesh/sidecar/config.ts";
import { createLogger } from "@attestmesh/sidecar/log.ts";
import { createLocalSocketFactory } from "@attestmesh/sidecar/meshnet/socketFactory.ts";
import type { Member } from "@attestmesh/sidecar/model/member.ts";
import { fetchMeshAttestation, startMeshAttestationServer } from "@attestmesh/sidecar/reattest/mesh.ts";
import { claimsOf, judgeAttestation, type PeerPolicy } from "@attestmesh/sidecar/reattest/verdict.ts";
import type { Hex } from "viem";
import { loadNearMpcAttestation } from "../../test/fixtures/tdx/fixtures.ts";
import { benchOptions } from "./harness.ts";

const values = benchOptions({ mode: "cost", nodes: "8", rounds: "5", json: false });
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ROOT = new URL("../..", import.meta.url).pathname;

async function cost(n: number) {
  const periodS = Number(
    CONFIG_DOCS.find((d) => d.name === "ATTESTMESH_REATTEST_INTERVAL_S")?.default ?? 600,
  );
  const fixture = loadNearMpcAttestation();
  const collateral = fixedCollateral(fixture.collateral, "fixture (cached)");
  // Quote verification alone, collateral cached: the median of 50 after 5 warm-up runs.
  const evidence = {
    quote: Uint8Array.from(fixture.quote),
    eventLog: parseEventLog(fixture.tcb_info.event_log),
    appCompose: fixture.tcb_info.app_compose,
  };
  const verifyTimes: number[] = [];
  for (let i = 0; i < 55; i++) {
    const t = performance.now();
    await verifyEvidence(evidence, { at: fixture.verifyAt, collateral, allowSimulator: false });
    if (i >= 5) verifyTimes.push(performance.now() - t);
  }

  const logger = createLogger({ level: "silent" });
  const factory = createLocalSocketFactory();
  const port = 52_000 + Math.floor(Math.random() * 1000);
  const members: Member[] = Array.from({ length: n }, (_, i) => ({
    memberId: BigInt(i + 1),
    appId: "0x00000000000000000000000000000000000A11cE",
    memberKey: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    wireguardKey: `0x${randomBytes(32).toString("hex")}` as Hex,
    identityKey: `0x${randomBytes(32).toString("hex")}` as Hex,
    meshIp: 0x0a4d0000 + 200 + i,
    status: "active",
    registeredAt: 1,
  }));
  let sentBytes = 0;
  const servers = await Promise.all(
    members.map((m) =>
      startMeshAttestationServer({
        factory,
        mode: "loopback",
        meshIp: numberToIp(m.meshIp),
        port,
        logger,
        handler: async (url) => {
          const body = `${JSON.stringify({
            version: 1,
            claims: claimsOf(m, 31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3"),
            nonce: url.searchParams.get("nonce"),
            guestApi: "v0",
            simulated: false,
            quote: `0x${Buffer.from(fixture.quote).toString("hex")}`,
            eventLog: fixture.tcb_info.event_log,
            appCompose: fixture.tcb_info.app_compose,
          })}\n`;
          sentBytes += body.length;
          return { status: 200, headers: { "content-type": "application/json" }, body };
        },
      }),
    ),
  );
  const policy: PeerPolicy = {
    allowSimulator: false,
    requireTcbUpToDate: false,
    allowAnyDevice: true,
    composeHashes: new Set([fixture.tcb_info.compose_hash]),
    deviceIds: new Set(),
    standing: "good",
  };
  let receivedBytes = 0;
  const checkMs: number[] = [];
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  // One period's work of the whole cluster: every member checks every other once.
  for (const self of members) {
    for (const peer of members) {
      if (peer === self) continue;
      const nonce = randomBytes(32);
      const t = performance.now();
      const document = await fetchMeshAttestation({
        factory,
        mode: "loopback",
        meshIp: numberToIp(peer.meshIp),
        port,
        nonce,
        timeoutMs: 10_000,
        onBytes: (b) => {
          receivedBytes += b;
        },
      });
      const { verdict } = await judgeAttestation({
        member: peer,
        chainId: 31337,
        cluster: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        nonce,
        document,
        policy,
        collateral,
        at: fixture.verifyAt,
      });
      if (verdict.ok || verdict.reason !== "ReportDataMismatch") {
        throw new Error(`unexpected verdict ${JSON.stringify(verdict)}`);
      }
      checkMs.push(performance.now() - t);
    }
  }
  const cpu = process.cpuUsage(cpuBefore);
  const wallMs = performance.now() - wallBefore;
  await Promise.all(servers.map((s) => s.close()));
  const checks = n * (n - 1);
  // Per node and period: it fetches n-1 documents and serves n-1 (plus ~150 bytes of request each way).
  const requestBytes = 150;
  const perNodeBytes = (sentBytes + receivedBytes) / n + 2 * (n - 1) * requestBytes;
  const cpuMsPerNode = (cpu.user + cpu.system) / 1000 / n;
  return {
    nodes: n,
    periodS,
    verifyMedianMs: Number(median(verifyTimes).toFixed(2)),
    checkMedianMs: Number(median(checkMs).toFixed(2)),
    documentBytes: Math.round(receivedBytes / checks),
    perNodePerPeriodBytes: Math.round(perNodeBytes),
    perNodeBytesPerSecond: Number((perNodeBytes / periodS).toFixed(1)),
    perNodePerPeriodCpuMs: Number(cpuMsPerNode.toFixed(1)),
    perNodeCpuPercentOfOneCore: Number(((cpuMsPerNode / (periodS * 1000)) * 100).toFixed(4)),
    wallMs: Math.round(wallMs),
  };
}

async function health(node: DevnetNode) {
  const res = await fetch(node.healthUrl, { signal: AbortSignal.timeout(3000) });
  return (await res.json()) as {
    memberId: string | null;
    peers: { memberId: string }[];
    peerAttestations: { memberId: string; status: string }[];
  };
}

async function until<T>(what: string, check: () => Promise<T | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check().catch(() => false as const);
    if (value !== false) return value;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** What the owner withdraws from the newcomer each round: its own device, or its own compose hash. */
type Trigger = "revoke" | "withdraw";

async function revoke(nodes: number, rounds: number, trigger: Trigger) {
  const started = Date.now();
  const cli = join(ROOT, "scripts/src/cli/main.ts");
  const run = (args: string[]) =>
    promisify(execFile)(process.execPath, [cli, ...args], { cwd: ROOT, maxBuffer: 16 << 20 });
  await run([
    "devnet",
    "up",
    "--detach",
    "--json",
    "--nodes",
    String(nodes),
    "--no-indexer",
    "--funded-keys",
  ]);
  const cutOffMs: number[] = [];
  /** Nodes revoked (and evicted) in earlier rounds: no longer members, left out of the checks. */
  const gone = new Set<string>();
  try {
    for (let round = 0; round < rounds; round++) {
      // A device, or a compose, of its own: withdrawing it touches no other node.
      const device = `0x${randomBytes(32).toString("hex")}` as Hex;
      const own = trigger === "revoke" ? ["--device-id", device] : ["--compose-variant", `withdraw-${round}`];
      await run(["devnet", "add-node", "--json", "--timeout", "180", ...own]);
      const state = (await readState())!;
      const target = state.nodes.at(-1)!;
      const others = state.nodes.filter((x) => x !== target && !gone.has(x.name));
      const targetId = (await health(target)).memberId!;
      await until(
        `round ${round}: every peer to attest the new node`,
        async () =>
          (await Promise.all(others.map(health))).every((h) =>
            h.peerAttestations.some((a) => a.memberId === targetId && a.status === "passed"),
          ),
        120_000,
      );
      const clients = devnetClients(state.rpcUrl, state.chainId);
      // The devnet mines on arrival: the clock starts as the owner's transaction is sent, and the peers
      // are watched meanwhile, so the receipt's own polling delay is not counted.
      const began = Date.now();
      const revoked =
        trigger === "revoke"
          ? revokeDevice(clients, state.diamond, device)
          : setComposeHashAllowed(clients, state.diamond, target.composeHash!, false);
      revoked.catch(() => {});
      const ms = await until(
        `round ${round}: every peer to cut the ${trigger === "revoke" ? "revoked" : "withdrawn"} node off`,
        async () => {
          const reports = await Promise.all(others.map(health));
          return reports.every(
            (h) =>
              !h.peers.some((p) => p.memberId === targetId) &&
              h.peerAttestations.some((a) => a.memberId === targetId && a.status === "failed"),
          )
            ? Date.now() - began
            : false;
        },
        60_000,
      );
      await revoked;
      cutOffMs.push(ms);
      if (!values.json) console.log(`round ${round}: cut off by every peer in ${ms} ms`);
      await run(["devnet", "evict", target.name]).catch(() => {});
      gone.add(target.name);
    }
  } finally {
    await run(["devnet", "down"]).catch(() => {});
  }
  return {
    nodes,
    rounds,
    cutOffMs,
    medianMs: median(cutOffMs),
    minMs: Math.min(...cutOffMs),
    maxMs: Math.max(...cutOffMs),
    wallS: Math.round((Date.now() - started) / 1000),
  };
}

if (values.mode === "cost") {
  const result = await cost(Number(values.nodes));
  if (values.json) console.log(JSON.stringify(result));
  else
    console.log(
      `N=${result.nodes}, period ${result.periodS} s: quote verification median ${result.verifyMedianMs} ms (collateral cached); ` +
        `one check (mesh fetch + verdict) median ${result.checkMedianMs} ms, ${result.documentBytes} B per document; ` +
        `per node per period ${result.perNodePerPeriodBytes} B (${result.perNodeBytesPerSecond} B/s) and ` +
        `${result.perNodePerPeriodCpuMs} ms CPU (${result.perNodeCpuPercentOfOneCore}% of one core)`,
    );
} else if (values.mode === "revoke" || values.mode === "withdraw") {
  const result = await revoke(
    Number(values.nodes === "8" ? "3" : values.nodes),
    Number(values.rounds),
    values.mode,
  );
  const what = values.mode === "revoke" ? "revoked device" : "withdrawn compose hash";
  if (values.json) console.log(JSON.stringify(result));
  else
    console.log(
      `${what} cut off by every peer (${result.nodes} + 1 nodes): median ${result.medianMs} ms over ${result.rounds} rounds, ` +
        `min ${result.minMs} ms, max ${result.maxMs} ms (${result.cutOffMs.join(", ")} ms); the run took ${result.wallS} s`,
    );
} else {
  throw new Error(`--mode is cost, revoke or withdraw, not ${values.mode}`);
}
