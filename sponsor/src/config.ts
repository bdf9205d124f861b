// The sponsorship service's configuration: environment variables only, parsed once at start; a bad
// value stops the service with one error naming every offending variable. The signer key is a secret:
// never logged, never echoed.
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { type Address, getAddress, type Hex, isAddress } from "viem";

export interface SponsorConfig {
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly cluster: Address;
  readonly entryPoint: Address;
  readonly accountFactory: Address;
  readonly paymaster: Address;
  /** Reveals the signer key; kept in a closure so it never prints with the config. */
  readonly signerKey: () => Hex;
  readonly maxOpsPerDay: number;
  readonly maxWeiPerDay: bigint;
  readonly validitySeconds: number;
  readonly host: string;
  readonly port: number;
  readonly logLevel: string;
}

export interface SponsorVariable {
  readonly name: string;
  readonly required: boolean;
  readonly default?: string;
  readonly description: string;
}

/** Every variable the service reads, for the README. */
export const SPONSOR_VARIABLES: readonly SponsorVariable[] = [
  { name: "SPONSOR_RPC_URL", required: true, description: "JSON-RPC endpoint of the cluster's chain." },
  {
    name: "SPONSOR_CHAIN_ID",
    required: true,
    description: "The chain the service sponsors on; checked against the RPC.",
  },
  { name: "SPONSOR_CLUSTER", required: true, description: "The cluster diamond." },
  {
    name: "SPONSOR_ENTRY_POINT",
    required: false,
    default: "0x0000000071727De22E5E9d8BAf0edAc6f37da032",
    description: "ERC-4337 EntryPoint v0.7.",
  },
  { name: "SPONSOR_ACCOUNT_FACTORY", required: true, description: "The cluster's member-account factory." },
  { name: "SPONSOR_PAYMASTER", required: true, description: "The operator's SponsorPaymaster." },
  {
    name: "SPONSOR_SIGNER_KEY",
    required: true,
    description: "0x private key whose address is the paymaster's signer. Never logged.",
  },
  {
    name: "SPONSOR_MAX_OPS_PER_DAY",
    required: false,
    default: "500",
    description: "Operations approved per member key per UTC day.",
  },
  {
    name: "SPONSOR_MAX_WEI_PER_DAY",
    required: false,
    default: "50000000000000000",
    description: "Maximum cost (wei) approved per member key per UTC day.",
  },
  {
    name: "SPONSOR_VALIDITY_SECONDS",
    required: false,
    default: "300",
    description: "How long an approval stays valid on chain.",
  },
  { name: "SPONSOR_HOST", required: false, default: "127.0.0.1", description: "Listen address." },
  {
    name: "SPONSOR_PORT",
    required: false,
    default: "4338",
    description: "Listen port (0 picks a free one).",
  },
  { name: "SPONSOR_LOG_LEVEL", required: false, default: "info", description: "pino log level." },
];

export function parseSponsorConfig(env: Readonly<Record<string, string | undefined>>): SponsorConfig {
  const problems: string[] = [];
  const read = (name: string): string => {
    const spec = SPONSOR_VARIABLES.find((v) => v.name === name);
    const text = env[name]?.trim() || spec?.default || "";
    if (text === "" && spec?.required) problems.push(`${name} is not set: ${spec.description}`);
    return text;
  };
  const address = (name: string): Address => {
    const text = read(name);
    if (text !== "" && !isAddress(text, { strict: false }))
      problems.push(`${name}: ${JSON.stringify(text)} is not an address`);
    return text === "" || !isAddress(text, { strict: false }) ? ("0x" as Address) : getAddress(text);
  };
  const integer = (name: string, min: number, max: number): number => {
    const text = read(name);
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < min || value > max)
      problems.push(`${name}: ${JSON.stringify(text)} is not a whole number in ${min}..${max}`);
    return value;
  };
  const rpcUrl = read("SPONSOR_RPC_URL");
  if (rpcUrl !== "" && !/^https?:\/\//.test(rpcUrl))
    problems.push("SPONSOR_RPC_URL: use an http:// or https:// URL");
  const keyText = read("SPONSOR_SIGNER_KEY");
  if (keyText !== "" && !/^0x[0-9a-fA-F]{64}$/.test(keyText)) {
    problems.push("SPONSOR_SIGNER_KEY: the value (not shown) is not 0x followed by 64 hex digits");
  }
  const weiText = read("SPONSOR_MAX_WEI_PER_DAY");
  if (!/^\d+$/.test(weiText))
    problems.push(`SPONSOR_MAX_WEI_PER_DAY: ${JSON.stringify(weiText)} is not a whole number of wei`);
  const config: SponsorConfig = {
    rpcUrl,
    chainId: integer("SPONSOR_CHAIN_ID", 1, Number.MAX_SAFE_INTEGER),
    cluster: address("SPONSOR_CLUSTER"),
    entryPoint: address("SPONSOR_ENTRY_POINT"),
    accountFactory: address("SPONSOR_ACCOUNT_FACTORY"),
    paymaster: address("SPONSOR_PAYMASTER"),
    signerKey: () => keyText as Hex,
    maxOpsPerDay: integer("SPONSOR_MAX_OPS_PER_DAY", 0, 1_000_000),
    maxWeiPerDay: /^\d+$/.test(weiText) ? BigInt(weiText) : 0n,
    validitySeconds: integer("SPONSOR_VALIDITY_SECONDS", 10, 86_400),
    host: read("SPONSOR_HOST"),
    port: integer("SPONSOR_PORT", 0, 65_535),
    logLevel: read("SPONSOR_LOG_LEVEL"),
  };
  if (problems.length > 0) {
    throw new AttestmeshError(`invalid sponsor configuration:\n  ${problems.join("\n  ")}`, {
      code: "InvalidConfig",
      details: { problems },
    });
  }
  return config;
}
