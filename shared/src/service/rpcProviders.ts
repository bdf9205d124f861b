// The RPC providers a node may read the chain from. Their hosts are pinned in the attested compose
// (`x-attestmesh.rpc_providers`, beside `chain_id`; see pinned.ts), so whoever deploys a CVM cannot
// point it at an RPC of their own. The encrypted environment may only add credentials (an API key in
// the path or query) for a pinned host: a URL whose origin (scheme, host, port) is not pinned is a
// startup error, never silently ignored or silently used.
//
//   x-attestmesh:
//     chain_id: 8453
//     rpc_providers: [https://mainnet.base.org, https://base-mainnet.g.alchemy.com]
//
// Outside a local development chain every provider must be https: a plain-http path lets anyone on it
// answer for the provider.
import { fatalError } from "./errors.ts";

/** Chain ids of local development chains (Hardhat, Anvil/Ganache), the only ones allowed plain http. */
export const LOCAL_CHAIN_IDS: readonly number[] = [31337, 1337];

/** Most providers a compose may pin; each critical read asks up to all of them. */
export const MAX_RPC_PROVIDERS = 16;

/** A provider as pinned: its origin, `scheme://host[:port]`, lowercase, no path. */
export type RpcOrigin = string;

/** A provider the node uses: the pinned origin and the URL to call (the origin, or it with credentials). */
export interface RpcProvider {
  /** `scheme://host[:port]`: safe to log, it carries no credential. */
  readonly origin: RpcOrigin;
  /** What the node calls; may carry an API key, so never logged. */
  readonly url: string;
}

function invalidPin(message: string): Error {
  return fatalError(
    "InvalidPinnedCompose",
    `the attested compose is not usable: x-attestmesh.rpc_providers ${message} Fix deploy/<target>/docker-compose.yaml, re-render app-compose.json and allow the new compose hash.`,
  );
}

/** The chain id as pinned (`x-attestmesh.chain_id`): a positive safe integer. */
export function parsePinnedChainId(value: unknown): number {
  if (typeof value === "number" && Number.isSafeInteger(value) && value > 0) return value;
  throw fatalError(
    "InvalidPinnedCompose",
    `the attested compose is not usable: x-attestmesh.chain_id is ${JSON.stringify(value)}; write the chain id as a positive integer (Base: 8453).`,
  );
}

/** The origin of a URL: scheme, lowercase host and explicit non-default port. */
function originOf(url: URL): RpcOrigin {
  return `${url.protocol}//${url.host}`.toLowerCase();
}

/**
 * The pinned list (`x-attestmesh.rpc_providers`): 1 to MAX_RPC_PROVIDERS distinct origins, each
 * `https://host[:port]` (http only when `chainId` is a local development chain), with no path, query
 * or credentials: those are the environment's to add.
 */
export function parsePinnedRpcProviders(value: unknown, chainId: number | undefined): RpcOrigin[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_RPC_PROVIDERS) {
    throw invalidPin(`must be a list of 1 to ${MAX_RPC_PROVIDERS} provider URLs.`);
  }
  if (chainId === undefined) {
    throw invalidPin("is set, but x-attestmesh.chain_id is not; pin the chain id the providers serve.");
  }
  const origins: RpcOrigin[] = [];
  for (const [i, entry] of value.entries()) {
    let url: URL;
    try {
      if (typeof entry !== "string") throw new Error("not a string");
      url = new URL(entry);
    } catch {
      throw invalidPin(`entry ${i} is not a URL.`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw invalidPin(`entry ${i} uses ${url.protocol}; write https://host.`);
    }
    if (url.protocol === "http:" && !LOCAL_CHAIN_IDS.includes(chainId)) {
      throw invalidPin(
        `entry ${i} (${originOf(url)}) is plain http on chain ${chainId}; only https is allowed outside a local development chain.`,
      );
    }
    if (url.username !== "" || url.password !== "" || (url.pathname !== "/" && url.pathname !== "")) {
      throw invalidPin(
        `entry ${i} has a path or credentials; pin the host only (scheme://host[:port]) and put API keys in ATTESTMESH_RPC_URLS.`,
      );
    }
    if (url.search !== "" || url.hash !== "") {
      throw invalidPin(`entry ${i} has a query or fragment; pin the host only (scheme://host[:port]).`);
    }
    const origin = originOf(url);
    if (origins.includes(origin)) throw invalidPin(`lists ${origin} twice.`);
    origins.push(origin);
  }
  return origins;
}

/**
 * The providers to use: every pinned origin, with the credential-bearing URL the environment gave for
 * it where it gave one. `credentialUrls` are the environment's URLs (e.g. ATTESTMESH_RPC_URLS); each must
 * belong to a pinned origin, at most one per origin. `variable` names where they came from, for the
 * error. Errors never echo a URL's path or query (they carry API keys), only its origin.
 */
export function resolveRpcProviders(
  pinned: readonly RpcOrigin[],
  credentialUrls: readonly string[],
  variable: string,
): RpcProvider[] {
  if (pinned.length === 0) {
    throw fatalError(
      "RpcProvidersNotPinned",
      `the attested compose pins no RPC providers, so the node has no provider it may trust to read the chain. Add x-attestmesh.chain_id and x-attestmesh.rpc_providers to deploy/<target>/docker-compose.yaml, re-render app-compose.json and allow the new compose hash; ${variable} may then add API keys for those hosts.`,
    );
  }
  const byOrigin = new Map<RpcOrigin, string>();
  for (const text of credentialUrls) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw fatalError("RpcProviderNotPinned", `${variable} has an entry (not shown) that is not a URL.`);
    }
    const origin = originOf(url);
    if (!pinned.includes(origin)) {
      throw fatalError(
        "RpcProviderNotPinned",
        `${variable} names ${origin}, which is not one of the RPC providers the attested compose pins (${pinned.join(", ")}). The environment may only add credentials for a pinned host; to use another provider, pin it in x-attestmesh.rpc_providers and allow the new compose hash.`,
        { details: { origin, pinned: [...pinned] } },
      );
    }
    if (byOrigin.has(origin)) {
      throw fatalError(
        "RpcProviderNotPinned",
        `${variable} gives ${origin} twice; give each pinned provider at most one URL.`,
        { details: { origin } },
      );
    }
    byOrigin.set(origin, text);
  }
  return pinned.map((origin) => ({ origin, url: byOrigin.get(origin) ?? origin }));
}

/** The smallest quorum that is a strict majority of `n` providers: no two such quorums can disagree. */
export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}
