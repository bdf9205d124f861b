// End to end: a 3-node devnet with real wireguard-go in network namespaces. Every pair handshakes and
// carries TCP across mesh IPs; every node's wireguard-go killed at once comes back; an evicted node is
// dropped by the others and can no longer reach them.
// Needs root, /dev/net/tun and userspace WireGuard (the devnet installs it with apt-get when missing).
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  cli,
  devnetSkip,
  devnetState,
  echoRoundTrip,
  eventually,
  healthOf,
  inNetns,
  latestHandshakes,
  metricOf,
} from "./helpers/devnet.ts";

const skip = devnetSkip;

/** The pid of the wireguard-go serving `wgInterface`, or undefined (read from /proc). */
function wireguardGoPid(wgInterface: string): number | undefined {
  for (const entry of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (argv[0]?.endsWith("wireguard-go") && argv[1] === wgInterface) return Number(entry);
    } catch {}
  }
  return undefined;
}

interface NodeEntry {
  name: string;
  netns: string;
  wgInterface: string;
  appId: string;
  memberId: string | null;
  meshIp: string | null;
  wgPublicKey: string | null;
  healthUrl: string;
  phase: string;
  account: string | null;
  sponsoredWei: string;
}

/**
 * A one-shot TCP echo in `server`'s namespace on its mesh IP, and a client from `client`'s namespace. The
 * client gives up after 15 s (5 s was two SYN retransmissions through WireGuard on a loaded machine).
 */
async function tcpRoundTrip(server: NodeEntry, client: NodeEntry, port: number): Promise<string> {
  const clientScript = `const c=require("node:net").connect(${port},"${server.meshIp}",()=>c.end("over the mesh from ${client.name}"));let d="";c.on("data",x=>d+=x);c.on("end",()=>{process.stdout.write(d)});c.on("error",()=>process.exit(4));setTimeout(()=>process.exit(3),15000).unref();`;
  return echoRoundTrip(server, client.netns, port, clientScript, 20000);
}

async function rpc(url: string, method: string, params: unknown[]): Promise<string> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  return ((await response.json()) as { result: string }).result;
}

