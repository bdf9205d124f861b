// Runs Pimlico's Alto (the ERC-4337 bundler from the npm registry) against a development chain: the
// devnet and the integration tests use it as a real bundler. Production points sidecars at any
// hosted bundler on Base instead; nothing here is needed there.
import { type ChildProcess, spawn } from "node:child_process";
import { openSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { type Address, createTestClient, type Hex, http, publicActions } from "viem";

const require = createRequire(import.meta.url);

/** Alto's CLI entry (its package `bin` is a shell shim; Node runs the module itself). */
export const ALTO_CLI = join(dirname(require.resolve("@pimlico/alto")), "cli/alto.js");

/**
 * The deterministic-deployment proxy Alto deploys its simulation contracts through. Development chains
 * lack it and Alto's own raw deployment transaction does not apply there, so it is installed with
 * `hardhat_setCode`. This is its published runtime code (CREATE2 with the salt in the first word).
 */
export const DETERMINISTIC_DEPLOYER: Address = "0x4e59b44847b379578588920ca78fbf26c0b4956c";
const DETERMINISTIC_DEPLOYER_CODE: Hex =
  "0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe03601600081602082378035828234f58015156039578182fd5b8082525050506014600cf3";

export interface AltoOptions {
  readonly rpcUrl: string;
  readonly entryPoint: Address;
  readonly port: number;
  /** Submits the bundles; must hold ETH. Passed in the environment, never argv. */
  readonly executorKey: Hex;
  /** Deploys Alto's simulation contracts at start; must hold ETH. */
  readonly utilityKey: Hex;
  readonly logLevel?: "trace" | "debug" | "info" | "warn" | "error";
}

export function altoInvocation(options: AltoOptions): {
  command: string;
  args: string[];
  env: Record<string, string>;
} {
  return {
    command: process.execPath,
    args: [
      ALTO_CLI,
      "--entrypoints",
      options.entryPoint,
      "--rpc-url",
      options.rpcUrl,
      "--port",
      String(options.port),
      // Hardhat has no debug_traceCall JS tracer, which the full ERC-7562 checks need; the operator's
      // paymaster and the member accounts are the only entities this bundler serves.
      "--safe-mode",
      "false",
      "--json",
      "--log-level",
      options.logLevel ?? "warn",
      "--min-bundle-interval",
      "50",
      "--max-bundle-interval",
      "200",
    ],
    env: {
      ALTO_EXECUTOR_PRIVATE_KEYS: options.executorKey,
      ALTO_UTILITY_PRIVATE_KEY: options.utilityKey,
    },
  };
}

/** Installs the deterministic deployer on a Hardhat chain (development chains only). */
export async function prepareDevChain(rpcUrl: string): Promise<void> {
  const test = createTestClient({ mode: "hardhat", transport: http(rpcUrl) }).extend(publicActions);
  const code = await test.getCode({ address: DETERMINISTIC_DEPLOYER });
  if (code === undefined || code === "0x")
    await test.setCode({ address: DETERMINISTIC_DEPLOYER, bytecode: DETERMINISTIC_DEPLOYER_CODE });
}

/** Waits until the bundler answers `eth_supportedEntryPoints` with `entryPoint`. */
export async function waitForBundler(url: string, entryPoint: Address, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_supportedEntryPoints", params: [] }),
        signal: AbortSignal.timeout(2_000),
      });
      const body = (await response.json()) as { result?: string[] };
      if (body.result?.some((e) => e.toLowerCase() === entryPoint.toLowerCase())) return;
      last = JSON.stringify(body);
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(250);
  }
  throw new AttestmeshError(
    `the bundler at ${url} did not serve EntryPoint ${entryPoint} within ${timeoutMs} ms (${last})`,
    {
      code: "BundlerNotReady",
      retryable: true,
    },
  );
}

export interface RunningBundler {
  readonly url: string;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts Alto as a child process (tests); the devnet starts it detached through its own helper. */
export async function startAlto(
  options: AltoOptions & { readonly logFile?: string; readonly timeoutMs?: number },
): Promise<RunningBundler> {
  await prepareDevChain(options.rpcUrl);
  const { command, args, env } = altoInvocation(options);
  const out = options.logFile === undefined ? "ignore" : openSync(options.logFile, "a");
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", out, out] });
  const url = `http://127.0.0.1:${options.port}`;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await Promise.race([exited, sleep(5_000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  try {
    await Promise.race([
      waitForBundler(url, options.entryPoint, options.timeoutMs ?? 60_000),
      exited.then(() => {
        throw new AttestmeshError(`alto exited with ${child.exitCode} before serving`, {
          code: "BundlerExited",
        });
      }),
    ]);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, process: child, stop };
}
