// End to end over the devnet's SNI gateway: a 3-node devnet with real wireguard-go whose node
// namespaces drop UDP between each other (nftables, as dstack CVMs take no inbound UDP). The mesh
// forms through the gateway bridge, keeps a steady stream flowing while every direct test fails, and
// carries TCP; once the test lifts the block, peers upgrade to direct UDP after a test; when it blocks
// UDP again, they fall back to the gateway.
// Needs root, /dev/net/tun, nft and userspace WireGuard. Run it under the devnet lock:
//   flock /tmp/attestmesh-netns.lock node --test test/e2e/gateway.test.ts
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { getJson } from "@attestmesh/devnet/orchestration/health.ts";
import {
  cli,
  devnetSkip,
  echoRoundTrip,
  eventually,
  execFileAsync,
  inNetns,
  ROOT,
} from "./helpers/devnet.ts";
import { meshStream } from "./helpers/meshStream.ts";

// Short timings so upgrades and fallbacks happen within the test: a direct test 2 s after a failure
// (doubling up to 8 s: the failures while UDP is blocked must not put the upgrade off for minutes once
// it is allowed), keepalives every 5 s (a direct peer silent for 20 s falls back).
const ENV = {
  ...process.env,
  ATTESTMESH_DIRECT_RETRY_SECONDS: "2",
  ATTESTMESH_DIRECT_RETRY_MAX_SECONDS: "8",
  ATTESTMESH_WG_KEEPALIVE_SECONDS: "5",
};

const skip = devnetSkip;

interface NodeEntry {
  name: string;
  netns: string;
  wgInterface: string;
  meshIp: string | null;
  healthUrl: string;
  phase: string;
  transports: Record<string, number>;
}

interface PeerHealth {
  memberId: string;
  latestHandshake: number;
  transport?: string;
  transportDetail?: {
    directFailures: number;
    gateway: { datagramsIn: number; datagramsOut: number } | null;
  };
}

async function peersOf(node: NodeEntry): Promise<PeerHealth[]> {
  // Not fetch: see getJson (a pending fetch can leave nothing keeping the test process alive).
  return ((await getJson(node.healthUrl, 2_000)).body as { peers: PeerHealth[] }).peers;
}

/** Every node reports every peer on `path` with a handshake. */
function allOn(nodes: NodeEntry[], path: string) {
  return async () => {
    const views = await Promise.all(nodes.map(peersOf));
    const ok = views.every(
      (peers) =>
        peers.length === nodes.length - 1 &&
        peers.every((p) => p.transport === path && p.latestHandshake > 0),
    );
    return ok ? views : undefined;
  };
}

/**
 * A one-shot TCP echo in `server`'s namespace on its mesh IP, and a client from `client`'s namespace.
 * The client has a minute. ATTESTMESH_DIRECT_RETRY_SECONDS=2 makes direct tests come every few seconds
 * here; while each re-added its peer for a handshake test with UDP blocked (main `caa2daa`), nothing
 * crossed for about 4 s each time, and a 64 KiB echo whose retransmissions backed off across several of
 * them ran out of the minute in CI. A failing test now ends in place (selector.ts; the stream test below).
 */
async function tcpRoundTrip(server: NodeEntry, client: NodeEntry, port: number): Promise<string> {
  // 64 KiB each way: many WireGuard datagrams, so the stream really crosses the bridge.
  const clientScript = `const c=require("node:net").connect(${port},"${server.meshIp}",()=>{c.write(Buffer.alloc(65536,7));c.end("from ${client.name}")});let n=0,t="";c.on("data",x=>{n+=x.length;t=(t+x.toString("latin1")).slice(-20)});c.on("end",()=>process.stdout.write(n+" "+t.replace(/\\x07/g,"")));c.on("error",()=>process.exit(4));setTimeout(()=>process.exit(3),60000).unref();`;
  return echoRoundTrip(server, client.netns, port, clientScript, 70000);
}

async function everyPairCarriesTcp(nodes: NodeEntry[], firstPort: number): Promise<void> {
  let port = firstPort;
  for (const server of nodes) {
    for (const client of nodes.filter((n) => n !== server)) {
      const echoed = await tcpRoundTrip(server, client, port++);
      assert.equal(echoed, `${65536 + `from ${client.name}`.length} from ${client.name}`);
    }
  }
}

/**
 * Whether a UDP datagram from `from`'s namespace reaches a listener in `to`'s namespace within 3 s of
 * being sent. The 3 s run from the send, not from the listener's start: starting the sender (a node
 * process) on a loaded machine took most of a window that began at the listener's start.
 */
async function udpReaches(from: NodeEntry, to: NodeEntry & { underlayIp: string }): Promise<boolean> {
  const listener = spawn("ip", [
    "netns",
    "exec",
    to.netns,
    process.execPath,
    "-e",
    `const s=require("node:dgram").createSocket("udp4");s.on("message",()=>{console.log("got");process.exit(0)});s.bind(7900,"${to.underlayIp}",()=>console.log("ready"));setTimeout(()=>process.exit(1),120000);`,
  ]);
  // Listen for the exit now: the listener may exit (on the probe) before we would look.
  const exited = new Promise((resolve) => listener.once("exit", resolve));
  let output = "";
  listener.stdout.on("data", (d: Buffer) => {
    output += d.toString();
  });
  try {
    await eventually("the UDP listener", async () => (output.includes("ready") ? true : undefined), 30_000);
    await inNetns(from.netns, process.execPath, [
      "-e",
      `const s=require("node:dgram").createSocket("udp4");s.send("probe",7900,"${to.underlayIp}",()=>s.close());`,
    ]);
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3_000))]);
  } finally {
    if (listener.exitCode === null) listener.kill();
    await exited;
  }
  return output.includes("got");
}

