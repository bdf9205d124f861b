// A typed table of environment variables: each entry documents one variable and parses its text into
// one configuration field. Reading the table collects every problem at once, each as "what is wrong
// and how to fix it", so one restart fixes them all; the same table renders the README's docs table.
import { secp256k1 } from "@noble/curves/secp256k1";
import { type Address, getAddress, type Hex, isAddress } from "viem";
import type { AttestmeshError } from "../errors.ts";
import { fatalError } from "./errors.ts";
import { LOG_LEVELS, type LogLevel } from "./log.ts";
import { type Secret, secret } from "./secret.ts";

export type Env = Readonly<Record<string, string | undefined>>;

/** Why a value was refused, and how to fix it; the variable name is added by the caller. */
export class Problem {
  readonly problem: string;
  readonly fix: string;
  constructor(problem: string, fix: string) {
    this.problem = problem;
    this.fix = fix;
  }
}

/** One variable: its documentation and how its text becomes a value (or a `Problem`). */
export interface Variable<T> {
  readonly name: string;
  readonly required?: boolean;
  /** Shown in the docs; undefined for required variables and optional ones without a default. */
  readonly default?: string;
  readonly description: string;
  /** Parses a non-empty value; returns the value or throws a `Problem` (never echoing secrets). */
  readonly parse: (text: string) => T;
}

/** One variable per configuration field, in the order of the docs table. */
export type EnvTable<Config> = { readonly [K in keyof Config]-?: Variable<Config[K]> };

export interface ConfigDoc {
  readonly name: string;
  readonly required: boolean;
  readonly default: string | undefined;
  readonly description: string;
}

export interface ConfigProblem {
  readonly variable: string;
  readonly problem: string;
  readonly fix: string;
}

function variables<Config>(table: EnvTable<Config>): Array<[keyof Config, Variable<unknown>]> {
  return Object.entries(table).map(([key, variable]) => [key as keyof Config, variable as Variable<unknown>]);
}

/** Every variable the table reads, in its order. */
export function configDocs<Config>(table: EnvTable<Config>): ConfigDoc[] {
  return variables(table).map(([, v]) => ({
    name: v.name,
    required: v.required === true,
    default: v.default,
    description: v.description,
  }));
}

/** `docs` as a Markdown table. */
export function configDocsMarkdown(docs: readonly ConfigDoc[]): string {
  const header = ["Variable", "Required", "Default", "Meaning"];
  const rows = docs.map((d) => [
    `\`${d.name}\``,
    d.required ? "yes" : "no",
    d.default === undefined ? "" : `\`${d.default}\``,
    d.description.replaceAll("|", "\\|"),
  ]);
  // Padded the way the repository's formatter lays out Markdown tables, so the README stays formatted.
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/**
 * Reads every variable of `table` from `env`; an empty value counts as unset. Returns the values that
 * parsed and the problems of those that did not.
 */
export function readEnv<Config>(
  table: EnvTable<Config>,
  env: Env,
): { values: Partial<Config>; problems: ConfigProblem[] } {
  const values: Partial<Record<keyof Config, unknown>> = {};
  const problems: ConfigProblem[] = [];
  for (const [key, v] of variables(table)) {
    const text = env[v.name]?.trim() ?? "";
    if (text === "") {
      if (v.required === true) {
        problems.push({ variable: v.name, problem: "is not set", fix: `set it: ${v.description}` });
        continue;
      }
      values[key] = v.default === undefined ? undefined : v.parse(v.default);
      continue;
    }
    try {
      values[key] = v.parse(text);
    } catch (error) {
      if (!(error instanceof Problem)) throw error;
      problems.push({ variable: v.name, problem: error.problem, fix: error.fix });
    }
  }
  return { values: values as Partial<Config>, problems };
}

/** The one fatal `InvalidConfig` error listing every problem (details.problems). */
export function configError(problems: readonly ConfigProblem[], what = "configuration"): AttestmeshError {
  const lines = problems.map((p) => `${p.variable}: ${p.problem}; ${p.fix.replace(/\.$/, "")}.`);
  return fatalError("InvalidConfig", `invalid ${what}:\n  ${lines.join("\n  ")}`, { details: { problems } });
}

/**
 * Reads the configuration; `check` adds problems that involve several variables. Throws `configError`
 * when anything is wrong, else returns the frozen configuration.
 */
export function parseEnv<Config>(
  table: EnvTable<Config>,
  env: Env,
  options: { readonly what?: string; readonly check?: (values: Partial<Config>) => ConfigProblem[] } = {},
): Config {
  const { values, problems } = readEnv(table, env);
  problems.push(...(options.check?.(values) ?? []));
  if (problems.length > 0) throw configError(problems, options.what);
  return Object.freeze(values) as Config;
}

// ---- Parsers shared by the daemons ----

export function integer(min: number, max: number, unit = ""): (text: string) => number {
  return (text) => {
    if (!/^\d+$/.test(text)) {
      throw new Problem(
        `${JSON.stringify(text)} is not a whole number`,
        `use digits only, between ${min} and ${max}${unit}`,
      );
    }
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new Problem(`${text} is outside ${min}..${max}${unit}`, `use a value between ${min} and ${max}`);
    }
    return value;
  };
}

