// End to end: a devnet cluster whose compose pins dstack guest API v1 (`devnet up --guest-api v1`).
// Every node derives its keys from /v1/GetKey and registers with a v1 chain the cluster contract
// accepts; the indexer proves its key with a v1 chain and quotes through /v1/Attest. The keys are the
// v1 keys, not the v0 keys the same simulators also serve. Needs root and /dev/net/tun, like every
// devnet test.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createKmsRoot, createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { readState } from "@attestmesh/devnet/orchestration/state.ts";
import { WIREGUARD_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { wireguardKeyPair } from "@attestmesh/sidecar/wireguard/keys.ts";
import { hexToBytes } from "viem";
import { cli, devnetSkip } from "./helpers/devnet.ts";

interface NodeEntry {
  name: string;
  appId: string;
  memberId: string | null;
  meshIp: string | null;
  wgPublicKey: string | null;
  phase: string;
}

describe("a guest API v1 cluster end to end", { skip: devnetSkip }, () => {
  let nodes: NodeEntry[] = [];

  before(async () => {
    const status = JSON.parse(
      // Funded keys: what is under test is the guest API, not the sponsorship stack.
      await cli(["devnet", "up", "--detach", "--json", "--nodes", "2", "--funded-keys", "--guest-api", "v1"]),
    ) as { nodes: NodeEntry[] };
    nodes = status.nodes;
  });

  after(async () => {
    await cli(["devnet", "down"]).catch(() => {});
  });

  it("brings both nodes to healthy, registered with distinct mesh IPs", () => {
    assert.equal(nodes.length, 2);
    for (const node of nodes) {
      assert.equal(node.phase, "healthy", `${node.name} is ${node.phase}`);
      assert.notEqual(node.memberId, null, `${node.name} is a member`);
    }
    assert.equal(new Set(nodes.map((n) => n.meshIp)).size, 2);
  });

  it("each node's registered WireGuard key is its v1 key, not its v0 key", async () => {
    const state = await readState();
    assert.equal(state?.guestApi, "v1");
    for (const node of nodes) {
      const cvm = createSimulatedCvm({
        kmsRoot: createKmsRoot(),
        appId: hexToBytes(node.appId as `0x${string}`),
      });
      const v1 = wireguardKeyPair(cvm.getKeyV1(WIREGUARD_KEY.purpose, WIREGUARD_KEY.algorithm).key);
      const v0 = wireguardKeyPair(
        cvm.getKey(WIREGUARD_KEY.path, WIREGUARD_KEY.purpose, WIREGUARD_KEY.algorithm).key,
      );
      assert.equal(node.wgPublicKey, v1.publicKeyBase64, node.name);
      assert.notEqual(node.wgPublicKey, v0.publicKeyBase64);
    }
  });

  it("the indexer registered with a v1 chain", async () => {
    const state = await readState();
    assert.ok(state?.indexer, "the devnet runs an indexer");
    const health = (await (await fetch(state.indexer.healthUrl)).json()) as {
      registration: { guestApiVersion: number };
    };
    assert.equal(health.registration.guestApiVersion, 1);
  });
});
