// Shared set-up for contract tests: an in-process Hardhat network with a deployed cluster, and
// simulated dstack nodes whose key chains the cluster can verify.

import { randomBytes } from "node:crypto";
import { simulatedNodeKeys } from "@attestmesh/devnet/dstack-sim/node.ts";
import {
  type CvmIdentityOptions,
  createKmsRoot,
  createSimulatedCvm,
  DEFAULT_APP_COMPOSE,
  type KmsRoot,
} from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { deployCluster } from "@attestmesh/scripts/deploy/cluster.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { sha256 } from "@noble/hashes/sha2";
import { network } from "hardhat";
import {
  type Address,
  bytesToHex,
  getAddress,
  getContract,
  type Hex,
  hexToBytes,
  keccak256,
  toHex,
} from "viem";

export const MESH_CIDR = "10.77.0.0/16";

/** The compose hash a simulated CVM reports unless told otherwise: sha256 of the simulator's default compose. */
export const SIMULATED_COMPOSE_HASH = toHex(sha256(new TextEncoder().encode(DEFAULT_APP_COMPOSE)));

/** What a default simulated CVM states at registration: its compose hash and device id. */
export const SIMULATED_CLAIMS = {
  composeHash: SIMULATED_COMPOSE_HASH,
  deviceId: keccak256(toHex("attestmesh simulated device")),
} as const;

/**
 * `openPolicy` (default true) allows the simulator's default compose hash and any device, so nodes
 * built by `simulatedNode` may register; a test of the policy's initial state passes false.
 */
export async function setupCluster(
  options: { meshCidr?: string; kmsRoots?: Address[]; openPolicy?: boolean } = {},
) {
  const connection = await network.create();
  const { viem } = connection;
  const publicClient = await viem.getPublicClient();
  const [ownerWallet, relayerWallet, strangerWallet] = await viem.getWalletClients();
  const kmsRoot = createKmsRoot();
  const deployed = await deployCluster({
    wallet: ownerWallet!,
    client: publicClient,
    params: {
      owner: ownerWallet!.account.address,
      meshCidr: options.meshCidr ?? MESH_CIDR,
      kmsRoots: options.kmsRoots ?? [kmsRoot.address],
    },
  });
  const contractFor = (wallet: typeof ownerWallet) =>
    getContract({
      address: deployed.diamond,
      abi: clusterAbi,
      client: { public: publicClient, wallet: wallet! },
    });
  const chainId = await publicClient.getChainId();
  const owner = contractFor(ownerWallet);
  if (options.openPolicy ?? true) {
    for (const hash of [
      await owner.write.addComposeHash([SIMULATED_COMPOSE_HASH]),
      await owner.write.setAllowAnyDevice([true]),
    ]) {
      await publicClient.waitForTransactionReceipt({ hash });
    }
  }
  return {
    connection,
    viem,
    publicClient,
    kmsRoot,
    deployed,
    chainId,
    owner,
    relayer: contractFor(relayerWallet),
    stranger: contractFor(strangerWallet),
    ownerAddress: ownerWallet!.account.address,
    strangerAddress: strangerWallet!.account.address,
  };
}

export type ClusterFixture = Awaited<ReturnType<typeof setupCluster>>;

/** A simulated node: its dstack chain for the member key, and its WireGuard and identity keys. */
export function simulatedNode(
  kmsRoot: KmsRoot,
  appId: Address = randomAppId(),
  cvmIdentity: CvmIdentityOptions = {},
) {
  const cvm = createSimulatedCvm({ ...cvmIdentity, kmsRoot, appId: hexToBytes(appId) });
  const info = cvm.info();
  return {
    appId,
    cvm,
    ...simulatedNodeKeys(appId, cvm),
    /** What the node states at registration, as its guest agent's Info reports it. */
    claims: { composeHash: bytesToHex(info.composeHash), deviceId: bytesToHex(info.deviceId) },
  };
}

export type SimulatedNode = ReturnType<typeof simulatedNode>;

export function randomAppId(): Address {
  return getAddress(bytesToHex(randomBytes(20)));
}

export async function signRegistration(
  fx: { readonly chainId: number; readonly deployed: { readonly diamond: Address } },
  node: Pick<SimulatedNode, "memberAccount" | "appId" | "wireguardKey" | "identityKey" | "claims">,
  overrides: {
    nonce?: bigint;
    wireguardKey?: Hex;
    identityKey?: Hex;
    composeHash?: Hex;
    deviceId?: Hex;
    chainId?: number;
    cluster?: Address;
  } = {},
): Promise<Hex> {
  return node.memberAccount.signTypedData({
    domain: memberDomain(overrides.chainId ?? fx.chainId, overrides.cluster ?? fx.deployed.diamond),
    types: memberTypes,
    primaryType: "Register",
    message: {
      appId: node.appId,
      wireguardKey: overrides.wireguardKey ?? node.wireguardKey,
      identityKey: overrides.identityKey ?? node.identityKey,
      composeHash: overrides.composeHash ?? node.claims.composeHash,
      deviceId: overrides.deviceId ?? node.claims.deviceId,
      nonce: overrides.nonce ?? 0n,
    },
  });
}

/**
 * Allow the node's app id and register it through the relayer; returns the member id. On a cluster
 * whose policy does not admit the node's claims yet (`openPolicy: false`), its compose hash and device
 * are allowed first.
 */
export async function admit(fx: ClusterFixture, node: SimulatedNode): Promise<bigint> {
  if (!(await fx.owner.read.isComposeHashAllowed([node.claims.composeHash]))) {
    await fx.owner.write.addComposeHash([node.claims.composeHash]);
  }
  if (
    !(await fx.owner.read.allowAnyDevice()) &&
    !(await fx.owner.read.isDeviceAllowed([node.claims.deviceId]))
  ) {
    await fx.owner.write.addDevice([node.claims.deviceId]);
  }
  await fx.owner.write.addAppId([node.appId]);
  const nonce = await fx.owner.read.registrationNonce([node.appId]);
  const signature = await signRegistration(fx, node, { nonce });
  const hash = await fx.relayer.write.register([
    node.proof,
    node.wireguardKey,
    node.identityKey,
    node.claims,
    signature,
  ]);
  await fx.publicClient.waitForTransactionReceipt({ hash });
  const [memberId] = await fx.owner.read.memberOfApp([node.appId]);
  return memberId;
}

/** A simulated node admitted to the cluster, and its member id. */
export interface AdmittedNode {
  readonly node: SimulatedNode;
  readonly id: bigint;
}

/** A fresh simulated node (on a CVM with `cvmIdentity`, if given) admitted by `admit`. */
export async function admitNewNode(
  fx: ClusterFixture,
  cvmIdentity: CvmIdentityOptions = {},
): Promise<AdmittedNode> {
  const node = simulatedNode(fx.kmsRoot, undefined, cvmIdentity);
  return { node, id: await admit(fx, node) };
}

/** The node's member leaves (its member key signs Leave; the relayer sends it). */
export async function leave(fx: ClusterFixture, node: SimulatedNode, memberId: bigint): Promise<void> {
  const signature = await node.memberAccount.signTypedData({
    domain: memberDomain(fx.chainId, fx.deployed.diamond),
    types: memberTypes,
    primaryType: "Leave",
    message: { memberId },
  });
  await fx.publicClient.waitForTransactionReceipt({
    hash: await fx.relayer.write.leaveCluster([memberId, signature]),
  });
}

export function commitmentOf(csk: Uint8Array): Hex {
  return keccak256(csk);
}

export { toHex };