describe("mesh over the devnet gateway", { skip }, () => {
  let nodes: Array<NodeEntry & { underlayIp: string }> = [];

  before(async () => {
    const status = JSON.parse(
      await cli(
        ["devnet", "up", "--detach", "--json", "--nodes", "3", "--transport", "auto", "--block-udp"],
        {
          env: ENV,
        },
      ),
    ) as { nodes: NodeEntry[] };
    const state = JSON.parse((await execFileAsync("cat", [join(ROOT, ".devnet/state.json")])).stdout) as {
      nodes: Array<{ name: string; underlayIp: string }>;
    };
    nodes = status.nodes.map((n) => ({
      ...n,
      underlayIp: state.nodes.find((s) => s.name === n.name)!.underlayIp,
    }));
  });

  after(async () => {
    // ATTESTMESH_E2E_LOGS=<dir> keeps the devnet's logs for a post-mortem (down deletes .devnet/).
    const keep = process.env.ATTESTMESH_E2E_LOGS;
    if (keep) await execFileAsync("cp", ["-r", join(ROOT, ".devnet"), keep]).catch(() => {});
    await cli(["devnet", "down"], { env: ENV }).catch(() => {});
  });

  it("forms the mesh through the gateway while UDP between namespaces is dropped", async () => {
    assert.equal(nodes.length, 3);
    for (const node of nodes) assert.equal(node.phase, "healthy", `${node.name} is ${node.phase}`);
    assert.equal(await udpReaches(nodes[0]!, nodes[1]!), false, "UDP between namespaces must be blocked");
    const views = await eventually("every peer on the gateway path", allOn(nodes, "gateway"), 30_000);
    for (const peers of views) {
      for (const peer of peers)
        assert.ok((peer.transportDetail?.gateway?.datagramsIn ?? 0) > 0, "datagrams came through the bridge");
    }
  });

  it("keeps traffic flowing through the gateway while direct tests fail", async (t) => {
    // A datagram every 50 ms both ways between every pair for 15 s: with the retry pause at 2 s
    // (doubling), every peer tests direct UDP in that time, and every test fails.
    const failures = async () =>
      (await Promise.all(nodes.map(peersOf)))
        .flat()
        .reduce((sum, p) => sum + (p.transportDetail?.directFailures ?? 0), 0);
    const failedBefore = await failures();
    const legs = await meshStream(nodes, { port: 7200, intervalMs: 50, durationMs: 15_000 });
    t.diagnostic(
      legs.map((l) => `${l.from}->${l.to} ${l.received}/${l.sent} gap ${l.longestGapMs} ms`).join("; "),
    );
    assert.ok((await failures()) > failedBefore, "direct tests ran (and failed) during the stream");
    // A test fails in place within a pass or so (0.1–0.4 s of gap here); when both sides of a pair test
    // at once, neither sees a roam-back, and each waits for its peer's silence at the first pass 1 s after
    // its move (about 2 s of gap at the devnet's 1 s passes, 1 pair in 2 runs had two such overlaps in
    // the 15 s: 20 % lost). Main's handshake tests lost 3.4–6 s each time, and 60–75 % of the stream.
    for (const leg of legs) {
      assert.ok(
        leg.longestGapMs < 3_000,
        `${leg.from} -> ${leg.to}: nothing arrived for ${leg.longestGapMs} ms`,
      );
      assert.ok(
        leg.received >= leg.sent * 0.7,
        `${leg.from} -> ${leg.to}: ${leg.received} of ${leg.sent} arrived`,
      );
    }
  });

  it("carries TCP between every pair through the gateway", async () => {
    await everyPairCarriesTcp(nodes, 7300);
  });

  it("upgrades every peer to direct UDP once UDP is allowed", async () => {
    for (const node of nodes) await inNetns(node.netns, "nft", ["delete", "table", "inet", "amdev_noudp"]);
    assert.equal(await udpReaches(nodes[0]!, nodes[1]!), true, "UDP flows again");
    await eventually("every peer on direct UDP", allOn(nodes, "udp"), 150_000);
    await everyPairCarriesTcp(nodes, 7400);
    const status = JSON.parse(await cli(["devnet", "status", "--json"], { env: ENV })) as {
      nodes: NodeEntry[];
    };
    for (const node of status.nodes) assert.deepEqual(node.transports, { udp: 2 });
  });

  it("falls back to the gateway when UDP is dropped again, and keeps carrying TCP", async () => {
    const { blockUdp } = await import("@attestmesh/devnet/orchestration/netns.ts");
    for (const node of nodes) await blockUdp(node.netns);
    await eventually("every peer back on the gateway", allOn(nodes, "gateway"), 90_000);
    await everyPairCarriesTcp(nodes, 7500);
  });
});
