// Reads compiled contracts from Hardhat's artifacts directory.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { Abi, Hex } from "viem";

export interface ContractArtifact {
  readonly contractName: string;
  readonly abi: Abi;
  readonly bytecode: Hex;
}

export const DEFAULT_ARTIFACTS_DIR = new URL("../../../artifacts", import.meta.url).pathname;

const SOURCES: Record<string, string> = {
  Diamond: "contracts/src/Diamond.sol",
  ClusterInit: "contracts/src/init/ClusterInit.sol",
  MemberApp: "contracts/src/MemberApp.sol",
  EntryPoint: "@account-abstraction/contracts/core/EntryPoint.sol",
  MemberAccount: "contracts/src/sponsorship/MemberAccount.sol",
  MemberAccountFactory: "contracts/src/sponsorship/MemberAccountFactory.sol",
  SponsorPaymaster: "contracts/src/sponsorship/SponsorPaymaster.sol",
};

function sourceOf(contractName: string): string {
  return SOURCES[contractName] ?? `contracts/src/facets/${contractName}.sol`;
}

export async function readArtifact(
  contractName: string,
  artifactsDir: string = DEFAULT_ARTIFACTS_DIR,
): Promise<ContractArtifact> {
  const path = join(artifactsDir, sourceOf(contractName), `${contractName}.json`);
  try {
    const json = JSON.parse(await readFile(path, "utf8")) as ContractArtifact;
    return { contractName, abi: json.abi, bytecode: json.bytecode };
  } catch (cause) {
    throw new AttestmeshError(
      `no compiled artifact for ${contractName} at ${path}; run \`npm run build\` first`,
      {
        code: "ArtifactMissing",
        cause,
      },
    );
  }
}
