// Values that decide trust are pinned in the attested compose (DESIGN.md "Who controls which input"):
// read from the app-compose document the dstack guest agent itself returns (Info → tcb_info.app_compose
// on v0), never from the encrypted environment, which whoever deploys the CVM chooses. They live in one
// extension block of the compose file embedded in app-compose.json (docker compose ignores `x-` keys):
//
//   x-attestmesh:
//     guest_api: v1        # the dstack guest API the node's keys and quotes come from: v0 | v1
//
// Absent block or key: the defaults (guest API v0, today's behaviour). An unknown key in the block is
// refused, so a misspelt pin never silently falls back to a default. The block is the place for the
// other pinned values (chain id, cluster, KMS roots, RPC provider hosts): each is one entry of
// PINNED_KEYS with its parser.
//
// The guest API is never switched automatically: v1 keys are different keys, so a node that moved from
// v0 to v1 by itself would stop matching its registration.
import { parse as parseYaml } from "yaml";
import { fatalError } from "./errors.ts";
import { parsePinnedChainId, parsePinnedRpcProviders, type RpcOrigin } from "./rpcProviders.ts";

/** The dstack guest API a cluster's nodes use: v0 (`/GetKey`, dstack ≥ 0.5.6) or v1 (`/v1/*`, dstack ≥ 0.6). */
export type GuestApi = "v0" | "v1";

export interface PinnedSettings {
  readonly guestApi: GuestApi;
  /** `chain_id`: the chain every provider must serve; undefined when not pinned. */
  readonly chainId?: number | undefined;
  /** `rpc_providers`: the only RPC origins the node may read from (rpcProviders.ts); empty when not pinned. */
  readonly rpcProviders?: readonly RpcOrigin[];
}

/** The compose extension block holding the pinned values. */
export const PINNED_BLOCK = "x-attestmesh";

export const DEFAULT_PINNED: PinnedSettings = { guestApi: "v0" };

/**
 * Environment variables that would, if read, override a pinned value. A daemon refuses to start when
 * one is set: the operator must learn the value is not theirs to choose, rather than see it ignored.
 */
export const PINNED_ENVIRONMENT_NAMES: readonly string[] = ["ATTESTMESH_GUEST_API", "DSTACK_GUEST_API"];

type Parser<T> = (value: unknown) => T;

const guestApi: Parser<GuestApi> = (value) => {
  if (value === "v0" || value === "v1") return value;
  throw invalid(`${PINNED_BLOCK}.guest_api is ${JSON.stringify(value)}; write v0 or v1.`);
};

/** Each pinned key of the block, by its name there, with its parser. */
const PINNED_KEYS: Readonly<Record<string, Parser<unknown>>> = {
  guest_api: guestApi,
  chain_id: parsePinnedChainId,
  rpc_providers: (value) => parsePinnedRpcProviders(value, undefined),
};

function invalid(message: string): Error {
  return fatalError(
    "InvalidPinnedCompose",
    `the attested compose is not usable: ${message} Fix deploy/<target>/docker-compose.yaml, re-render app-compose.json and allow the new compose hash.`,
  );
}

/**
 * The pinned settings in an app-compose.json document (its exact text, as the guest agent returns it):
 * its `docker_compose_file`'s `x-attestmesh` block.
 */
export function readPinnedSettings(appCompose: string): PinnedSettings {
  if (appCompose === "") {
    throw invalid("the guest agent returned no app-compose document (is tcb_info hidden from the app?).");
  }
  let manifest: unknown;
  try {
    manifest = JSON.parse(appCompose);
  } catch {
    throw invalid("app-compose.json is not JSON.");
  }
  if (typeof manifest !== "object" || manifest === null || Array.isArray(manifest)) {
    throw invalid("app-compose.json is not a JSON object.");
  }
  const composeFile = (manifest as Record<string, unknown>).docker_compose_file;
  if (composeFile === undefined) return DEFAULT_PINNED;
  if (typeof composeFile !== "string") throw invalid("docker_compose_file is not a string.");
  let compose: unknown;
  try {
    compose = parseYaml(composeFile);
  } catch {
    throw invalid("docker_compose_file is not YAML.");
  }
  if (compose === null || compose === undefined) return DEFAULT_PINNED;
  if (typeof compose !== "object" || Array.isArray(compose)) {
    throw invalid("docker_compose_file is not a YAML mapping.");
  }
  const block = (compose as Record<string, unknown>)[PINNED_BLOCK];
  if (block === undefined || block === null) return DEFAULT_PINNED;
  if (typeof block !== "object" || Array.isArray(block)) {
    throw invalid(`${PINNED_BLOCK} is not a mapping.`);
  }
  const entries = block as Record<string, unknown>;
  for (const key of Object.keys(entries)) {
    if (!Object.hasOwn(PINNED_KEYS, key)) {
      throw invalid(
        `${PINNED_BLOCK}.${key} is not a known pinned value (known: ${Object.keys(PINNED_KEYS).join(", ")}).`,
      );
    }
  }
  const chainId = entries.chain_id === undefined ? undefined : parsePinnedChainId(entries.chain_id);
  return {
    guestApi: entries.guest_api === undefined ? DEFAULT_PINNED.guestApi : guestApi(entries.guest_api),
    ...(chainId === undefined ? {} : { chainId }),
    ...(entries.rpc_providers === undefined
      ? {}
      : { rpcProviders: parsePinnedRpcProviders(entries.rpc_providers, chainId) }),
  };
}

/** Refuses an environment that tries to set a pinned value (see PINNED_ENVIRONMENT_NAMES). */
export function refusePinnedInEnvironment(env: Readonly<Record<string, string | undefined>>): void {
  for (const name of PINNED_ENVIRONMENT_NAMES) {
    if (env[name] !== undefined) {
      throw fatalError(
        "PinnedSettingInEnvironment",
        `${name} is set in the environment, but the guest API is pinned in the attested compose (${PINNED_BLOCK}.guest_api) and never taken from the environment. Remove ${name}; to change the guest API, change the compose and allow its new hash.`,
        { details: { name } },
      );
    }
  }
}
