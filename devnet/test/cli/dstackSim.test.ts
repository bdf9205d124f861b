// The `attestmesh dstack-sim` CLI (devnet/src/cli/dstackSim.ts) as a child process: it serves the
// official @phala/dstack-sdk client, exits cleanly on a signal, and refuses bad flags with a message.
import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, statSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import { keccak_256 } from "@noble/hashes/sha3";
import { bytesToHex, hexToBytes, utf8ToBytes } from "@noble/hashes/utils";
import { DstackClient } from "@phala/dstack-sdk";
import { createKmsRoot } from "../../src/dstack-sim/simulator.ts";
import {
  APP_ID,
  APP_ID_HEX,
  COMPOSE_HASH,
  DEVNET_ROOT,
  FIXTURE_APP_ID_HEX,
  FIXTURE_APPKEYS,
  FIXTURE_KMS_ROOT,
  verifySdkKey,
} from "../dstack-sim/fixtures.ts";

const REPO_ROOT = resolve(import.meta.dirname, "../../..");
const CLI_MAIN = join(REPO_ROOT, "scripts/src/cli/main.ts");
const CLI_BIN = join(REPO_ROOT, "scripts/src/cli/bin.mjs");

type CliRun = { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string };

/** Runs the CLI to completion. */
async function runCli(args: readonly string[], entry = CLI_MAIN): Promise<CliRun> {
  const child = spawn(process.execPath, [entry, ...args], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [code, signal] = (await once(child, "close")) as [number | null, NodeJS.Signals | null];
  return { code, signal, stdout, stderr };
}

type Serving = { child: ChildProcessWithoutNullStreams; logs: () => string; exit: Promise<CliRun> };

/** Starts `attestmesh dstack-sim …` and resolves once it logs that it is listening. */
async function startCli(args: readonly string[]): Promise<Serving> {
  const child = spawn(process.execPath, [CLI_MAIN, "dstack-sim", ...args], {
    cwd: REPO_ROOT,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const exit = new Promise<CliRun>((done) =>
    child.on("close", (code, signal) => done({ code, signal, stdout, stderr })),
  );
  await new Promise<void>((ready, fail) => {
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('"msg":"dstack simulator listening"')) ready();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    void exit.then((run) =>
      fail(new Error(`dstack-sim exited early (${run.code}): ${run.stderr}${run.stdout}`)),
    );
  });
  return { child, logs: () => stdout, exit };
}

describe("attestmesh dstack-sim (CLI)", () => {
  let dir: string;
  const children: ChildProcessWithoutNullStreams[] = [];

  before(async () => {
    dir = await mkdtemp("/tmp/dstack-sim-cli-");
  });
  afterEach(() => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Starts the CLI on `<dir>/<name>.sock` serving `appId`, with `flags`; the child is killed after the test. */
  async function serve(name: string, appId: string, flags: readonly string[] = []) {
    const socketPath = join(dir, `${name}.sock`);
    const serving = await startCli(["--socket", socketPath, "--app-id", appId, ...flags]);
    children.push(serving.child);
    return { socketPath, serving };
  }

  test("serves the SDK, then exits 0 on SIGTERM and removes its socket", async () => {
    const composeHex = bytesToHex(COMPOSE_HASH);
    const { socketPath, serving } = await serve("term", `0x${APP_ID_HEX}`, [
      "--compose-hash",
      `0x${composeHex}`,
      "--app-name",
      "from-cli",
    ]);
    assert.equal(statSync(socketPath).mode & 0o777, 0o600);
    const client = new DstackClient(socketPath);
    const info = await client.info();
    assert.equal(info.app_id, APP_ID_HEX);
    assert.equal(info.compose_hash, composeHex);
    assert.equal(info.app_name, "from-cli");
    const appPubkey = hexToBytes((info as unknown as { app_public_key: string }).app_public_key);
    const key = await client.getKey("/cli", "cli-purpose", "ed25519");
    assert.equal(verifySdkKey(key, APP_ID, appPubkey, "cli-purpose", "ed25519"), DEVNET_ROOT.address);
    assert.ok(!serving.logs().includes(bytesToHex(key.key)), "the derived key never reaches the log");
    assert.match(serving.logs(), /"path":"\/cli","purpose":"cli-purpose"/);

    serving.child.kill("SIGTERM");
    const run = await serving.exit;
    assert.equal(run.code, 0, run.stderr);
    assert.equal(existsSync(socketPath), false);
  });

  test("SIGINT also exits 0 and removes the socket", async () => {
    const { socketPath, serving } = await serve("int", `0x${APP_ID_HEX}`);
    serving.child.kill("SIGINT");
    const run = await serving.exit;
    assert.equal(run.code, 0, run.stderr);
    assert.equal(existsSync(socketPath), false);
  });

  test("--kms-root-secret-file: the chain verifies to that root", async () => {
    const secret = keccak_256(utf8ToBytes("a private test root"));
    const secretFile = join(dir, "kms-root.hex");
    await writeFile(secretFile, `0x${bytesToHex(secret)}\n`, { mode: 0o600 });
    const { socketPath, serving } = await serve("root", APP_ID_HEX, ["--kms-root-secret-file", secretFile]);
    const client = new DstackClient(socketPath);
    const info = (await client.info()) as unknown as { kms_root_address: string; app_public_key: string };
    const root = createKmsRoot(secret);
    assert.equal(info.kms_root_address, root.address);
    const key = await client.getKey("/x", "x");
    assert.equal(verifySdkKey(key, APP_ID, hexToBytes(info.app_public_key), "x", "secp256k1"), root.address);
    assert.ok(!serving.logs().includes(bytesToHex(secret)), "the secret never reaches the log");
    serving.child.kill("SIGTERM");
    assert.equal((await serving.exit).code, 0);
  });

  test("--appkeys serves dstack's own simulator key file", async () => {
    const appkeysFile = join(dir, "appkeys.json");
    await writeFile(appkeysFile, JSON.stringify(FIXTURE_APPKEYS));
    const { socketPath, serving } = await serve("appkeys", `0x${FIXTURE_APP_ID_HEX}`, [
      "--appkeys",
      appkeysFile,
    ]);
    const client = new DstackClient(socketPath);
    const info = (await client.info()) as unknown as { kms_root_address: string; app_public_key: string };
    assert.equal(info.kms_root_address.toLowerCase(), FIXTURE_KMS_ROOT);
    const key = await client.getKey("/k", "p");
    const signer = verifySdkKey(
      key,
      hexToBytes(FIXTURE_APP_ID_HEX),
      hexToBytes(info.app_public_key),
      "p",
      "secp256k1",
    );
    assert.equal(signer.toLowerCase(), FIXTURE_KMS_ROOT);
    serving.child.kill("SIGTERM");
    assert.equal((await serving.exit).code, 0);
  });

  test("--app-compose, --guest-apis v0 and --no-ed25519-chains: a compose-pinned agent before dstack 0.5.6", async () => {
    const composeFile = join(dir, "app-compose.json");
    const compose = '{"docker_compose_file":"x-attestmesh:\\n  guest_api: v1\\n"}';
    await writeFile(composeFile, compose);
    const { socketPath, serving } = await serve("old", APP_ID_HEX, [
      "--app-compose",
      composeFile,
      "--guest-apis",
      "v0",
      "--no-ed25519-chains",
    ]);
    const client = new DstackClient(socketPath);
    const info = await client.info();
    assert.equal(info.tcb_info.app_compose, compose);
    // GetKey ignores algorithm: the "Ed25519" chain signs the secp256k1 key of the same secret.
    const appPubkey = hexToBytes((info as unknown as { app_public_key: string }).app_public_key);
    const ed = await client.getKey("/e", "e", "ed25519");
    assert.equal(verifySdkKey(ed, APP_ID, appPubkey, "e", "secp256k1"), DEVNET_ROOT.address);
    assert.throws(() => verifySdkKey(ed, APP_ID, appPubkey, "e", "ed25519"), {
      code: "AppSignatureMismatch",
    });
    assert.equal((await client.version()).version, "0.5.8", "a pre-0.6 agent");
    serving.child.kill("SIGTERM");
    assert.equal((await serving.exit).code, 0);
  });

  test("--guest-apis takes only v0 or v0+v1", async () => {
    const run = await runCli([
      "dstack-sim",
      "--socket",
      join(dir, "x.sock"),
      "--app-id",
      APP_ID_HEX,
      "--guest-apis",
      "v1",
    ]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /v0\+v1/);
  });

  test("--help lists dstack-sim, through main.ts and through the bin shim", async () => {
    for (const entry of [CLI_MAIN, CLI_BIN]) {
      const run = await runCli(["--help"], entry);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /Usage: attestmesh/);
      assert.match(run.stdout, /dstack-sim/);
    }
    const sub = await runCli(["dstack-sim", "--help"]);
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /--kms-root-secret-file <file>/);
  });

  const failures: { name: string; args: (dir: string) => string[]; message: RegExp }[] = [
    {
      name: "an app id of the wrong length",
      args: (d) => ["dstack-sim", "--socket", join(d, "a.sock"), "--app-id", "0x1234"],
      message: /--app-id.*20 bytes/,
    },
    {
      name: "a missing --socket",
      args: () => ["dstack-sim", "--app-id", `0x${APP_ID_HEX}`],
      message: /--socket/,
    },
    {
      name: "--appkeys together with --kms-root-secret-file",
      args: (d) => [
        "dstack-sim",
        "--socket",
        join(d, "b.sock"),
        "--app-id",
        APP_ID_HEX,
        "--appkeys",
        "x",
        "--kms-root-secret-file",
        "y",
      ],
      message: /cannot be used with/,
    },
    {
      name: "an unreadable appkeys file",
      args: (d) => [
        "dstack-sim",
        "--socket",
        join(d, "c.sock"),
        "--app-id",
        APP_ID_HEX,
        "--appkeys",
        join(d, "nope"),
      ],
      message: /^attestmesh: cannot read the appkeys file .*ENOENT/,
    },
    {
      name: "a KMS root secret file that is not 32 bytes",
      args: (d) => [
        "dstack-sim",
        "--socket",
        join(d, "d.sock"),
        "--app-id",
        APP_ID_HEX,
        "--kms-root-secret-file",
        join(d, "short-secret"),
      ],
      message: /^attestmesh: .*must hold a 32-byte KMS root secret/,
    },
    {
      name: "an unknown subcommand",
      args: () => ["no-such-command"],
      message: /unknown command/,
    },
  ];

  for (const failure of failures) {
    test(`${failure.name}: exit 1 with a one-line reason and no stack trace`, async () => {
      await writeFile(join(dir, "short-secret"), "0x1234\n");
      const run = await runCli(failure.args(dir));
      assert.equal(run.code, 1, run.stdout);
      const lines = run.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, run.stderr);
      assert.match(lines[0]!, failure.message);
      assert.doesNotMatch(run.stderr, /\n\s+at /);
    });
  }

  test("--debug adds the stack trace and the cause", async () => {
    const run = await runCli([
      "--debug",
      "dstack-sim",
      "--socket",
      join(dir, "e.sock"),
      "--app-id",
      APP_ID_HEX,
      "--appkeys",
      join(dir, "nope"),
    ]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /\n\s+at /);
    assert.match(run.stderr, /caused by: Error: ENOENT/);
  });

  test("a socket that a running simulator holds is refused; that simulator keeps serving", async () => {
    const { socketPath, serving } = await serve("held", APP_ID_HEX);
    const run = await runCli(["dstack-sim", "--socket", socketPath, "--app-id", APP_ID_HEX]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^attestmesh: another server is listening on/);
    assert.equal(await new DstackClient(socketPath).isReachable(), true);
    serving.child.kill("SIGTERM");
    assert.equal((await serving.exit).code, 0);
  });
});
