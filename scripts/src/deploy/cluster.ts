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

/** Where a deployment stands for one contract: sent (a transaction hash) or done (an address). */
export interface JournalEntry {
  readonly transactionHash?: Hex;
  readonly address?: Address;
  readonly blockNumber?: bigint;
}

/**
 * Makes a deployment resumable: each contract's transaction is recorded before its receipt is awaited
 * and its address after, so a re-run after a crash picks up every contract already on chain.
 */
export interface DeployJournal {
  get(name: string): JournalEntry | undefined;
  record(name: string, entry: JournalEntry): Promise<void>;
}

export type DeployStepEvent =
  | { readonly kind: "deploying"; readonly name: string }
  | { readonly kind: "deployed"; readonly name: string; readonly address: Address }
  | { readonly kind: "reused"; readonly name: string; readonly address: Address };

/** Every external function of a facet, as the selectors the diamond routes to it. */
export function facetSelectors(artifact: ContractArtifact): Hex[] {
  return artifact.abi
    .filter((item): item is AbiFunction => item.type === "function")
    .map((fn) => toFunctionSelector(fn));
}

export interface DeployContext {
  readonly wallet: Wallet;
  readonly client: PublicClient;
  readonly journal?: DeployJournal | undefined;
  readonly onStep?: ((event: DeployStepEvent) => void) | undefined;
}

async function hasCode(client: PublicClient, address: Address): Promise<boolean> {
  const code = await client.getCode({ address });
  return code !== undefined && code !== "0x";
}

/** Deploys `artifact` once: reused from the journal when it is there, sent and recorded otherwise. */
export async function deployArtifact(ctx: DeployContext, artifact: ContractArtifact, args: unknown[] = []) {
  const { wallet, client, journal } = ctx;
  const name = artifact.contractName;
  const entry = journal?.get(name);
  if (entry?.address !== undefined && entry.blockNumber !== undefined) {
    if (!(await hasCode(client, entry.address))) {
      throw new AttestmeshError(
        `the deploy journal says ${name} is at ${entry.address}, but there is no code there: wrong chain or journal?`,
        { code: "JournalMismatch", details: { name, address: entry.address } },
      );
    }
    ctx.onStep?.({ kind: "reused", name, address: entry.address });
    return { address: entry.address, blockNumber: entry.blockNumber };
  }
  if (entry?.transactionHash !== undefined) {
    // Sent by an earlier run that stopped before its receipt: use it if it landed.
    const receipt = await client
      .waitForTransactionReceipt({ hash: entry.transactionHash, timeout: 60_000 })
      .catch(() => undefined);
    if (receipt?.status === "success" && receipt.contractAddress) {
      await journal?.record(name, {
        ...entry,
        address: receipt.contractAddress,
        blockNumber: receipt.blockNumber,
      });
      ctx.onStep?.({ kind: "reused", name, address: receipt.contractAddress });
      return { address: receipt.contractAddress, blockNumber: receipt.blockNumber };
    }
  }
  ctx.onStep?.({ kind: "deploying", name });
  const hash = await wallet.deployContract({
    abi: artifact.abi,
    bytecode: artifact.bytecode,
    args,
    account: wallet.account,
    chain: wallet.chain,
  });
  await journal?.record(name, { transactionHash: hash });
  const receipt = await client.waitForTransactionReceipt({ hash, timeout: 300_000 });
  if (receipt.status !== "success" || !receipt.contractAddress) {
    throw new AttestmeshError(`deploying ${artifact.contractName} failed in transaction ${hash}`, {
      code: "DeployFailed",
    });
  }
  await journal?.record(name, {
    transactionHash: hash,
    address: receipt.contractAddress,
    blockNumber: receipt.blockNumber,
  });
  ctx.onStep?.({ kind: "deployed", name, address: receipt.contractAddress });
  return { address: receipt.contractAddress, blockNumber: receipt.blockNumber };
}

export async function deployCluster(options: {
  wallet: Wallet;
  client: PublicClient;
  params: ClusterParams;
  artifactsDir?: string;
  journal?: DeployJournal;
  onStep?: (event: DeployStepEvent) => void;
}): Promise<DeployedCluster> {
  const { params } = options;
  const ctx: DeployContext = options;
  const artifactsDir = options.artifactsDir ?? DEFAULT_ARTIFACTS_DIR;
  const mesh = typeof params.meshCidr === "string" ? parseMeshCidr(params.meshCidr) : params.meshCidr;

  const facets = {} as Record<FacetName, Address>;
  const cuts: Array<{ facetAddress: Address; action: number; functionSelectors: Hex[] }> = [];
  for (const name of FACETS) {
    const artifact = await readArtifact(name, artifactsDir);
    const { address } = await deployArtifact(ctx, artifact);
    facets[name] = address;
    cuts.push({ facetAddress: address, action: 0, functionSelectors: facetSelectors(artifact) });
  }
  const memberApp = await deployArtifact(ctx, await readArtifact("MemberApp", artifactsDir));
  const initArtifact = await readArtifact("ClusterInit", artifactsDir);
  const init = await deployArtifact(ctx, initArtifact);
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
  const diamond = await deployArtifact(ctx, await readArtifact("Diamond", artifactsDir), [
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
