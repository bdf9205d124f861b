// End to end at the default confirmation depth (issue 12 C and E): a devnet whose sidecars follow the
// chain at head − 2 (Hardhat mining a block a second). Evicting a member, its own unmodified sidecar
// never reports the next epoch's key at any sample, and every remaining node refuses it as soon as the
// eviction is at the head, long before their confirmed views drop it; the median of five evictions is
// printed. A CSK request sent to a node's mesh IP over the underlay (from the hub namespace, not
// through WireGuard) is dropped by the node's nftables guard and never reaches its mesh socket.
// Needs root and /dev/net/tun, like devnet.test.ts; run it under the netns lock.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { type DevnetNode, type DevnetState, HUB_NETNS } from "@attestmesh/devnet/orchestration/state.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { encodeRequest } from "@attestmesh/sidecar/csk/codec.ts";
import { loadSodium, randomBytes } from "@attestmesh/sidecar/meshnet/crypto.ts";
import { createPublicClient, http, zeroHash } from "viem";
import { firstRises } from "../helpers/firstRises.ts";
import {
  cli,
  devnetSkip,
  devnetState,
  eventually,
  execFileAsync,
  healthOf,
  type MemberHealth,
  metricOf,
  nodeSigningKey,
} from "./helpers/devnet.ts";

const MESH_PORT = 51821;
const ROUNDS = 5;

interface Health extends MemberHealth {
  peers: Array<{ memberId: string }>;
}

const health = (node: DevnetNode) => healthOf<Health>(node);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A node process inside `netns` sending each "ip hexdatagram" line of its stdin to ip:MESH_PORT. */
function sender(netns: string): ChildProcess {
  const script = `const d=require("node:dgram").createSocket("udp4");require("node:readline").createInterface({input:process.stdin}).on("line",(l)=>{const[ip,hex]=l.split(" ");d.send(Buffer.from(hex,"hex"),${MESH_PORT},ip,()=>{});});`;
  return spawn("ip", ["netns", "exec", netns, process.execPath, "-e", script], {
    stdio: ["pipe", "ignore", "inherit"],
  });
}

