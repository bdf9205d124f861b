// `attestmesh deploy`: the cluster diamond with every facet, the member-app implementation (the factory
// is a facet) and the initializer, in one resumable run journaled to a file (owner/deployJournal.ts).

import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { formatMeshCidr, parseMeshCidr } from "@attestmesh/shared/mesh/cidr.ts";
import type { Command } from "commander";
import { type Address, createWalletClient } from "viem";
import { deployCluster, FACETS } from "../../deploy/cluster.ts";
import { badArgument, parseAddress, parseKmsRoot } from "../../owner/args.ts";
import { openJournal } from "../../owner/deployJournal.ts";
import { type CliIo, toJson } from "../../owner/io.ts";
import { type NetworkOptions, resolveNetwork } from "../../owner/network.ts";
import { loadOwnerAccount } from "../../owner/ownerKey.ts";
import { startProgress } from "../../owner/progress.ts";

type DeployOptions = NetworkOptions & {
  meshCidr: string;
  owner?: string;
  kmsRoot: string[];
  journal?: string;
  artifacts?: string;
  json?: boolean;
  yes?: boolean;
  dryRun?: boolean;
  calldata?: boolean;
};

const CONTRACTS = [...FACETS, "MemberApp", "ClusterInit", "Diamond"] as const;

export function registerDeployCommand(program: Command, io: CliIo): void {
  program
    .command("deploy")
    .description("deploy a cluster (diamond, facets, member-app factory, indexer registry); resumable")
    .option("--rpc <url>", "JSON-RPC endpoint (default: ATTESTMESH_RPC_URL)")
    .option("--network <name>", "a network from hardhat.config.ts: devnet, baseSepolia, base")
    .option("--mesh-cidr <cidr>", "the mesh's IPv4 range, /16 to /28", "10.77.0.0/16")
    .option("--owner <address>", "the cluster owner, e.g. a Safe (default: the deploying key's address)")
    .option(
      "--kms-root <addressOrPubkey>",
      "an allowed dstack KMS root; repeat for several",
      (v: string, all: string[]) => [...all, v],
      [],
    )
    .option("--journal <file>", "the resumable deploy journal (default: deployments/cluster-<chainId>.json)")
    .option(
      "--artifacts <dir>",
      "Hardhat's artifacts directory (default: the repository's, after `npm run build`)",
    )
    .option("--json", "print JSON")
    .option("-y, --yes", "deploy without asking for confirmation")
    .option("--dry-run", "print what would be deployed or resumed; send nothing")
    .option("--calldata", "not available for deploy (it needs a deploying key); use --owner <safe> instead")
    .action(async (options: DeployOptions) => {
      if (options.calldata) {
        throw badArgument(
          "deploy sends contract creations from a key; deploy with any funded key and --owner <safe address>",
        );
      }
      const mesh = parseMeshCidr(options.meshCidr);
      const kmsRoots = options.kmsRoot.map(parseKmsRoot);
      const ownerArg = options.owner === undefined ? undefined : parseAddress(options.owner, "--owner");
      const net = await resolveNetwork(options, io.env);
      const account = await loadOwnerAccount(io.env);
      const owner: Address = ownerArg ?? account.address;
      const path = options.journal ?? `deployments/cluster-${net.chain.id}.json`;
      const journal = openJournal(path, {
        chainId: net.chain.id,
        owner,
        meshCidr: formatMeshCidr(mesh),
        kmsRoots,
      });
      const pending = CONTRACTS.filter((name) => journal.get(name)?.address === undefined);
      const summary = {
        chainId: net.chain.id,
        deployer: account.address,
        owner,
        meshCidr: formatMeshCidr(mesh),
        kmsRoots,
        journal: path,
        resuming: journal.resumed,
        toDeploy: pending,
      };
      if (options.dryRun) {
        io.stdout.write(
          options.json
            ? toJson({ mode: "dry-run", ...summary })
            : `deploy — dry run, nothing sent\nchain ${summary.chainId}, deployer ${summary.deployer}, owner ${owner}\nmesh ${summary.meshCidr}, KMS roots: ${kmsRoots.join(", ") || "(none)"}\njournal ${path}${journal.resumed ? " (resuming)" : ""}\nwould deploy: ${pending.join(", ") || "nothing: already complete"}\n`,
        );
        return;
      }
      if (kmsRoots.length === 0 && !options.json) {
        io.stderr.write("note: no --kms-root: no node can register until `attestmesh allow kms-root` runs\n");
      }
      if (!options.yes) {
        io.stderr.write(
          `deploy a cluster on chain ${net.chain.id} from ${account.address}: owner ${owner}, mesh ${summary.meshCidr}, ${pending.length} contracts to deploy, journal ${path}\n`,
        );
        if (!io.interactive) {
          throw new AttestmeshError(
            "refusing to deploy without confirmation: no terminal to ask on; pass --yes",
            {
              code: "ConfirmationRequired",
            },
          );
        }
        const { default: ask } = await import("@inquirer/confirm");
        if (!(await ask({ message: "Deploy?", default: false }, { output: process.stderr }))) {
          throw new AttestmeshError("cancelled; nothing was sent", { code: "Cancelled" });
        }
      }
      const wallet = createWalletClient({ account, chain: net.chain, transport: net.transport });
      const progress = startProgress(io, options.json === true, "deploying");
      const deployed: string[] = [];
      const reused: string[] = [];
      let result: Awaited<ReturnType<typeof deployCluster>>;
      try {
        result = await deployCluster({
          wallet,
          client: net.client,
          params: { owner, meshCidr: mesh, kmsRoots },
          journal,
          ...(options.artifacts === undefined ? {} : { artifactsDir: options.artifacts }),
          onStep: (step) => {
            if (step.kind === "deploying") progress.update(`deploying ${step.name}`);
            else (step.kind === "deployed" ? deployed : reused).push(step.name);
          },
        });
      } catch (error) {
        progress.fail(`deploy stopped; re-run the same command to resume from ${path}`);
        throw error;
      }
      progress.succeed(`cluster at ${result.diamond}`);
      const out = {
        mode: "sent",
        ...summary,
        diamond: result.diamond,
        facets: result.facets,
        memberAppImplementation: result.memberAppImplementation,
        clusterInit: result.clusterInit,
        deployBlock: result.deployBlock.toString(),
        deployed,
        reused,
      };
      io.stdout.write(
        options.json
          ? toJson(out)
          : `cluster deployed at ${result.diamond} (block ${result.deployBlock}) on chain ${net.chain.id}\nowner ${owner}, mesh ${summary.meshCidr}\n${deployed.length} contracts deployed, ${reused.length} resumed from ${path}\nnext: export ATTESTMESH_CLUSTER=${result.diamond}\n`,
      );
    });
}
