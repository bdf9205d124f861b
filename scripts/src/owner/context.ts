// What every cluster command starts from: the chain (see network.ts), the cluster diamond's address
// (`--cluster` or `ATTESTMESH_CLUSTER`, the sidecar's variable) and how to print.

import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { type Address, getContract } from "viem";
import { badArgument, parseAddress } from "./args.ts";
import type { CliIo } from "./io.ts";
import { type NetworkOptions, type ResolvedNetwork, resolveNetwork } from "./network.ts";

export interface ChainCommandOptions extends NetworkOptions {
  readonly cluster?: string;
  readonly json?: boolean;
}

export interface ClusterContext {
  readonly io: CliIo;
  readonly net: ResolvedNetwork;
  readonly cluster: Address;
  readonly json: boolean;
}

export async function clusterContext(io: CliIo, options: ChainCommandOptions): Promise<ClusterContext> {
  const given = options.cluster ?? io.env.ATTESTMESH_CLUSTER;
  if (given === undefined || given === "") {
    throw badArgument("which cluster? pass --cluster <diamond address> or set ATTESTMESH_CLUSTER");
  }
  const cluster = parseAddress(given, "--cluster");
  const net = await resolveNetwork(options, io.env);
  const code = await net.client.getCode({ address: cluster });
  if (code === undefined || code === "0x") {
    throw new AttestmeshError(
      `no contract at ${cluster} on chain ${net.chain.id}; check --cluster and the network`,
      {
        code: "ClusterNotFound",
      },
    );
  }
  return { io, net, cluster, json: options.json === true };
}

export function readCluster(ctx: ClusterContext) {
  return getContract({ address: ctx.cluster, abi: clusterAbi, client: ctx.net.client });
}
