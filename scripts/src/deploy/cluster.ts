// Deploys a cluster diamond: every facet, the member-app implementation, the initializer, and the
// diamond itself with one cut that routes every facet function and initializes the cluster.

import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { type MeshCidr, parseMeshCidr } from "@attestmesh/shared/mesh/cidr.ts";
import {
  type AbiFunction,
  type Account,
  type Address,
  type Chain,
  encodeFunctionData,
  type Hex,
  type PublicClient,
  type Transport,
  toFunctionSelector,
  type WalletClient,
} from "viem";
import { type ContractArtifact, DEFAULT_ARTIFACTS_DIR, readArtifact } from "./artifacts.ts";

export const FACETS = [
  "DiamondCutFacet",
  "DiamondLoupeFacet",
  "OwnershipFacet",
  "PolicyFacet",
  "DstackAttestorFacet",
  "MembershipFacet",
  "CskFacet",
  "MessagesFacet",
  "IndexerRegistryFacet",
  "MemberAppsFacet",
] as const;

export type FacetName = (typeof FACETS)[number];

export interface ClusterParams {
  readonly owner: Address;
  readonly meshCidr: string | MeshCidr;
  readonly kmsRoots: readonly Address[];
}

export interface DeployedCluster {
  readonly diamond: Address;
  readonly facets: Readonly<Record<FacetName, Address>>;
  readonly memberAppImplementation: Address;
  readonly clusterInit: Address;
  readonly deployBlock: bigint;
}

type Wallet = WalletClient<Transport, Chain | undefined, Account>;

/** Every external function of a facet, as the selectors the diamond routes to it. */
export function facetSelectors(artifact: ContractArtifact): Hex[] {
  return artifact.abi
    .filter((item): item is AbiFunction => item.type === "function")
    .map((fn) => toFunctionSelector(fn));
}

async function deploy(
  wallet: Wallet,
  client: PublicClient,
  artifact: ContractArtifact,
  args: unknown[] = [],
) {
  const hash = await wallet.deployContract({
    abi: artifact.abi,
    bytecode: artifact.bytecode,
    args,
    account: wallet.account,
    chain: wallet.chain,
  });
  const receipt = await client.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success" || !receipt.contractAddress) {
    throw new AttestmeshError(`deploying ${artifact.contractName} failed in transaction ${hash}`, {
      code: "DeployFailed",
    });
  }
  return { address: receipt.contractAddress, blockNumber: receipt.blockNumber };
}

export async function deployCluster(options: {
  wallet: Wallet;
  client: PublicClient;
  params: ClusterParams;
  artifactsDir?: string;
}): Promise<DeployedCluster> {
  const { wallet, client, params } = options;
  const artifactsDir = options.artifactsDir ?? DEFAULT_ARTIFACTS_DIR;
  const mesh = typeof params.meshCidr === "string" ? parseMeshCidr(params.meshCidr) : params.meshCidr;

  const facets = {} as Record<FacetName, Address>;
  const cuts: Array<{ facetAddress: Address; action: number; functionSelectors: Hex[] }> = [];
  for (const name of FACETS) {
    const artifact = await readArtifact(name, artifactsDir);
    const { address } = await deploy(wallet, client, artifact);
    facets[name] = address;
    cuts.push({ facetAddress: address, action: 0, functionSelectors: facetSelectors(artifact) });
  }
  const memberApp = await deploy(wallet, client, await readArtifact("MemberApp", artifactsDir));
  const initArtifact = await readArtifact("ClusterInit", artifactsDir);
  const init = await deploy(wallet, client, initArtifact);
  const initCalldata = encodeFunctionData({
    abi: initArtifact.abi,
    functionName: "init",
    args: [
      {
        meshBase: mesh.base,
        prefixLength: mesh.prefixLength,
        kmsRoots: [...params.kmsRoots],
        memberAppImplementation: memberApp.address,
      },
    ],
  });
  const diamond = await deploy(wallet, client, await readArtifact("Diamond", artifactsDir), [
    params.owner,
    cuts,
    init.address,
    initCalldata,
  ]);
  return {
    diamond: diamond.address,
    facets,
    memberAppImplementation: memberApp.address,
    clusterInit: init.address,
    deployBlock: diamond.blockNumber,
  };
}
