// Values that decide trust are pinned in the attested compose (DESIGN.md "Who controls which input"):
// read from the app-compose document the dstack guest agent itself returns (Info → tcb_info.app_compose
// on v0), never from the encrypted environment, which whoever deploys the CVM chooses. They live in one
// extension block of the compose file embedded in app-compose.json (docker compose ignores `x-` keys):
//
//   x-attestmesh:
//     guest_api: v1        # the dstack guest API the node's keys and quotes come from: v0 | v1
//     chain_id: 8453       # the chain the cluster lives on
//     cluster: "0x…"       # the cluster diamond (also the member-app factory)
//     member_app_implementation: "0x…"   # the implementation every member-app clone delegates to
//     kms_roots: ["0x…"]   # the dstack KMS roots whose key chains count
//     rpc_providers: [https://mainnet.base.org]   # the only RPC providers (rpcProviders.ts; the
//                          # environment adds credentials for these hosts only)
//
// Absent block or key: the defaults (guest API v0, today's behaviour; no trust pins). An unknown key in
// the block is refused, so a misspelt pin never silently falls back to a default. Each pin is one entry
// of PINNED_KEYS with its parser. A daemon that verifies member certificates needs the trust pins
// (chain id, cluster, member-app implementation, KMS roots) and refuses to start without them
// (`requireTrustPins`); the guest API joins them (its default stands when absent), since a member's
// certificate counts only with a key chain of the guest API its own compose pins.
//
// The guest API is never switched automatically: v1 keys are different keys, so a node that moved from
// v0 to v1 by itself would stop matching its registration.
import { type Address, getAddress, isAddress } from "viem";
import { parse as parseYaml } from "yaml";
import type { GuestApiVersion } from "../dstack/guestV1.ts";
import { fatalError } from "./errors.ts";
import { parsePinnedChainId, parsePinnedRpcProviders, type RpcOrigin } from "./rpcProviders.ts";

/** The dstack guest API a cluster's nodes use: v0 (`/GetKey`, dstack ≥ 0.5.6) or v1 (`/v1/*`, dstack ≥ 0.6). */
export type GuestApi = "v0" | "v1";

/** The `guestApiVersion` a key chain from each guest API carries (IMembership.DstackProof). */
export const GUEST_API_VERSION: Readonly<Record<GuestApi, GuestApiVersion>> = { v0: 0, v1: 1 };

/** The values a member certificate is verified against (certs/verify.ts); all pinned, none from the environment. */
export interface PinnedTrust {
  readonly chainId: number;
  /** The cluster diamond: the EIP-712 verifying contract and the member-app factory (CREATE2 deployer). */
  readonly cluster: Address;
  /** The implementation every member-app clone of this cluster delegates to. */
  readonly memberAppImplementation: Address;
  /** The dstack KMS roots (signer addresses) whose key chains count; never empty. */
  readonly kmsRoots: readonly Address[];
  /**
   * The guest API whose key chains count (`guest_api`, v0 when absent). One CVM of an allowed app can
   * derive a v0 and a v1 member key with valid KMS chains: a chain of the other guest API is refused.
   */
  readonly guestApi: GuestApi;
}

export interface PinnedSettings {
  readonly guestApi: GuestApi;
  /** `chain_id`: the chain every provider must serve; undefined when not pinned. */
  readonly chainId?: number | undefined;
  /** `rpc_providers`: the only RPC origins the node may read from (rpcProviders.ts); empty when not pinned. */
  readonly rpcProviders?: readonly RpcOrigin[];
  readonly cluster?: Address;
  readonly memberAppImplementation?: Address;
  readonly kmsRoots?: readonly Address[];
}

/** The compose extension block holding the pinned values. */
export const PINNED_BLOCK = "x-attestmesh";

export const DEFAULT_PINNED: PinnedSettings = { guestApi: "v0" };

/**
 * Environment variables that would, if read, override a pinned value. A daemon refuses to start when
 * one is set: the operator must learn the value is not theirs to choose, rather than see it ignored.
 */
export const PINNED_ENVIRONMENT_NAMES: readonly string[] = [
  "ATTESTMESH_GUEST_API",
  "DSTACK_GUEST_API",
  "ATTESTMESH_KMS_ROOTS",
  "ATTESTMESH_MEMBER_APP_IMPLEMENTATION",
];

type Parser<T> = (value: unknown) => T;

const guestApi: Parser<GuestApi> = (value) => {
  if (value === "v0" || value === "v1") return value;
  throw invalid(`${PINNED_BLOCK}.guest_api is ${JSON.stringify(value)}; write v0 or v1.`);
};

const address =
  (key: string): Parser<Address> =>
  (value) => {
    if (typeof value === "string" && isAddress(value, { strict: false })) return getAddress(value);
    throw invalid(
      `${PINNED_BLOCK}.${key} is ${JSON.stringify(value)}; write a 0x-prefixed 20-byte address (quoted).`,
    );
  };

