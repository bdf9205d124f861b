// The installed executable: `npx attestmesh` from the repository root runs scripts/src/cli/bin.mjs in a
// child process, with --help, an exit code and one-line errors, and sends a real transaction.
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { bytesToHex } from "viem";
import { cliCluster, OWNER_KEY } from "../helpers/cli.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const run = promisify(execFile);

/** `npx attestmesh …args`; resolves with the exit code instead of throwing on a non-zero one. */
async function npx(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run("npx", ["--no-install", "attestmesh", ...args], {
      cwd: ROOT,
      timeout: 60_000,
      // The bin runs `node` from PATH: the toolchain's (this process's) first.
      env: {
        PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}`,
        HOME: process.env.HOME ?? "/tmp",
        ...env,
      },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === "number" ? e.code : -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

describe("npx attestmesh", async () => {
  const fx = await cliCluster();
  /** The flags naming the test cluster, as an owner passes them. */
  const target = ["--rpc", fx.rpcUrl, "--cluster", fx.deployed.diamond];

  it("--help lists the commands", async () => {
    const help = await npx(["--help"]);
    assert.equal(help.code, 0, help.stderr);
    for (const command of [
      "deploy",
      "compose-hash",
      "allow",
      "deny",
      "revoke",
      "member-app",
      "members",
      "evict",
      "indexer",
      "policy",
      "check",
      "devnet",
    ]) {
      assert.match(help.stdout, new RegExp(`^  ${command}\\b`, "m"), command);
    }
  });

  it("sends a transaction with the key from the environment and prints JSON", async () => {
    const hash = bytesToHex(randomBytes(32));
    const out = await npx(["allow", "compose", hash, ...target, "--yes", "--json"], {
      ATTESTMESH_OWNER_KEY: OWNER_KEY,
    });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(JSON.parse(out.stdout).events[0].name, "ComposeHashAdded");
    assert.equal(await fx.owner.read.isComposeHashAllowed([hash]), true);
    assert.ok(
      !out.stdout.includes(OWNER_KEY.slice(2)) && !out.stderr.includes(OWNER_KEY.slice(2)),
      "the key is never printed",
    );
  });

  it("fails with exit code 1 and one line on stderr", async () => {
    const out = await npx(["allow", "app", "0x1234", ...target, "--yes"]);
    assert.equal(out.code, 1);
    assert.match(
      out.stderr,
      /^attestmesh: app id must be a 0x-prefixed 20-byte hex address, got "0x1234"\n$/,
    );
  });

  it("takes the owner key from Hardhat's keystore when the environment has none", async () => {
    // A throw-away Hardhat config directory holding a development keystore with the owner's key.
    const config = mkdtempSync(join(tmpdir(), "attestmesh-keystore-"));
    after(() => rmSync(config, { recursive: true, force: true }));
    const env = {
      PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}`,
      HOME: config,
      XDG_CONFIG_HOME: config,
    };
    const stored = spawnSync(
      "npx",
      ["--no-install", "hardhat", "keystore", "set", "--dev", "ATTESTMESH_OWNER_KEY"],
      {
        cwd: ROOT,
        env: { ...env, HARDHAT_DISABLE_TELEMETRY_PROMPT: "true" },
        input: `${OWNER_KEY}\n`,
        encoding: "utf8",
        timeout: 60_000,
      },
    );
    assert.equal(stored.status, 0, stored.stderr);
    const hash = bytesToHex(randomBytes(32));
    const out = await npx(["allow", "compose", hash, ...target, "--yes", "--json"], {
      HOME: config,
      XDG_CONFIG_HOME: config,
    });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(JSON.parse(out.stdout).from.toLowerCase(), fx.ownerAddress.toLowerCase());
    assert.equal(await fx.owner.read.isComposeHashAllowed([hash]), true);
  });
});
