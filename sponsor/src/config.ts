// The sponsorship service's configuration: environment variables only, parsed once at start with the
// service kit's env table; a bad value stops the service with one error naming every offending
// variable. The signer key is a secret: kept in a `Secret` box, never logged, never echoed.
import type { ConfigDoc, Env, EnvTable } from "@attestmesh/shared/service/env.ts";
import * as kit from "@attestmesh/shared/service/env.ts";
import type { LogLevel } from "@attestmesh/shared/service/log.ts";
import type { Secret } from "@attestmesh/shared/service/secret.ts";
import type { Address, Hex } from "viem";
import { entryPoint07Address } from "viem/account-abstraction";

export interface SponsorConfig {
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly cluster: Address;
  readonly entryPoint: Address;
  readonly accountFactory: Address;
  readonly paymaster: Address;
  /** The paymaster signer's key, boxed so it never prints with the config. */
  readonly signerKey: Secret<Hex>;
  readonly maxOpsPerDay: number;
  readonly maxWeiPerDay: bigint;
  readonly validitySeconds: number;
  /** Per-operation bounds: the most one approval may cost and the largest gas limits it may carry. */
  readonly maxCostWei: bigint;
  readonly maxCallGas: number;
  readonly maxVerificationGas: number;
  readonly maxPreVerificationGas: number;
  /** The SQLite file holding reservations, paid spends and the chain cursor. */
  readonly stateDb: string;
  /** Blocks behind the head before a paid operation is charged (reorg depth). */
  readonly confirmations: number;
  readonly host: string;
  readonly port: number;
  readonly logLevel: LogLevel;
}

const anyAddress = kit.address({ checksum: false });

const VARIABLES: EnvTable<SponsorConfig> = {
  rpcUrl: {
    name: "SPONSOR_RPC_URL",
    required: true,
    description: "JSON-RPC endpoint of the cluster's chain.",
    parse: kit.httpUrl,
  },
  chainId: {
    name: "SPONSOR_CHAIN_ID",
    required: true,
    description: "The chain the service sponsors on; checked against the RPC.",
    parse: kit.integer(1, Number.MAX_SAFE_INTEGER),
  },
  cluster: {
    name: "SPONSOR_CLUSTER",
    required: true,
    description: "The cluster diamond.",
    parse: anyAddress,
  },
  entryPoint: {
    name: "SPONSOR_ENTRY_POINT",
    default: entryPoint07Address,
    description: "ERC-4337 EntryPoint v0.7.",
    parse: anyAddress,
  },
  accountFactory: {
    name: "SPONSOR_ACCOUNT_FACTORY",
    required: true,
    description: "The cluster's member-account factory.",
    parse: anyAddress,
  },
  paymaster: {
    name: "SPONSOR_PAYMASTER",
    required: true,
    description: "The operator's SponsorPaymaster.",
    parse: anyAddress,
  },
  signerKey: {
    name: "SPONSOR_SIGNER_KEY",
    required: true,
    description: "0x private key whose address is the paymaster's signer. Never logged.",
    parse: kit.privateKey("use the paymaster signer's private key as 0x-prefixed hex"),
  },
  maxOpsPerDay: {
    name: "SPONSOR_MAX_OPS_PER_DAY",
    default: "500",
    description: "Operations paid or reserved per member key per UTC day.",
    parse: kit.integer(0, 1_000_000),
  },
  maxWeiPerDay: {
    name: "SPONSOR_MAX_WEI_PER_DAY",
    default: "50000000000000000",
    description: "Wei paid or reserved per member key per UTC day.",
    parse: kit.bigInteger("wei"),
  },
  validitySeconds: {
    name: "SPONSOR_VALIDITY_SECONDS",
    default: "300",
    description: "How long an approval stays valid on chain.",
    parse: kit.integer(10, 86_400, " s"),
  },
  maxCostWei: {
    name: "SPONSOR_MAX_COST_WEI",
    default: "10000000000000000",
    description:
      "Most one operation may cost (gas limits times maxFeePerGas, wei); larger requests are refused.",
    parse: kit.bigInteger("wei"),
  },
  maxCallGas: {
    name: "SPONSOR_MAX_CALL_GAS",
    default: "2000000",
    description: "Largest callGasLimit one sponsored operation may carry.",
    parse: kit.integer(0, 100_000_000),
  },
  maxVerificationGas: {
    name: "SPONSOR_MAX_VERIFICATION_GAS",
    default: "1000000",
    description: "Largest verificationGasLimit (account creation included) one operation may carry.",
    parse: kit.integer(0, 100_000_000),
  },
  maxPreVerificationGas: {
    name: "SPONSOR_MAX_PRE_VERIFICATION_GAS",
    default: "5000000",
    description: "Largest preVerificationGas (L1 data cost on a rollup included) one operation may carry.",
    parse: kit.integer(0, 100_000_000),
  },
  stateDb: {
    name: "SPONSOR_STATE_DB",
    default: "attestmesh-sponsor.sqlite",
    description:
      "SQLite file for the caps: reservations, paid spends, the chain cursor. Survives restarts; keep it on a persistent volume.",
    parse: kit.filePath,
  },
  confirmations: {
    name: "SPONSOR_CONFIRMATIONS",
    default: "10",
    description: "Blocks behind the head before a paid operation's actual cost is charged (reorg safety).",
    parse: kit.integer(0, 1_000),
  },
  host: { name: "SPONSOR_HOST", default: "127.0.0.1", description: "Listen address.", parse: kit.hostName },
  port: {
    name: "SPONSOR_PORT",
    default: "4338",
    description: "Listen port (0 picks a free one).",
    parse: kit.integer(0, 65_535),
  },
  logLevel: kit.logLevelVariable("SPONSOR_LOG_LEVEL"),
};

/** Every variable the service reads, for the README. */
export const SPONSOR_VARIABLES: readonly ConfigDoc[] = kit.configDocs(VARIABLES);

export function parseSponsorConfig(env: Env): SponsorConfig {
  return kit.parseEnv(VARIABLES, env, { what: "sponsor configuration" });
}