describe("eviction and the mesh port at the default confirmations", { skip: devnetSkip }, () => {
  let state: DevnetState;
  let client: ReturnType<typeof createPublicClient>;
  const children: ChildProcess[] = [];

  const node = (name: string) => state.nodes.find((n) => n.name === name)!;
  const currentCsk = async () => {
    const [epoch, commitment] = await client.readContract({
      address: state.diamond,
      abi: clusterAbi,
      functionName: "currentCsk",
    });
    return { epoch, commitment };
  };
  const holds = async (n: DevnetNode, epoch: bigint) => {
    const h = await health(n);
    return h.phase === "healthy" && h.cskEpoch === epoch.toString() && h.cskAcquired;
  };

  before(async () => {
    await loadSodium();
    await cli([
      "devnet",
      "up",
      "--detach",
      "--json",
      "--nodes",
      "3",
      "--confirmations",
      "2",
      "--funded-keys",
      "--no-indexer",
    ]);
    state = await devnetState();
    client = createPublicClient({ transport: http(state.rpcUrl) });
  });

  after(async () => {
    for (const child of children) child.kill("SIGKILL");
    await cli(["devnet", "down"]).catch(() => {});
  });

  it("a CSK request to a mesh IP over the underlay is dropped by the nftables guard", async () => {
    const target = node("node1");
    const h = await health(target);
    const key = await nodeSigningKey(node("node2"));
    const datagram = encodeRequest(
      {
        chainId: state.chainId,
        cluster: state.diamond,
        requesterId: BigInt((await health(node("node2"))).memberId!),
        serverId: BigInt(h.memberId!),
        epoch: 0n,
        timestampMs: BigInt(Date.now()),
        nonce: randomBytes(16),
      },
      key.sign,
    );
    key.destroy();
    const table = `attestmesh_guard_${target.wgInterface}`;
    const dropped = async () => {
      const { stdout } = await execFileAsync("ip", [
        "netns",
        "exec",
        target.netns,
        "nft",
        "list",
        "table",
        "inet",
        table,
      ]);
      return Number(/counter packets (\d+)/.exec(stdout)?.[1] ?? "0");
    };
    const received = () =>
      metricOf(target, "attestmesh_mesh_bytes_total", 'direction="received",type="csk-request"');
    const droppedBefore = await dropped();
    const receivedBefore = await received();
    // The hub sits on the underlay with every node: route node1's mesh IP to node1's underlay address.
    await execFileAsync("ip", [
      "-n",
      HUB_NETNS,
      "route",
      "replace",
      `${h.meshIp}/32`,
      "via",
      target.underlayIp,
    ]);
    try {
      const hub = sender(HUB_NETNS);
      children.push(hub);
      for (let i = 0; i < 20; i++) hub.stdin?.write(`${h.meshIp} ${Buffer.from(datagram).toString("hex")}\n`);
      await eventually(
        "the guard to count the drops",
        async () => (await dropped()) >= droppedBefore + 20,
        15_000,
      );
    } finally {
      await execFileAsync("ip", ["-n", HUB_NETNS, "route", "del", `${h.meshIp}/32`]).catch(() => {});
    }
    assert.equal(await received(), receivedBefore, "nothing reached the mesh socket");
  });

  it("an evicted node never holds the next epoch's key; every remaining node refuses it at once", async () => {
    const remaining = state.nodes.filter((n) => ["node1", "node2", "node3"].includes(n.name));
    const refusalMs: number[] = [];
    const viewMs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await cli(["devnet", "add-node", "--json", "--timeout", "180"]);
      state = await devnetState();
      const evicted = state.nodes.at(-1)!;
      const { epoch } = await currentCsk();
      await eventually(
        `round ${round}: every node healthy on epoch ${epoch}`,
        async () => {
          for (const n of [...remaining, evicted]) if (!(await holds(n, epoch))) return false;
          return true;
        },
        120_000,
      );
      const eh = await health(evicted);
      const evictedId = BigInt(eh.memberId!);
      const targets = await Promise.all(
        remaining.map(async (n) => {
          const h = await health(n);
          return { node: n, id: BigInt(h.memberId!), ip: h.meshIp! };
        }),
      );
      const next = epoch + 1n;

      // Sample the evicted node's own report every 20 ms from now until it has left.
      const samples: Health[] = [];
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const h = await health(evicted).catch(() => undefined);
          if (h) samples.push(h);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      // The evicted member's real key asks every remaining node for the next epoch, through its WireGuard,
      // a fresh request per target every 50 ms (its unmodified sidecar does not: it sees the eviction).
      const key = await nodeSigningKey(evicted);
      const probe = sender(evicted.netns);
      children.push(probe);
      const asking = setInterval(() => {
        for (const t of targets) {
          const d = encodeRequest(
            {
              chainId: state.chainId,
              cluster: state.diamond,
              requesterId: evictedId,
              serverId: t.id,
              epoch: next,
              timestampMs: BigInt(Date.now()),
              nonce: randomBytes(16),
            },
            key.sign,
          );
          probe.stdin?.write(`${t.ip} ${Buffer.from(d).toString("hex")}\n`);
        }
      }, 50);
      const departed = () =>
        Promise.all(
          targets.map((t) => metricOf(t.node, "attestmesh_csk_requests_total", 'outcome="departed"')),
        );
      const before = await departed();
      try {
        // T0: the first moment the eviction is at the head.
        const evicting = cli(["devnet", "evict", evicted.name]);
        evicting.catch(() => {});
        const t0 = await eventually(
          "the eviction at the head",
          async () => {
            const m = await client.readContract({
              address: state.diamond,
              abi: clusterAbi,
              functionName: "member",
              args: [evictedId],
            });
            return m.status === 3 ? performance.now() : undefined;
          },
          60_000,
          10,
        );
        const refused = firstRises(before, t0);
        await eventually(
          "every remaining node to refuse the evicted member",
          async () => refused.see(await departed()),
          30_000,
          10,
        );
        refusalMs.push(refused.last());
        // The probe shares the evicted node's source address and so its rate-limit buckets: stop it.
        clearInterval(asking);
        await evicting;
        await eventually(
          "every remaining node's confirmed view to drop it",
          async () => {
            for (const t of targets)
              if ((await health(t.node)).peers.some((p) => p.memberId === eh.memberId)) return false;
            return true;
          },
          60_000,
        );
        viewMs.push(performance.now() - t0);
        await eventually(
          "the next epoch held by the remaining nodes",
          async () => {
            const c = await currentCsk();
            if (c.epoch !== next || c.commitment === zeroHash) return false;
            for (const n of remaining) if (!(await holds(n, next))) return false;
            return true;
          },
          120_000,
        );
        await eventually(
          "the evicted node to leave",
          async () => (await health(evicted)).memberId === null,
          60_000,
        );
      } finally {
        clearInterval(asking);
        probe.kill("SIGKILL");
        key.destroy();
        sampling = false;
        await sampler;
      }
      assert.ok(samples.length > 20, `round ${round}: ${samples.length} samples`);
      const bad = samples.find((s) => s.cskEpoch !== null && BigInt(s.cskEpoch) >= next);
      assert.equal(bad, undefined, `round ${round}: the evicted node reported epoch ${bad?.cskEpoch}`);
    }
    process.stderr.write(
      `# eviction at the head -> every remaining node refuses the evicted member (devnet, confirmations 2): median ${median(refusalMs).toFixed(0)} ms of ${refusalMs.map((m) => m.toFixed(0)).join(", ")}\n` +
        `# the confirmed views (head − 2) dropped it after: median ${median(viewMs).toFixed(0)} ms\n`,
    );
  });
});