describe("devnet end to end", { skip }, () => {
  let nodes: NodeEntry[] = [];
  let rpcUrl = "";
  let sponsorship: { paymaster: string } | null = null;

  before(async () => {
    const status = JSON.parse(await cli(["devnet", "up", "--detach", "--json", "--nodes", "3"])) as {
      rpcUrl: string;
      sponsorship: { paymaster: string } | null;
      nodes: NodeEntry[];
    };
    nodes = status.nodes;
    rpcUrl = status.rpcUrl;
    sponsorship = status.sponsorship;
  });

  after(async () => {
    await cli(["devnet", "down"]).catch(() => {});
  });

  it("brings three nodes to healthy with distinct mesh IPs", () => {
    assert.equal(nodes.length, 3);
    for (const node of nodes) assert.equal(node.phase, "healthy", `${node.name} is ${node.phase}`);
    assert.equal(new Set(nodes.map((n) => n.meshIp)).size, 3);
    for (const node of nodes) assert.match(node.meshIp ?? "", /^10\.77\.\d+\.\d+$/);
  });

  it("registers every node sponsored: nodes and their accounts hold no ETH, the paymaster paid", async () => {
    assert.ok(sponsorship, "the devnet is sponsored by default");
    for (const node of nodes) {
      assert.match(node.account ?? "", /^0x[0-9a-fA-F]{40}$/, `${node.name} reports its account`);
      assert.ok(BigInt(node.sponsoredWei) > 0n, `${node.name}: the sponsor paid for its registration`);
      assert.equal(BigInt(await rpc(rpcUrl, "eth_getBalance", [node.account, "latest"])), 0n);
      assert.notEqual(await rpc(rpcUrl, "eth_getCode", [node.account, "latest"]), "0x");
    }
  });

  it("completes a WireGuard handshake between every pair", async () => {
    for (const node of nodes) {
      const seen = await latestHandshakes(node.netns, node.wgInterface);
      const others = nodes.filter((n) => n !== node);
      assert.equal(seen.size, others.length, `${node.name} has ${seen.size} peers`);
      for (const [key, at] of seen) assert.ok(at > 0, `${node.name} never handshook with ${key}`);
    }
  });

  it("carries TCP between every pair across mesh IPs", async () => {
    let port = 7100;
    for (const server of nodes) {
      for (const client of nodes.filter((n) => n !== server)) {
        const echoed = await tcpRoundTrip(server, client, port++);
        assert.equal(echoed, `over the mesh from ${client.name}`);
      }
    }
  });

  // Regression: the sidecar never brought its interface back after wireguard-go died (kill -9, OOM):
  // every later reconcile pass failed and the node stayed off the mesh until the sidecar restarted.
  it("every node's wireguard-go killed at once: each comes back with its key, address and peers within 15 s", async () => {
    const pids = nodes.map((node) => wireguardGoPid(node.wgInterface));
    assert.ok(
      pids.every((pid) => pid !== undefined),
      "every node runs wireguard-go",
    );
    const killedAt = Date.now();
    for (const pid of pids) process.kill(pid!, "SIGKILL");
    for (const [i, node] of nodes.entries()) {
      await eventually(
        `${node.name} healthy again with a new wireguard-go`,
        async () => {
          const pid = wireguardGoPid(node.wgInterface);
          if (pid === undefined || pid === pids[i]) return undefined;
          const health = await healthOf<{ phase: string; interfaceUp: boolean }>(node);
          return health.phase === "healthy" && health.interfaceUp;
        },
        15_000 - (Date.now() - killedAt),
      );
    }
    for (const node of nodes) {
      const wg = async (...args: string[]) =>
        (await inNetns(node.netns, "wg", ["show", node.wgInterface, ...args])).stdout.trim();
      assert.equal(await wg("public-key"), node.wgPublicKey);
      const { stdout } = await inNetns(node.netns, "ip", ["-br", "address", "show", "dev", node.wgInterface]);
      assert.match(stdout, new RegExp(` ${node.meshIp!.replaceAll(".", "\\.")}/`));
      assert.equal((await latestHandshakes(node.netns, node.wgInterface)).size, nodes.length - 1);
      assert.equal(await metricOf(node, "attestmesh_wireguard_restarts_total", 'reason="daemon-exited"'), 1);
      const { logDir } = (await devnetState()).nodes.find((n) => n.name === node.name)!;
      const log = await readFile(join(logDir, "sidecar.log"), "utf8");
      assert.equal(log.split("\n").filter((l) => l.includes("wireguard-go exited; restarting")).length, 1);
    }
    const [first, second] = nodes as [NodeEntry, NodeEntry];
    assert.equal(await tcpRoundTrip(first, second, 7150), `over the mesh from ${second.name}`);
  });

  it("drops an evicted node: the others remove its peer and it can no longer reach them", async () => {
    const [first, second, evicted] = nodes as [NodeEntry, NodeEntry, NodeEntry];
    assert.equal(await tcpRoundTrip(first, evicted, 7200), `over the mesh from ${evicted.name}`);
    await cli(["devnet", "evict", evicted.name]);
    for (const node of [first, second]) {
      await eventually(`${node.name} to remove ${evicted.name}`, async () => {
        const seen = await latestHandshakes(node.netns, node.wgInterface);
        return seen.size === 1 && !seen.has(evicted.wgPublicKey ?? "") ? true : undefined;
      });
    }
    await assert.rejects(tcpRoundTrip(first, evicted, 7201), "the evicted node must not reach a member");
    await assert.rejects(tcpRoundTrip(second, evicted, 7202), "the evicted node must not reach a member");
  });
});
