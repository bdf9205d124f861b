// Shared set-up for contract tests: an in-process Hardhat network with a deployed cluster, and
// simulated dstack nodes whose key chains the cluster can verify.

import { randomBytes } from "node:crypto";
import { createKmsRoot, createSimulatedCvm, type KmsRoot } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { deployCluster } from "@attestmesh/scripts/deploy/cluster.ts";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import { derivedPublicKey } from "@attestmesh/shared/dstack/keychain.ts";
import { IDENTITY_KEY, MEMBER_KEY, WIREGUARD_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { ed25519 } from "@noble/curves/ed25519";
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
import { privateKeyToAccount } from "viem/accounts";

export const MESH_CIDR = "10.77.0.0/16";

export async function setupCluster(options: { meshCidr?: string; kmsRoots?: Address[] } = {}) {
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
  return {
    connection,
    viem,
    publicClient,
    kmsRoot,
    deployed,
    chainId,
    owner: contractFor(ownerWallet),
    relayer: contractFor(relayerWallet),
    stranger: contractFor(strangerWallet),
    ownerAddress: ownerWallet!.account.address,
    strangerAddress: strangerWallet!.account.address,
  };
}

export type ClusterFixture = Awaited<ReturnType<typeof setupCluster>>;

/** A simulated node: its dstack chain for the member key, and its WireGuard and identity keys. */
export function simulatedNode(kmsRoot: KmsRoot, appId: Address = randomAppId()) {
  const cvm = createSimulatedCvm({ kmsRoot, appId: hexToBytes(appId) });
  const member = cvm.getKey(MEMBER_KEY.path, MEMBER_KEY.purpose, "secp256k1");
  const identity = cvm.getKey(IDENTITY_KEY.path, IDENTITY_KEY.purpose, "ed25519");
  const wireguard = cvm.getKey(WIREGUARD_KEY.path, WIREGUARD_KEY.purpose, "ed25519");
  const memberAccount = privateKeyToAccount(bytesToHex(member.key));
  return {
    appId,
    cvm,
    memberAccount,
    memberSecret: member.key,
    proof: {
      appId,
      memberPubkey: bytesToHex(derivedPublicKey(member.key, "secp256k1")),
      appPubkey: bytesToHex(cvm.appPublicKey),
      appSignature: bytesToHex(member.signatureChain[0]),
      kmsSignature: bytesToHex(member.signatureChain[1]),
      guestApiVersion: 0,
    },
    identityKey: bytesToHex(ed25519.getPublicKey(identity.key)),
    /** The identity key's seed: signs the node's sealed messages. */
    identitySecret: identity.key,
    wireguardKey: bytesToHex(derivedPublicKey(wireguard.key, "ed25519")),
  };
}

export type SimulatedNode = ReturnType<typeof simulatedNode>;

export function randomAppId(): Address {
  return getAddress(bytesToHex(randomBytes(20)));
}

export async function signRegistration(
  fx: Pick<ClusterFixture, "chainId" | "deployed">,
  node: SimulatedNode,
  overrides: {
    nonce?: bigint;
    wireguardKey?: Hex;
    identityKey?: Hex;
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
      nonce: overrides.nonce ?? 0n,
    },
  });
}

/** Allow the node's app id and register it through the relayer; returns the member id. */
export async function admit(fx: ClusterFixture, node: SimulatedNode): Promise<bigint> {
  await fx.owner.write.addAppId([node.appId]);
  const nonce = await fx.owner.read.registrationNonce([node.appId]);
  const signature = await signRegistration(fx, node, { nonce });
  const hash = await fx.relayer.write.register([node.proof, node.wireguardKey, node.identityKey, signature]);
  await fx.publicClient.waitForTransactionReceipt({ hash });
  const [memberId] = await fx.owner.read.memberOfApp([node.appId]);
  return memberId;
}

export function commitmentOf(csk: Uint8Array): Hex {
  return keccak256(csk);
}

export { toHex };
