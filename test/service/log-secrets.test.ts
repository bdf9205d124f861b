// No secret in a log line (issue 12, finding 4): the sidecar, the indexer and the sponsor run as real
// processes through their bins, configured with credential-bearing URLs (userinfo, an API key in the
// path and one in the query) both for a live RPC (a pass-through to a Hardhat network that ignores
// path and query, as a provider's gateway does) and for dead ports, so start-up, debug, error and retry
// lines are all written. The attacker reads the public logs: every line, stdout and stderr, every
// level, is scanned for every secret value. The owner CLI's error output (plain, --debug, --json) too.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { type DstackSimulator, startDstackSimulator } from "@attestmesh/devnet/dstack-sim/server.ts";
import { createSimulatedCvm } from "@attestmesh/devnet/dstack-sim/simulator.ts";
import { devnetPrivateKey } from "@attestmesh/devnet/orchestration/accounts.ts";
import { devnetAppCompose } from "@attestmesh/devnet/orchestration/dstackSim.ts";
import { deploySponsorship } from "@attestmesh/scripts/deploy/sponsorship.ts";
import { captureLogger, freePort } from "@attestmesh/sidecar/testing/helpers.ts";
import { hexToBytes } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { fixtureTrust } from "../helpers/certs.ts";
import { runAttestmesh } from "../helpers/cli.ts";
import { type ClusterFixture, randomAppId, setupCluster } from "../helpers/cluster.ts";
import { serveRpc } from "../helpers/rpcServer.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BINS = {
  sidecar: join(ROOT, "sidecar", "src", "bin.mjs"),
  indexer: join(ROOT, "indexer", "src", "bin.mjs"),
  sponsor: join(ROOT, "sponsor", "src", "bin.mjs"),
};

const USER = "rpcuser31337";
const PASSWORD = "PASSWORD789xyz";
const PATH_SECRET = "SECRETKEY123";
const QUERY_SECRET = "SECRET456";
const BUNDLER_SECRET = "BUNDLERKEY777";
const PAYMASTER_SECRET = "PAYMASTERKEY888";
const GAS_KEY = devnetPrivateKey(7);
const SIGNER_KEY = devnetPrivateKey(8);

/** Every value the public logs must never show, with a name for the failure message. */
const SECRETS: Record<string, string> = {
  user: USER,
  password: PASSWORD,
  "path secret": PATH_SECRET,
  "query secret": QUERY_SECRET,
  "bundler key": BUNDLER_SECRET,
  "paymaster key": PAYMASTER_SECRET,
  "basic credentials": Buffer.from(`${USER}:${PASSWORD}`).toString("base64"),
  "gas key": GAS_KEY.slice(2),
  "signer key": SIGNER_KEY.slice(2),
};

/** A provider-style URL for `port`: credentials, an API key in the path and one in the query. */
function secretUrl(port: number, pathSecret = PATH_SECRET): string {
  return `http://${USER}:${PASSWORD}@127.0.0.1:${port}/v2/${pathSecret}?apikey=${QUERY_SECRET}`;
}

function assertNoSecret(what: string, text: string): void {
  for (const [name, value] of Object.entries(SECRETS)) {
    assert.ok(!text.includes(value), `${what} shows the ${name}:\n${text}`);
  }
}

interface Run {
  readonly name: string;
  readonly child: ChildProcess;
  output: string;
  readonly exited: Promise<number | null>;
}

