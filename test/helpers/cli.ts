// Runs the `attestmesh` CLI in-process against a cluster on an in-process Hardhat network served over
// HTTP (rpcServer.ts), with captured stdout and stderr. The owner key is Hardhat's account #0 (the
// cluster owner in setupCluster), the stranger's is account #2; both reach the CLI through its env only.
import { after } from "node:test";
import { devnetPrivateKey } from "@attestmesh/devnet/orchestration/accounts.ts";
import { runCli } from "@attestmesh/scripts/cli/main.ts";
import { type ClusterFixture, setupCluster } from "./cluster.ts";
import { serveRpc } from "./rpcServer.ts";

export const OWNER_KEY = devnetPrivateKey(0);
export const STRANGER_KEY = devnetPrivateKey(2);

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed as JSON (throws when it is not). */
  json<T = Record<string, unknown>>(): T;
}

export interface CliOptions {
  /** Environment the CLI sees (default: the owner's key). */
  readonly env?: Record<string, string | undefined>;
  /** Append `--rpc` and `--cluster` (default true). */
  readonly target?: boolean;
}

function capture() {
  let text = "";
  return {
    write(chunk: string) {
      text += chunk;
      return true;
    },
    get text() {
      return text;
    },
  };
}

/** Runs `attestmesh …args` in this process. */
export async function runAttestmesh(
  args: readonly string[],
  env: Record<string, string | undefined>,
): Promise<CliRun> {
  const stdout = capture();
  const stderr = capture();
  const code = await runCli(["node", "attestmesh", ...args], { stdout, stderr, interactive: false, env });
  return {
    code,
    stdout: stdout.text,
    stderr: stderr.text,
    json<T>() {
      return JSON.parse(stdout.text) as T;
    },
  };
}

/** A cluster, its RPC URL, and `cli(...)` bound to both; the server closes after the test file. */
export async function cliCluster(): Promise<
  ClusterFixture & { rpcUrl: string; cli: (args: readonly string[], options?: CliOptions) => Promise<CliRun> }
> {
  const fx = await setupCluster();
  const rpc = await serveRpc(fx.connection.provider);
  after(() => rpc.close());
  const cli = (args: readonly string[], options: CliOptions = {}) =>
    runAttestmesh(
      options.target === false ? args : [...args, "--rpc", rpc.url, "--cluster", fx.deployed.diamond],
      options.env ?? { ATTESTMESH_OWNER_KEY: OWNER_KEY },
    );
  return { ...fx, rpcUrl: rpc.url, cli };
}
