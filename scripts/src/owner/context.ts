// What every cluster command starts from: the chain (see network.ts), the cluster diamond's address
// (`--cluster` or `ATTESTMESH_CLUSTER`, the sidecar's variable; with `--network devnet` and neither, the
// running devnet's cluster, from the state file `npm run devnet` writes) and how to print.

import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { AttestmeshError, isAttestmeshError } from "@attestmesh/shared/errors.ts";
import { type Address, getAddress, getContract, isAddress } from "viem";
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

/**
 * Where `npm run devnet` records what it deployed (devnet/src/orchestration/state.ts writes it). Only
 * this file is read, never the devnet package: an owner's install has no devnet.
 */
export const DEVNET_STATE_FILE = fileURLToPath(new URL("../../../.devnet/state.json", import.meta.url));

const RESTART_DEVNET =
  "start it again (`npx attestmesh devnet down`, then `npm run devnet`) or pass --cluster";

/** The cluster and chain a devnet state file records; a clear error when there is none. */
export async function readDevnetCluster(file: string): Promise<{ cluster: Address; chainId: number }> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (cause) {
    throw new AttestmeshError(
      `which cluster? no devnet is running here (no ${file}): start one with \`npm run devnet\`, or pass --cluster <diamond address>`,
      { code: "DevnetNotRunning", cause },
    );
  }
  let state: { diamond?: unknown; chainId?: unknown };
  try {
    state = JSON.parse(text) as typeof state;
  } catch (cause) {
    throw new AttestmeshError(`${file} is not JSON; ${RESTART_DEVNET}`, {
      code: "DevnetStateInvalid",
      cause,
    });
  }
  if (typeof state.diamond !== "string" || !isAddress(state.diamond, { strict: false })) {
    throw new AttestmeshError(`${file} names no cluster address; ${RESTART_DEVNET}`, {
      code: "DevnetStateInvalid",
    });
  }
  if (typeof state.chainId !== "number") {
    throw new AttestmeshError(`${file} names no chain id; ${RESTART_DEVNET}`, { code: "DevnetStateInvalid" });
  }
  return { cluster: getAddress(state.diamond), chainId: state.chainId };
}

/**
 * The devnet's cluster, checked against the chain `net` serves: a state file left behind by a devnet whose
 * chain was restarted or is gone names a chain or a contract that is not there, and is refused.
 */
export async function devnetCluster(net: ResolvedNetwork, file: string): Promise<Address> {
  const recorded = await readDevnetCluster(file);
  if (net.chain.id !== recorded.chainId) {
    throw new AttestmeshError(
      `${file} is stale: it records chain ${recorded.chainId}, but the devnet's RPC serves chain ${net.chain.id}; ${RESTART_DEVNET}`,
      { code: "DevnetStale", details: { recorded: recorded.chainId, actual: net.chain.id } },
    );
  }
  const code = await net.client.getCode({ address: recorded.cluster });
  if (code === undefined || code === "0x") {
    throw new AttestmeshError(
      `${file} is stale: it names the cluster ${recorded.cluster}, but chain ${net.chain.id} has no contract there (the chain was restarted without the devnet); ${RESTART_DEVNET}`,
      { code: "DevnetStale", details: { cluster: recorded.cluster } },
    );
  }
  return recorded.cluster;
}

export async function clusterContext(
  io: CliIo,
  options: ChainCommandOptions,
  devnetStateFile: string = DEVNET_STATE_FILE,
): Promise<ClusterContext> {
  const given = options.cluster ?? io.env.ATTESTMESH_CLUSTER;
  const json = options.json === true;
  if (given !== undefined && given !== "") {
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
    return { io, net, cluster, json };
  }
  if (options.network !== "devnet") {
    throw badArgument(
      "which cluster? pass --cluster <diamond address> or set ATTESTMESH_CLUSTER (with --network devnet, a running devnet's cluster is found by itself)",
    );
  }
  // Read first: without a devnet there is nothing to connect to.
  await readDevnetCluster(devnetStateFile);
  let net: ResolvedNetwork;
  try {
    net = await resolveNetwork(options, io.env);
  } catch (error) {
    if (!isAttestmeshError(error, "RpcUnreachable")) throw error;
    throw new AttestmeshError(
      `${devnetStateFile} is stale: ${error.message}, so the devnet is not running; ${RESTART_DEVNET}`,
      { code: "DevnetStale", retryable: true, cause: error },
    );
  }
  const cluster = await devnetCluster(net, devnetStateFile);
  // stderr, so --json output stays one JSON document.
  io.stderr.write(`using the devnet's cluster ${cluster} (from ${devnetStateFile})\n`);
  return { io, net, cluster, json };
}

export function readCluster(ctx: ClusterContext) {
  return getContract({ address: ctx.cluster, abi: clusterAbi, client: ctx.net.client });
}
