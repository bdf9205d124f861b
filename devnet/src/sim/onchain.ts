// N members registered on a real chain, for the simulator: the cluster diamond deployed on an in-process
// Hardhat network (test/helpers/cluster.ts, as the contract tests and devnet/bench/reconcile-scale.ts
// do), N dstack-simulated CVMs whose keys carry their KMS signature chains, each app id allowed by the
// owner and each member registered with its proof, then every record read back through the sidecar's
// own quorum reads and cluster reader (chain/reads.ts, chain/cluster.ts). The simulator then runs on
// those records and on the key secrets the CVMs derived.
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { IDENTITY_KEY, WIREGUARD_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { createClusterReader } from "@attestmesh/sidecar/chain/cluster.ts";
import { readsOver } from "@attestmesh/sidecar/testing/helpers.ts";
import { wireguardKeyPair } from "@attestmesh/sidecar/wireguard/keys.ts";
import { type Address, bytesToHex, custom, encodeFunctionData, type Hex, toHex } from "viem";
import { setupCluster, signRegistration, simulatedNode } from "../../../test/helpers/cluster.ts";
import type { HardhatCluster } from "./hardhatChain.ts";
import type { RosterEntry } from "./liveness.ts";

/** Explicit gas limits, so the chain does not estimate each bulk transaction first. */
const ADD_APP_ID_GAS = 200_000n;
const REGISTER_GAS = 3_000_000n;
/** Transactions in flight at once; the chain mines each in its own block as it arrives. */
const SEND_CONCURRENCY = 50;

export interface OnchainRoster {
  readonly roster: readonly RosterEntry[];
  readonly chainId: number;
  readonly cluster: Address;
  /** Wall ms spent deriving keys, registering, and reading the records back. */
  readonly keysMs: number;
  readonly registerMs: number;
  readonly readMs: number;
  /** The node itself, for the CSK simulator's chain side (hardhatChain.ts). */
  readonly hardhat: HardhatCluster;
  close(): Promise<void>;
}

/** Deploys a cluster on an in-process Hardhat network and registers `members` members on it. */
export async function registerOnchain(
  members: number,
  progress: (line: string) => void = () => {},
): Promise<OnchainRoster> {
  const fx = await setupCluster();
  const [, relayerWallet] = await fx.viem.getWalletClients();
  const relayer = relayerWallet!.account.address;
  const request = (method: string, params: unknown[]) => fx.connection.provider.request({ method, params });

  const t0 = performance.now();
  const nodes = Array.from({ length: members }, () => simulatedNode(fx.kmsRoot));
  const signatures = await Promise.all(nodes.map((node) => signRegistration(fx, node, { nonce: 0n })));
  const keysMs = performance.now() - t0;
  progress(`derived ${members} simulated CVMs' keys in ${Math.round(keysMs)} ms`);

  const sendAll = async (build: (i: number) => { from: Address; data: Hex; gas: bigint }) => {
    let next = 0;
    const worker = async () => {
      while (next < members) {
        const tx = build(next++);
        await request("eth_sendTransaction", [
          { from: tx.from, to: fx.deployed.diamond, data: tx.data, gas: toHex(tx.gas) },
        ]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(SEND_CONCURRENCY, members) }, worker));
  };
  const t1 = performance.now();
  await sendAll((i) => ({
    from: fx.ownerAddress,
    data: encodeFunctionData({ abi: clusterAbi, functionName: "addAppId", args: [nodes[i]!.appId] }),
    gas: ADD_APP_ID_GAS,
  }));
  // One at a time, so member ids follow the nodes' order.
  for (let i = 0; i < members; i++) {
    const node = nodes[i]!;
    await request("eth_sendTransaction", [
      {
        from: relayer,
        to: fx.deployed.diamond,
        data: encodeFunctionData({
          abi: clusterAbi,
          functionName: "register",
          args: [node.proof, node.wireguardKey, node.identityKey, node.claims, signatures[i]!],
        }),
        gas: toHex(REGISTER_GAS),
      },
    ]);
    if ((i + 1) % 250 === 0) progress(`registered ${i + 1}/${members}`);
  }
  const registerMs = performance.now() - t1;
  progress(`registered ${members} members (${2 * members} transactions) in ${Math.round(registerMs)} ms`);

  const t2 = performance.now();
  const reader = createClusterReader(
    readsOver(custom(fx.connection.provider, { retryCount: 0 })),
    fx.deployed.diamond,
  );
  const records = await reader.allMembers();
  const readMs = performance.now() - t2;
  progress(
    `read ${records.size} member records back through the sidecar's reader in ${Math.round(readMs)} ms`,
  );

  const roster: RosterEntry[] = [];
  for (let i = 0; i < members; i++) {
    const node = nodes[i]!;
    const record = records.get(BigInt(i + 1));
    if (
      record === undefined ||
      record.status !== "active" ||
      record.appId.toLowerCase() !== node.appId.toLowerCase()
    )
      throw new Error(`member ${i + 1} on chain is not the node registered ${i + 1}th`);
    const wireguard = node.cvm.getKey(WIREGUARD_KEY.path, WIREGUARD_KEY.purpose, "ed25519").key;
    roster.push({
      record,
      identitySeed: node.cvm.getKey(IDENTITY_KEY.path, IDENTITY_KEY.purpose, "ed25519").key,
      wireguard: wireguardKeyPair(Uint8Array.from(wireguard)),
    });
  }
  return {
    roster,
    chainId: fx.chainId,
    cluster: fx.deployed.diamond,
    keysMs,
    registerMs,
    readMs,
    hardhat: {
      provider: fx.connection.provider,
      chainId: fx.chainId,
      cluster: fx.deployed.diamond,
      owner: fx.ownerAddress,
      relayer,
      memberKeys: nodes.map((node) => bytesToHex(node.memberSecret)),
    },
    close: () => fx.connection.close(),
  };
}