describe("no secret in a log line", { timeout: 240_000 }, () => {
  let fx: ClusterFixture;
  let rpc: Awaited<ReturnType<typeof serveRpc>>;
  let dir: string;
  let live: string;
  let dead: string;
  let deadPort: number;
  const simulators: DstackSimulator[] = [];
  const runs: Run[] = [];

  before(async () => {
    fx = await setupCluster();
    rpc = await serveRpc(fx.connection.provider);
    dir = await mkdtemp(join(tmpdir(), "am-logsecrets-"));
    live = secretUrl(Number(new URL(rpc.url).port));
    deadPort = await freePort();
    dead = secretUrl(deadPort);
  });

  after(async () => {
    for (const run of runs) if (run.child.exitCode === null) run.child.kill("SIGKILL");
    for (const sim of simulators) await sim.close();
    await rpc?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  /** A guest agent whose compose pins `rpcUrl`'s host as the one RPC provider (the URL adds credentials). */
  async function simulator(name: string, rpcUrl?: string): Promise<string> {
    const socketPath = join(dir, `${name}.sock`);
    const rpc =
      rpcUrl === undefined ? undefined : { chainId: fx.chainId, providers: [new URL(rpcUrl).origin] };
    simulators.push(
      await startDstackSimulator({
        socketPath,
        cvm: createSimulatedCvm({
          kmsRoot: fx.kmsRoot,
          appId: hexToBytes(randomAppId()),
          // The sidecar starts only with the trust values (and its RPC providers) pinned in its compose.
          appCompose: devnetAppCompose("v0", { ...(await fixtureTrust(fx)), ...rpc }),
        }),
        logger: captureLogger("silent").logger,
      }),
    );
    return socketPath;
  }

  function start(name: string, bin: string, env: Record<string, string>): Run {
    const child = spawn(process.execPath, [bin], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const run: Run = {
      name,
      child,
      output: "",
      exited: new Promise((resolve) => child.once("exit", (code) => resolve(code))),
    };
    child.stdout?.on("data", (chunk: Buffer) => {
      run.output += chunk.toString();
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      run.output += chunk.toString();
    });
    runs.push(run);
    return run;
  }

  /** Waits until `run` printed `pattern` (or exited), then stops it and returns everything it wrote. */
  async function until(run: Run, pattern: RegExp, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(run.output) && run.child.exitCode === null && Date.now() < deadline) {
      await sleep(100);
    }
    if (run.child.exitCode === null) {
      run.child.kill("SIGTERM");
      await Promise.race([run.exited, sleep(5000)]);
      if (run.child.exitCode === null) run.child.kill("SIGKILL");
    }
    await run.exited;
    assert.match(run.output, pattern, `${run.name} never wrote ${pattern}:\n${run.output}`);
    return run.output;
  }

  test("the sidecar, the indexer and the sponsor log URLs as scheme and host only", async () => {
    const [owner] = await fx.viem.getWalletClients();
    const sponsorship = await deploySponsorship({
      wallet: owner!,
      client: fx.publicClient,
      params: {
        cluster: fx.deployed.diamond,
        signer: privateKeyToAccount(SIGNER_KEY).address,
        owner: fx.ownerAddress,
      },
    });
    const bundlerDead = `http://${USER}:${PASSWORD}@127.0.0.1:${deadPort}/rpc/${BUNDLER_SECRET}?apikey=${QUERY_SECRET}`;
    const paymasterDead = `http://${USER}:${PASSWORD}@127.0.0.1:${deadPort}/pm/${PAYMASTER_SECRET}?key=${QUERY_SECRET}`;
    const sidecar = (name: string, rpcUrl: string, socket: string, extra: Record<string, string> = {}) =>
      start(name, BINS.sidecar, {
        ATTESTMESH_RPC_URL: rpcUrl,
        ATTESTMESH_CLUSTER: fx.deployed.diamond,
        ATTESTMESH_CHAIN_ID: String(fx.chainId),
        ATTESTMESH_CONFIRMATIONS: "0",
        ATTESTMESH_POLL_INTERVAL_MS: "200",
        ATTESTMESH_GAS_KEY: GAS_KEY,
        DSTACK_SIMULATOR_ENDPOINT: socket,
        ATTESTMESH_WG_MODE: "memory",
        ATTESTMESH_HEALTH_HOST: "127.0.0.1",
        ATTESTMESH_HEALTH_PORT: "0",
        ATTESTMESH_REGISTER_MAX_BACKOFF_MS: "300",
        ATTESTMESH_LOG_LEVEL: "trace",
        ...extra,
      });
    const indexer = (name: string, rpcUrl: string, socket: string) =>
      start(name, BINS.indexer, {
        ATTESTMESH_INDEXER_RPC_URL: rpcUrl,
        ATTESTMESH_INDEXER_CLUSTERS: fx.deployed.diamond,
        ATTESTMESH_INDEXER_CHAIN_ID: String(fx.chainId),
        ATTESTMESH_INDEXER_CONFIRMATIONS: "0",
        ATTESTMESH_INDEXER_HOST: "127.0.0.1",
        ATTESTMESH_INDEXER_PORT: "0",
        ATTESTMESH_INDEXER_POLL_INTERVAL_MS: "200",
        ATTESTMESH_INDEXER_LOG_LEVEL: "trace",
        DSTACK_SIMULATOR_ENDPOINT: socket,
      });
    const sponsor = (name: string, rpcUrl: string) =>
      start(name, BINS.sponsor, {
        SPONSOR_RPC_URL: rpcUrl,
        SPONSOR_CHAIN_ID: String(fx.chainId),
        SPONSOR_CLUSTER: fx.deployed.diamond,
        SPONSOR_ENTRY_POINT: sponsorship.entryPoint,
        SPONSOR_ACCOUNT_FACTORY: sponsorship.accountFactory,
        SPONSOR_PAYMASTER: sponsorship.paymaster,
        SPONSOR_SIGNER_KEY: SIGNER_KEY,
        SPONSOR_PORT: "0",
        SPONSOR_LOG_LEVEL: "trace",
        SPONSOR_STATE_DB: join(dir, `${name.replace(/\W+/g, "-")}.sqlite`),
      });

    // Live RPC, sponsored writes through a dead bundler and paymaster: the start line names all three
    // URLs, and the writer's failures and retries follow.
    const sidecarLive = sidecar("sidecar (live RPC, dead bundler)", live, await simulator("s1", live), {
      ATTESTMESH_BUNDLER_URL: bundlerDead,
      ATTESTMESH_PAYMASTER_URL: paymasterDead,
      ATTESTMESH_ACCOUNT_FACTORY: sponsorship.accountFactory,
      ATTESTMESH_ENTRY_POINT: sponsorship.entryPoint,
    });
    const sidecarDead = sidecar("sidecar (dead RPC)", dead, await simulator("s2", dead));
    const indexerLive = indexer("indexer (live RPC)", live, await simulator("i1"));
    const indexerDead = indexer("indexer (dead RPC)", dead, await simulator("i2"));
    const sponsorLive = sponsor("sponsor (live RPC)", live);
    const sponsorDead = sponsor("sponsor (dead RPC)", dead);

    const outputs = await Promise.all([
      until(sidecarLive, /"level":(40|50)[^\n]*(retry|retrying|failed)/i),
      until(sidecarDead, /"level":(40|50)[^\n]*(retry|retrying|failed)/i),
      until(indexerLive, /"msg":"indexer listening"/),
      until(indexerDead, /could not start; retrying/),
      until(sponsorLive, /"msg":"sponsoring member operations"/),
      until(sponsorDead, /attestmesh-sponsor: /),
    ]);
    for (const [i, output] of outputs.entries()) assertNoSecret(runs[i]!.name, output);

    // The configuration is still named, as scheme and host.
    const first = (text: string) =>
      JSON.parse(text.split("\n").find((line) => line.includes('"config":'))!) as {
        config: Record<string, unknown>;
      };
    const host = `http://127.0.0.1:${new URL(rpc.url).port}`;
    assert.equal(first(outputs[0]!).config.rpcUrl, host);
    assert.equal(first(outputs[0]!).config.bundlerUrl, `http://127.0.0.1:${deadPort}`);
    assert.equal(first(outputs[0]!).config.paymasterUrl, `http://127.0.0.1:${deadPort}`);
    assert.equal(first(outputs[2]!).config.rpcUrl, host);
    assert.equal(first(outputs[4]!).config.rpcUrl, host);
    // The errors still say where: the dead host and port.
    assert.ok(outputs[1]!.includes(`127.0.0.1:${deadPort}`), "the dead RPC's host is named");
    for (const output of outputs.slice(0, 4)) {
      assert.ok(
        output.split("\n").every((line) => line.trim() === "" || line.startsWith("{")),
        "every line is a JSON log record",
      );
    }
  });

  test("the owner CLI's errors show no secret, plain, with --debug and with --json", async () => {
    const runsOf = [
      [["members", "--cluster", fx.deployed.diamond], dead],
      [["members", "--cluster", fx.deployed.diamond, "--debug"], dead],
      [["members", "--cluster", fx.deployed.diamond, "--json"], dead],
      // A live RPC and a cluster address with no code: the failure comes from a contract read.
      [["members", "--cluster", "0x000000000000000000000000000000000000dEaD", "--debug"], live],
      [["members", "--cluster", "0x000000000000000000000000000000000000dEaD", "--json"], live],
    ] as const;
    for (const [args, url] of runsOf) {
      const result = await runAttestmesh(args, { ATTESTMESH_RPC_URL: url });
      assert.equal(result.code, 1, `${args.join(" ")} fails`);
      assert.ok(result.stderr.startsWith("attestmesh: "), result.stderr);
      assertNoSecret(`attestmesh ${args.join(" ")}`, result.stdout + result.stderr);
    }
  });
});