const kmsRoots: Parser<readonly Address[]> = (value) => {
  if (!Array.isArray(value) || value.length === 0) {
    throw invalid(`${PINNED_BLOCK}.kms_roots must be a non-empty list of KMS root addresses.`);
  }
  const roots = value.map((v) => address("kms_roots[]")(v));
  return [...new Set(roots)];
};

/** Each pinned key of the block, by its name there, with its parser. */
const PINNED_KEYS: Readonly<Record<string, Parser<unknown>>> = {
  guest_api: guestApi,
  chain_id: parsePinnedChainId,
  rpc_providers: (value) => parsePinnedRpcProviders(value, undefined),
  cluster: address("cluster"),
  member_app_implementation: address("member_app_implementation"),
  kms_roots: kmsRoots,
};

/** The block key of each trust pin, for messages. */
const TRUST_KEYS = {
  chainId: "chain_id",
  cluster: "cluster",
  memberAppImplementation: "member_app_implementation",
  kmsRoots: "kms_roots",
} as const;

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
  const optional = <T>(key: string, name: string, parse: Parser<T>): Record<string, T> =>
    entries[key] === undefined || entries[key] === null ? {} : { [name]: parse(entries[key]) };
  const chainId = entries.chain_id === undefined ? undefined : parsePinnedChainId(entries.chain_id);
  return {
    guestApi: entries.guest_api === undefined ? DEFAULT_PINNED.guestApi : guestApi(entries.guest_api),
    ...(chainId === undefined ? {} : { chainId }),
    ...(entries.rpc_providers === undefined
      ? {}
      : { rpcProviders: parsePinnedRpcProviders(entries.rpc_providers, chainId) }),
    ...optional("cluster", "cluster", address("cluster")),
    ...optional("member_app_implementation", "memberAppImplementation", address("member_app_implementation")),
    ...optional("kms_roots", "kmsRoots", kmsRoots),
  };
}

/**
 * The trust pins a certificate is verified against; refuses (fatal, naming each missing key) a compose
 * that does not pin all of them, since without them no member could be verified.
 */
export function requireTrustPins(settings: PinnedSettings): PinnedTrust {
  const missing = (Object.keys(TRUST_KEYS) as (keyof typeof TRUST_KEYS)[])
    .filter((name) => settings[name] === undefined)
    .map((name) => `${PINNED_BLOCK}.${TRUST_KEYS[name]}`);
  if (
    missing.length > 0 ||
    settings.chainId === undefined ||
    settings.cluster === undefined ||
    settings.memberAppImplementation === undefined ||
    settings.kmsRoots === undefined
  ) {
    throw invalid(`it pins no ${missing.join(", ")}; member certificates cannot be verified without them.`);
  }
  return {
    chainId: settings.chainId,
    cluster: settings.cluster,
    memberAppImplementation: settings.memberAppImplementation,
    kmsRoots: settings.kmsRoots,
    guestApi: settings.guestApi,
  };
}

/** The block key an environment name would override. */
function pinnedKeyOf(name: string): string {
  if (name.endsWith("GUEST_API")) return "guest_api";
  return name.replace(/^ATTESTMESH_/, "").toLowerCase();
}

/** Refuses an environment that tries to set a pinned value (see PINNED_ENVIRONMENT_NAMES). */
export function refusePinnedInEnvironment(env: Readonly<Record<string, string | undefined>>): void {
  for (const name of PINNED_ENVIRONMENT_NAMES) {
    if (env[name] !== undefined) {
      throw fatalError(
        "PinnedSettingInEnvironment",
        `${name} is set in the environment, but that value is pinned in the attested compose (${PINNED_BLOCK}.${pinnedKeyOf(name)}) and never taken from the environment. Remove ${name}; to change it, change the compose and allow its new hash.`,
        { details: { name } },
      );
    }
  }
}

/**
 * Refuses environment values that disagree with the pinned ones (a daemon may still be given the chain
 * id and cluster in its environment, for its RPC set-up, but never a different one than the compose pins).
 */
export function refuseEnvironmentOverride(
  pinned: PinnedTrust,
  environment: { readonly chainId: number | undefined; readonly cluster: Address },
): void {
  const clashes: string[] = [];
  if (environment.chainId !== undefined && environment.chainId !== pinned.chainId)
    clashes.push(`chain id ${environment.chainId} ≠ pinned ${pinned.chainId}`);
  if (getAddress(environment.cluster) !== pinned.cluster) {
    clashes.push(`cluster ${environment.cluster} ≠ pinned ${pinned.cluster}`);
  }
  if (clashes.length > 0) {
    throw fatalError(
      "PinnedSettingMismatch",
      `the environment names another chain or cluster than the attested compose pins (${clashes.join("; ")}). The compose decides; fix ATTESTMESH_CHAIN_ID / ATTESTMESH_CLUSTER or deploy the right compose.`,
      { details: { pinnedChainId: pinned.chainId, pinnedCluster: pinned.cluster } },
    );
  }
}
