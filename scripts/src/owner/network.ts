// Which chain a command talks to: `--rpc <url>`, or `--network <name>` from hardhat.config.ts (devnet,
// baseSepolia, base), whose URL Hardhat resolves from the environment or its keystore. The chain id is
// read from the RPC and checked against the named network's, so a wrong URL is refused before any call.

import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { checkChainId } from "@attestmesh/shared/service/chainId.ts";
import { type Chain, createPublicClient, defineChain, http, type PublicClient, type Transport } from "viem";
import { badArgument } from "./args.ts";
import { loadHardhat } from "./hardhat.ts";

export interface NetworkOptions {
  readonly rpc?: string;
  readonly network?: string;
}

export interface ResolvedNetwork {
  readonly name: string;
  readonly rpcUrl: string;
  readonly chain: Chain;
  readonly transport: Transport;
  readonly client: PublicClient<Transport, Chain>;
}

/** Base and Base Sepolia (chain ids 8453, 84532) get viem's definitions, loaded only there: viem/chains is large. */
async function knownChain(chainId: number): Promise<Chain | undefined> {
  if (chainId !== 8453 && chainId !== 84532) return undefined;
  const { base, baseSepolia } = await import("viem/chains");
  return chainId === base.id ? base : baseSepolia;
}

/** Network names accepted besides hardhat.config.ts's own spelling. */
const ALIASES: Readonly<Record<string, string>> = { "base-sepolia": "baseSepolia", "base-mainnet": "base" };

/** Checks an RPC URL without ever echoing it: RPC URLs often carry an API key in the path or query. */
function checkUrl(url: string, what: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw badArgument(`${what} is not a URL; give an http(s) RPC endpoint`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw badArgument(`${what} must be an http(s) URL, not ${parsed.protocol}`);
  }
  return url;
}

async function namedNetworkUrl(name: string): Promise<{ url: string; chainId?: number }> {
  const hre = await loadHardhat();
  const key = ALIASES[name] ?? name;
  const config = hre.config.networks[key];
  if (!config) {
    const known = Object.entries(hre.config.networks)
      .filter(([, n]) => n.type === "http")
      .map(([n]) => n);
    throw badArgument(`no network "${name}" in hardhat.config.ts; known: ${known.join(", ")}`);
  }
  if (config.type !== "http") {
    throw badArgument(`network "${name}" is Hardhat's in-process simulation; give an http network or --rpc`);
  }
  let url: string;
  try {
    url = await config.url.get();
  } catch (cause) {
    throw new AttestmeshError(
      `network "${name}" needs its RPC URL: ${(cause as Error).message.split("\n")[0]} (set the environment variable, or \`npx hardhat keystore set\` it)`,
      { code: "RpcUrlMissing", cause },
    );
  }
  return config.chainId === undefined ? { url } : { url, chainId: config.chainId };
}

/** Resolves `--rpc`/`--network` (or `ATTESTMESH_RPC_URL`) and connects, checking the chain id. */
export async function resolveNetwork(
  options: NetworkOptions,
  env: Readonly<Record<string, string | undefined>>,
): Promise<ResolvedNetwork> {
  if (options.rpc !== undefined && options.network !== undefined) {
    throw badArgument("give either --rpc or --network, not both");
  }
  let name: string;
  let url: string;
  let expectedChainId: number | undefined;
  if (options.rpc !== undefined) {
    name = "rpc";
    url = checkUrl(options.rpc, "--rpc");
  } else if (options.network !== undefined) {
    name = options.network;
    ({ url, chainId: expectedChainId } = await namedNetworkUrl(options.network));
    checkUrl(url, `the RPC URL of network "${name}"`);
  } else if (env.ATTESTMESH_RPC_URL) {
    name = "rpc";
    url = checkUrl(env.ATTESTMESH_RPC_URL, "ATTESTMESH_RPC_URL");
  } else {
    throw badArgument("which chain? pass --rpc <url> or --network <devnet|baseSepolia|base>");
  }
  const transport = http(url, { retryCount: 2, timeout: 30_000 });
  const chainId = await checkChainId({
    getChainId: () => createPublicClient({ transport }).getChainId(),
    expected: expectedChainId,
    rpcVariable: "--rpc",
    chainIdVariable: "--network",
    unreachable: (cause) =>
      new AttestmeshError(
        `cannot reach the RPC at ${new URL(url).origin}: ${(cause as Error).message.split("\n")[0]}`,
        { code: "RpcUnreachable", retryable: true, cause },
      ),
    mismatch: (actual, expected) =>
      new AttestmeshError(
        `network "${name}" expects chain ${expected} but its RPC serves chain ${actual}; fix the URL`,
        { code: "ChainIdMismatch", details: { expected, actual } },
      ),
  });

  const chain =
    (await knownChain(chainId)) ??
    defineChain({
      id: chainId,
      name: `chain ${chainId}`,
      nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
      rpcUrls: { default: { http: [url] } },
    });
  const client = createPublicClient({ chain, transport });
  return { name, rpcUrl: url, chain, transport, client };
}