/** A whole number of any size (block numbers, wei). */
export function bigInteger(what: string): (text: string) => bigint {
  return (text) => {
    if (!/^\d+$/.test(text)) {
      throw new Problem(`${JSON.stringify(text)} is not a whole number of ${what}`, "use digits only");
    }
    return BigInt(text);
  };
}

export function oneOf<const T extends readonly string[]>(values: T): (text: string) => T[number] {
  return (text) => {
    if (!values.includes(text)) {
      throw new Problem(`${JSON.stringify(text)} is not one of ${values.join(", ")}`, `use one of those`);
    }
    return text as T[number];
  };
}

export const logLevel: (text: string) => LogLevel = oneOf(LOG_LEVELS);

function urlWithScheme(text: string, schemes: readonly string[], example: string, fix: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // Not echoed: a provider URL carries an API key, and a mistyped one still does.
    throw new Problem("the value (not shown) is not a URL", `use a URL like ${example}`);
  }
  if (!schemes.includes(url.protocol)) {
    throw new Problem(`the scheme ${url.protocol} is not supported`, fix);
  }
  return text;
}

export function httpUrl(text: string): string {
  return urlWithScheme(text, ["http:", "https:"], "http://127.0.0.1:8545", "use an http:// or https:// URL");
}

export function webSocketUrl(text: string): string {
  return urlWithScheme(text, ["ws:", "wss:"], "ws://127.0.0.1:8545", "use a ws:// or wss:// URL");
}

/**
 * A 20-byte address. With `checksum` (the default), mixed case must be a valid EIP-55 checksum;
 * without it, any case is accepted.
 */
export function address(options: { readonly checksum?: boolean } = {}): (text: string) => Address {
  const checksum = options.checksum ?? true;
  return (text) => {
    if (!/^0x[0-9a-fA-F]{40}$/.test(text)) {
      throw new Problem(
        `${JSON.stringify(text)} is not a 20-byte hex address`,
        "use a contract address, 0x followed by 40 hex digits",
      );
    }
    if (checksum && !isAddress(text, { strict: true })) {
      throw new Problem(
        `${text} has mixed case that is not a valid EIP-55 checksum (a typo?)`,
        "copy the address again, or write it all lowercase",
      );
    }
    return getAddress(text);
  };
}

/** A comma-separated, deduplicated, non-empty list of addresses. */
export function addressList(options: { readonly checksum?: boolean } = {}): (text: string) => Address[] {
  const one = address(options);
  return (text) => {
    const list = text
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "")
      .map(one);
    if (list.length === 0) throw new Problem("names no address", "give at least one, comma-separated");
    return [...new Set(list)];
  };
}

/** A secp256k1 private key, boxed; the value is never echoed (a near-miss of a key is still a secret). */
export function privateKey(fix: string): (text: string) => Secret<Hex> {
  return (text) => {
    if (!/^0x[0-9a-fA-F]{64}$/.test(text)) {
      throw new Problem(`the value (not shown) is not 0x followed by 64 hex digits`, fix);
    }
    const key = text.toLowerCase() as Hex;
    if (!secp256k1.utils.isValidSecretKey(Buffer.from(key.slice(2), "hex"))) {
      throw new Problem("the value (not shown) is not a valid secp256k1 private key", "use another key");
    }
    return secret(key);
  };
}

export function dstackEndpoint(text: string): string {
  if (text.startsWith("/")) return text;
  if (/^https?:\/\//.test(text)) return httpUrl(text);
  throw new Problem(
    `${JSON.stringify(text)} is neither an absolute socket path nor an http(s) URL`,
    "use the simulator's socket path, e.g. /tmp/dstack.sock",
  );
}

export function hostName(text: string): string {
  if (/\s/.test(text)) {
    throw new Problem(`${JSON.stringify(text)} contains whitespace`, "use an IP address such as 0.0.0.0");
  }
  return text;
}

export function onOff(text: string): boolean {
  if (text === "on") return true;
  if (text === "off") return false;
  throw new Problem(`${JSON.stringify(text)} is neither on nor off`, "use on or off");
}

export function filePath(text: string): string {
  if (text.includes("\0")) throw new Problem("the path contains a NUL byte", "use a plain file path");
  return text;
}

export function absolutePath(text: string): string {
  if (!text.startsWith("/") || text.includes("\0")) {
    throw new Problem(`${JSON.stringify(text)} is not an absolute path`, "use a path starting with /");
  }
  return text;
}

/** `name`, the daemon's log level: every daemon reads its own, with the same levels and default. */
export function logLevelVariable(name: string): Variable<LogLevel> {
  return { name, default: "info", description: `Log level: ${LOG_LEVELS.join(", ")}.`, parse: logLevel };
}

/** The dstack guest agent's endpoint, under the variable the dstack SDK itself reads. */
export const dstackEndpointVariable: Variable<string> = {
  name: "DSTACK_SIMULATOR_ENDPOINT",
  description:
    "dstack guest agent endpoint (socket path or http URL), as the dstack SDK reads it; unset means /var/run/dstack.sock.",
  parse: dstackEndpoint,
};
