// End to end: a devnet cluster whose compose pins dstack guest API v1 (`devnet up --guest-api v1`).
// Every node derives its keys from /v1/GetKey and registers with a v1 chain the cluster contract
// accepts; the indexer proves its key with a v1 chain and quotes through /v1/Attest. The keys are the
// v1 keys, not the v0 keys the same simulators also serve.
//
// Attacker (the guest API pin): one CVM of an allowed app holds one app key and derives from it a v1 and
// a different v0 member key, both with valid chains from the devnet's pinned KMS root; the contract admits
// either. The attacker registers a genuine member app's v0 key on chain, claiming the devnet's allowed
// compose hash, and sends a node a sealed message signed by it. Sampled every half second for 20 s once
// every node refused it: its WireGuard key is a peer on no node, no node lists it as a peer or delivers its
// message, and every node counted the refusal as GuestApiNotPinned. Needs root and /dev/net/tun, like
// every devnet test.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { simulatedNodeKeys } from "@attestmesh/devnet/dstack-sim/node.ts";
import { createKmsRoot, createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { clusterContract, createMemberApp, devnetClients } from "@attestmesh/devnet/orchestration/chain.ts";
import { readState } from "@attestmesh/devnet/orchestration/state.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { IDENTITY_KEY, WIREGUARD_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { loadSodium } from "@attestmesh/sidecar/meshnet/crypto.ts";
import { sealMessage } from "@attestmesh/sidecar/messages/envelope.ts";
import { wireguardKeyPair } from "@attestmesh/sidecar/wireguard/keys.ts";
import { bytesToHex, hexToBytes, keccak256 } from "viem";
import {
  cli,
  devnetSkip,
  devnetState,
  eventually,
  healthOf,
  latestHandshakes,
  metricOf,
} from "./helpers/devnet.ts";

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
    await loadSodium();
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

  it("attacker: a member registered with its app's v0 key chain is never a WireGuard peer, never listed, its message never delivered; refused as GuestApiNotPinned", async () => {
    const state = await devnetState();
    assert.equal(state.guestApi, "v1", "the devnet pins v1");
    const clients = devnetClients(state.rpcUrl, state.chainId);
    const cluster = clusterContract(clients, state.diamond);
    const confirm = async (hash: `0x${string}`) =>
      assert.equal((await clients.client.waitForTransactionReceipt({ hash })).status, "success");

    // The attacker's CVM: a genuine member app under the devnet's (pinned) KMS root; its v0 keys.
    const appId = await createMemberApp(clients, state.diamond, "guest-api-v0-attacker");
    await confirm(await cluster.write.addAppId([appId]));
    const cvm = createSimulatedCvm({ kmsRoot: createKmsRoot(), appId: hexToBytes(appId) });
    const keys = simulatedNodeKeys(appId, cvm);
    const claims = { composeHash: state.composeHash, deviceId: bytesToHex(cvm.info().deviceId) };
    const nonce = await cluster.read.registrationNonce([appId]);
    const signature = await keys.memberAccount.signTypedData({
      domain: memberDomain(state.chainId, state.diamond),
      types: memberTypes,
      primaryType: "Register",
      message: { appId, wireguardKey: keys.wireguardKey, identityKey: keys.identityKey, ...claims, nonce },
    });
    await confirm(
      await cluster.write.register([keys.proof, keys.wireguardKey, keys.identityKey, claims, signature]),
    );
    const [attackerId, active] = await cluster.read.memberOfApp([appId]);
    assert.ok(active, "the chain admitted the v0 key");

    // A sealed message to the first node, signed by the v0 member key.
    const target = state.nodes[0]!;
    const recipient = await healthOf<{ memberId: string }>(target);
    const recipientId = BigInt(recipient.memberId);
    const { identityKey } = await cluster.read.member([recipientId]);
    const envelopeId = bytesToHex(randomBytes(32));
    const ciphertext = bytesToHex(
      sealMessage(
        {
          header: {
            chainId: BigInt(state.chainId),
            cluster: state.diamond,
            senderId: attackerId,
            recipientId,
            envelopeId,
          },
          payload: new TextEncoder().encode("from a key no sidecar of the pinned compose holds"),
        },
        identityKey,
        cvm.getKey(IDENTITY_KEY.path, IDENTITY_KEY.purpose, "ed25519").key,
      ),
    );
    const sendSignature = await keys.memberAccount.signTypedData({
      domain: memberDomain(state.chainId, state.diamond),
      types: memberTypes,
      primaryType: "Send",
      message: { senderId: attackerId, recipientId, envelopeId, ciphertextHash: keccak256(ciphertext) },
    });
    await confirm(await cluster.write.send([attackerId, recipientId, envelopeId, ciphertext, sendSignature]));

    const attackerWg = Buffer.from(hexToBytes(keys.wireguardKey)).toString("base64");
    let samples = 0;
    const check = async () => {
      samples += 1;
      for (const node of state.nodes) {
        const peers = await latestHandshakes(node.netns, node.wgInterface);
        assert.equal(peers.has(attackerWg), false, `sample ${samples}: ${node.name} peers the v0 key`);
        const health = await healthOf<{ peers?: { memberId: string }[] }>(node);
        assert.ok(
          (health.peers ?? []).every((p) => p.memberId !== attackerId.toString()),
          `sample ${samples}: ${node.name} lists the v0 member as a peer`,
        );
      }
      const metrics = await (
        await fetch(target.healthUrl.replace("/healthz", "/metrics"), { signal: AbortSignal.timeout(3000) })
      ).text();
      const received = metrics.split("\n").find((l) => l.startsWith("attestmesh_messages_received_total "));
      assert.equal(
        received ?? "attestmesh_messages_received_total 0",
        "attestmesh_messages_received_total 0",
        `sample ${samples}: ${target.name} delivered a message`,
      );
    };

    await eventually("every node to refuse the v0 member's certificate", async () => {
      await check();
      for (const node of state.nodes) {
        if ((await metricOf(node, "attestmesh_member_certificates_total", 'result="GuestApiNotPinned"')) < 1)
          return false;
      }
      return true;
    });
    await eventually("the node to drop the v0 member's message", async () => {
      await check();
      return (await metricOf(target, "attestmesh_messages_dropped_total", 'reason="SenderNotVerified"')) >= 1;
    });
    const until = Date.now() + 20_000;
    while (Date.now() < until) {
      await check();
      await delay(500);
    }
    assert.ok(samples > 20, `sampled ${samples} times`);
    for (const node of state.nodes) {
      const health = await healthOf<{ phase: string }>(node);
      assert.equal(health.phase, "healthy", `${node.name} stayed healthy`);
    }
  });
});
