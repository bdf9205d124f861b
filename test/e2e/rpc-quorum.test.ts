// End to end: every devnet sidecar reads the chain through three pinned providers (the Hardhat node and
// the devnet's two pass-through proxies), quorum 2. One proxy lies — injects a member, then hides an
// eviction — and then goes down: at every sample no node has a peer that is not a member, the eviction
// takes effect on every remaining node, the lie shows in the nodes' logs and metrics, and the nodes keep
// working with the liar down. Needs root and /dev/net/tun like devnet.test.ts; run it under the lock.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FAKE_MEMBER } from "@attestmesh/devnet/rpc-proxy/lies.ts";
import { setProxyBehaviour } from "@attestmesh/devnet/rpc-proxy/proxy.ts";
import { hexToWgBase64 } from "@attestmesh/sidecar/wireguard/keys.ts";
import { createWalletClient, defineChain, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { cli, devnetSkip, eventually, inNetns, ROOT } from "./helpers/devnet.ts";

interface StateNode {
  name: string;
  netns: string;
  appId: string;
  healthUrl: string;
  sidecarPid: number;
  logDir: string;
  wgInterface?: string;
}
interface State {
  rpcUrl: string;
  chainId: number;
  nodes: StateNode[];
  rpcProxies?: { url: string; pid: number }[];
}
interface Health {
  phase: string;
  memberId: string | null;
  peers: { memberId: string }[];
}

/** Hardhat development account #0 (the devnet's owner); only used to make new blocks. */
const OWNER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

const readState = async () => JSON.parse(await readFile(join(ROOT, ".devnet/state.json"), "utf8")) as State;
const health = async (n: StateNode) =>
  (await (await fetch(n.healthUrl, { signal: AbortSignal.timeout(3000) })).json()) as Health;
const metrics = async (n: StateNode) =>
  (await fetch(n.healthUrl.replace("/healthz", "/metrics"), { signal: AbortSignal.timeout(3000) })).text();
const sumOf = (text: string, name: string) =>
  text
    .split("\n")
    .filter((l) => l.startsWith(`${name}{`))
    .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0);

describe("chain reads cross-checked across providers, one lying, on the devnet", { skip: devnetSkip }, () => {
  let state: State;
  let liarUrl: string;
  const violations: string[] = [];
  let sampling = false;
  let sampler: Promise<void> | undefined;

  const wgPeers = async (n: StateNode, index: number) =>
    (await inNetns(n.netns, "wg", ["show", n.wgInterface ?? `attestmesh${index}`, "peers"])).stdout
      .split("\n")
      .filter((l) => l.trim() !== "");
  const newBlock = async () => {
    const chain = defineChain({
      id: state.chainId,
      name: "devnet",
      nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
      rpcUrls: { default: { http: [state.rpcUrl] } },
    });
    const wallet = createWalletClient({ account: privateKeyToAccount(OWNER_KEY), chain, transport: http() });
    await wallet.sendTransaction({ to: wallet.account.address, value: 0n });
  };

  before(async () => {
    await cli(["devnet", "up", "--detach", "--json", "--nodes", "3"]);
    state = await readState();
    assert.equal(state.rpcProxies?.length, 2, "the devnet runs two RPC proxies beside Hardhat");
    liarUrl = state.rpcProxies![1]!.url;
    const fake = hexToWgBase64(FAKE_MEMBER.wireguardKey);
    sampling = true;
    sampler = (async () => {
      while (sampling) {
        for (const [i, n] of state.nodes.entries()) {
          try {
            const h = await health(n);
            if (h.peers.some((p) => p.memberId === FAKE_MEMBER.memberId.toString()))
              violations.push(`${n.name} reports the injected member as a peer`);
            if ((await wgPeers(n, i + 1)).includes(fake))
              violations.push(`${n.name} has the fake WireGuard peer`);
          } catch {
            // a node being evicted or restarting: not a violation by itself
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
  });

  after(async () => {
    sampling = false;
    await sampler;
    await cli(["devnet", "down"]).catch(() => {});
  });

  it("the sidecars read through every pinned provider (the quorum path is what the devnet runs)", async () => {
    let hashAgreements = 0;
    for (const proxy of state.rpcProxies!) {
      const stats = (await (await fetch(new URL("/__proxy/stats", proxy.url))).json()) as {
        calls: Record<string, number>;
      };
      const calls = Object.values(stats.calls).reduce((a, b) => a + b, 0);
      assert.ok((stats.calls.eth_blockNumber ?? 0) > 0, `${proxy.url} is asked for the head`);
      assert.ok(calls > (stats.calls.eth_blockNumber ?? 0), `${proxy.url} served reads beyond the head`);
      hashAgreements += stats.calls.eth_getBlockByNumber ?? 0;
    }
    // The agreed block's hash is remembered while the head stands still, so not every provider need have
    // been asked for it at rest; but the reads were pinned to agreed hashes.
    assert.ok(hashAgreements > 0, "block-hash agreements were made");
    for (const n of state.nodes) assert.equal((await health(n)).phase, "healthy");
  });

  it("a provider injecting a member is outvoted: no node ever peers with it, and the lie is counted", async () => {
    await setProxyBehaviour(liarUrl, { behaviour: "inject-member" });
    await eventually(
      "a node to count a disagreement",
      async () => {
        await newBlock();
        const counts = await Promise.all(
          state.nodes.map(async (n) => sumOf(await metrics(n), "attestmesh_rpc_disagreements_total")),
        );
        return counts.some((c) => c > 0);
      },
      60_000,
      500,
    );
    for (const n of state.nodes) assert.equal((await health(n)).phase, "healthy", `${n.name} kept working`);
    assert.deepEqual(violations, []);
  });

  it("a provider hiding an eviction is outvoted: every remaining node drops the evicted one", async () => {
    await setProxyBehaviour(liarUrl, { behaviour: "hide-eviction" });
    const evicted = state.nodes[2]!;
    const evictedId = (await health(evicted)).memberId;
    assert.ok(evictedId !== null);
    await cli(["devnet", "evict", evicted.name]);
    await eventually(
      "node1 and node2 to drop the evicted node3",
      async () => {
        for (const n of state.nodes.slice(0, 2)) {
          if ((await health(n)).peers.some((p) => p.memberId === evictedId)) return false;
        }
        return true;
      },
      60_000,
    );
    assert.deepEqual(violations, []);
  });

  it("the liar goes down: the two honest providers carry on, and the lie is in the nodes' logs", async () => {
    await setProxyBehaviour(liarUrl, { behaviour: "down" });
    await newBlock();
    await eventually(
      "node1 and node2 healthy with one provider down",
      async () => {
        for (const n of state.nodes.slice(0, 2)) if ((await health(n)).phase !== "healthy") return false;
        return true;
      },
      90_000,
    );
    const logs = await Promise.all(
      state.nodes.slice(0, 2).map((n) => readFile(join(n.logDir, "sidecar.log"), "utf8")),
    );
    assert.ok(
      logs.some((text) => text.includes('"adversarial":true')),
      "a disagreement was logged as adversarial",
    );
    assert.deepEqual(violations, []);
  });
});
