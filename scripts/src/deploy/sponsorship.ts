// Deploys gas sponsorship for a cluster: the ERC-4337 EntryPoint v0.7 (unless the chain has one), the
// cluster's member-account factory, and the operator's verifying paymaster with an EntryPoint deposit.
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { Account, Address, Chain, PublicClient, Transport, WalletClient } from "viem";
import { DEFAULT_ARTIFACTS_DIR, readArtifact } from "./artifacts.ts";
import { deployArtifact } from "./cluster.ts";

type Wallet = WalletClient<Transport, Chain | undefined, Account>;

export interface SponsorshipParams {
  readonly cluster: Address;
  /** The sponsorship service's signing address (the paymaster honours its approvals). */
  readonly signer: Address;
  /** The paymaster's owner (rotates the signer, withdraws the deposit). */
  readonly owner: Address;
  /** An EntryPoint v0.7 already on the chain (Base: the canonical one); deployed when absent. */
  readonly entryPoint?: Address;
  /** Wei deposited at the EntryPoint for the paymaster. */
  readonly depositWei?: bigint;
}

export interface DeployedSponsorship {
  readonly entryPoint: Address;
  readonly accountFactory: Address;
  readonly accountImplementation: Address;
  readonly paymaster: Address;
}

async function deploy(wallet: Wallet, client: PublicClient, name: string, args: unknown[], dir: string) {
  const artifact = await readArtifact(name, dir);
  const { address } = await deployArtifact({ wallet, client }, artifact, args);
  return { address, abi: artifact.abi };
}

export async function deploySponsorship(options: {
  wallet: Wallet;
  client: PublicClient;
  params: SponsorshipParams;
  artifactsDir?: string;
}): Promise<DeployedSponsorship> {
  const { wallet, client, params } = options;
  const dir = options.artifactsDir ?? DEFAULT_ARTIFACTS_DIR;
  const entryPoint = params.entryPoint ?? (await deploy(wallet, client, "EntryPoint", [], dir)).address;
  const factory = await deploy(wallet, client, "MemberAccountFactory", [entryPoint, params.cluster], dir);
  const paymaster = await deploy(
    wallet,
    client,
    "SponsorPaymaster",
    [entryPoint, params.signer, params.owner],
    dir,
  );
  if ((params.depositWei ?? 0n) > 0n) {
    const hash = await wallet.writeContract({
      address: paymaster.address,
      abi: paymaster.abi,
      functionName: "deposit",
      value: params.depositWei,
      account: wallet.account,
      chain: wallet.chain,
    });
    const receipt = await client.waitForTransactionReceipt({ hash });
    if (receipt.status !== "success") {
      throw new AttestmeshError(`depositing for the paymaster failed in ${hash}`, { code: "DeployFailed" });
    }
  }
  const accountImplementation = (await client.readContract({
    address: factory.address,
    abi: factory.abi,
    functionName: "accountImplementation",
  })) as Address;
  return { entryPoint, accountFactory: factory.address, accountImplementation, paymaster: paymaster.address };
}
