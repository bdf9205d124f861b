// The devnet's chain side: clients for the local Hardhat node, deployment, and the owner's
// allowlist calls a real cluster owner would make with the CLI.

import { deployCluster } from "@attestmesh/scripts/deploy/cluster.ts";
import { clusterContext } from "@attestmesh/scripts/owner/context.ts";
import { evictPlan } from "@attestmesh/scripts/owner/members.ts";
import { transact } from "@attestmesh/scripts/owner/transact.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import type { GuestApi, PinnedTrust } from "@attestmesh/shared/service/pinned.ts";
import {
  type Address,
  createPublicClient,
  createTestClient,
  createWalletClient,
  defineChain,
  getAddress,
  getContract,
  type Hex,
  http,
  keccak256,
  parseEventLogs,
  toHex,
  zeroHash,
} from "viem";
import { devnetAccount } from "./accounts.ts";

export function devnetClients(rpcUrl: string, chainId: number) {
  const chain = defineChain({
    id: chainId,
    name: "attestmesh devnet",
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
  const transport = http(rpcUrl);
  const client = createPublicClient({ chain, transport });
  const owner = createWalletClient({ chain, transport, account: devnetAccount(0) });
  const test = createTestClient({ chain, transport, mode: "hardhat" });
  return { client, owner, test };
}

export type DevnetClients = ReturnType<typeof devnetClients>;

export function clusterContract(clients: DevnetClients, diamond: Address) {
  return getContract({
    address: diamond,
    abi: clusterAbi,
    client: { public: clients.client, wallet: clients.owner },
  });
}

async function confirm(clients: DevnetClients, hash: Hex) {
  const receipt = await clients.client.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`devnet transaction ${hash} reverted`);
  return receipt;
}

export async function deployDevnetCluster(
  clients: DevnetClients,
  options: {
    kmsRoot: Address;
    meshCidr: string;
    /** The nodes' compose hash; their compose pins the cluster, so it is known only once deployed. */
    composeHash: (diamond: Address) => Promise<Hex>;
  },
) {
  const deployed = await deployCluster({
    wallet: clients.owner,
    client: clients.client,
    params: { owner: clients.owner.account.address, meshCidr: options.meshCidr, kmsRoots: [options.kmsRoot] },
  });
  const cluster = clusterContract(clients, deployed.diamond);
  // The nodes' compose, for the node role (dstack's role-less call); the indexer allows its own.
  await confirm(clients, await cluster.write.addComposeHash([await options.composeHash(deployed.diamond)]));
  await confirm(clients, await cluster.write.setAllowAnyDevice([true]));
  return deployed;
}

/** A node's app contract from the cluster's factory; its address is the node's dstack app id. */
/** A devnet node's member-app salt: fixed per name, so its app id is known before it joins (each devnet
 * deploys a fresh cluster, and node names are never reused within one). */
export function memberAppSalt(nodeName: string): Hex {
  return keccak256(toHex(`attestmesh devnet ${nodeName}`));
}

/** The app id `createMemberApp` will give the node named `nodeName`. */
export async function predictMemberAppId(
  clients: DevnetClients,
  diamond: Address,
  nodeName: string,
): Promise<Address> {
  return clusterContract(clients, diamond).read.predictMemberApp([memberAppSalt(nodeName)]);
}

export async function createMemberApp(
  clients: DevnetClients,
  diamond: Address,
  nodeName: string,
): Promise<Address> {
  const cluster = clusterContract(clients, diamond);
  const salt = memberAppSalt(nodeName);
  // An add-node that failed after this step left the app behind; a retry under the same name reuses it.
  const predicted = await cluster.read.predictMemberApp([salt]);
  if (await cluster.read.isMemberApp([predicted])) return predicted;
  const receipt = await confirm(clients, await cluster.write.createMemberApp([salt]));
  const [created] = parseEventLogs({ abi: clusterAbi, logs: receipt.logs, eventName: "MemberAppCreated" });
  if (!created) throw new Error("createMemberApp emitted no MemberAppCreated");
  return created.args.app;
}

/**
 * Evicts the active member of `appId` as the cluster owner would with `attestmesh evict`: the same plan
 * and transaction path (owner/members.ts, owner/transact.ts), signed by the devnet's owner account.
 */
export async function evictApp(clients: DevnetClients, diamond: Address, appId: Address, reason: number) {
  const rpcUrl = clients.client.chain.rpcUrls.default.http[0];
  const quiet = { write: () => true };
  const ctx = await clusterContext(
    { stdout: quiet, stderr: quiet, interactive: false, env: {} },
    { rpc: rpcUrl, cluster: diamond, json: true },
  );
  const plan = await evictPlan(ctx, { appId }, reason);
  await transact(ctx, plan, { yes: true }, devnetAccount(0));
  return plan.args[0] as bigint;
}

/** The cluster's current CSK epoch: its number, commitment and committer. */
export async function currentCsk(clients: DevnetClients, diamond: Address) {
  const [epoch, commitment, committer] = await clients.client.readContract({
    address: diamond,
    abi: clusterAbi,
    functionName: "currentCsk",
  });
  return { epoch, commitment, committer };
}

/** Revokes a device as the devnet's owner account, and waits for the transaction to be mined. */
export async function revokeDevice(clients: DevnetClients, diamond: Address, deviceId: Hex): Promise<void> {
  await confirm(clients, await clusterContract(clients, diamond).write.revokeDevice([deviceId, zeroHash]));
}

/** Allows (or withdraws) a node compose hash, as the owner: a node of its own compose joins, or is cut off. */
export async function setComposeHashAllowed(
  clients: DevnetClients,
  diamond: Address,
  composeHash: Hex,
  allowed: boolean,
): Promise<void> {
  const cluster = clusterContract(clients, diamond);
  await confirm(
    clients,
    await (allowed
      ? cluster.write.addComposeHash([composeHash])
      : cluster.write.removeComposeHash([composeHash])),
  );
}

/** Give a devnet account 1,000 ETH (Hardhat's `hardhat_setBalance`; development chains only). */
export async function fundAccount(clients: DevnetClients, address: Address): Promise<void> {
  await clients.test.setBalance({ address, value: 10n ** 21n });
}

/**
 * The trust values a devnet CVM's compose pins: the devnet's chain id, cluster, member-app
 * implementation (read once from the cluster), KMS root, RPC host and guest API.
 */
export async function devnetTrust(
  clients: DevnetClients,
  state: {
    readonly chainId: number;
    readonly diamond: Address;
    readonly kmsRoot: Address;
    readonly rpcUrl: string;
    /** The guest API the devnet's compose pins; default v0. */
    readonly guestApi?: GuestApi | undefined;
  },
): Promise<PinnedTrust> {
  const implementation = await clusterContract(clients, state.diamond).read.memberAppImplementation();
  return {
    chainId: state.chainId,
    cluster: getAddress(state.diamond),
    memberAppImplementation: getAddress(implementation),
    kmsRoots: [getAddress(state.kmsRoot)],
    guestApi: state.guestApi ?? "v0",
  };
}
