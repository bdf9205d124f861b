#!/usr/bin/env node
// Writes deploy/<target>/app-compose.json, dstack's app manifest, from deploy/<target>/docker-compose.yaml
// and the settings below, so the two can never drift apart.
//
//   node deploy/render-app-compose.ts            rewrite every app-compose.json, print its compose hash
//   node deploy/render-app-compose.ts --check    exit 1 if any app-compose.json is not what it would write
//   node deploy/render-app-compose.ts --strict   like the first, but refuse template placeholders
//   ... [node|indexer]                           only these targets
//
// The compose hash is sha256 over the exact bytes written (what a CVM measures; the same computation as
// `npx attestmesh compose-hash`). The file is written in dstack's normalised form (keys sorted at every level,
// no whitespace, UTF-8, no trailing newline), so tools that hash the normalised JSON of its content instead
// (`getComposeHash` of @phala/dstack-sdk) give the same answer. Submit the file byte for byte: a tool that
// re-serialises it in another form (e.g. indented) changes the hash the CVM measures and the KMS checks.
import { readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { composeHashOfBytes } from "../scripts/src/owner/composeHash.ts";

const DEPLOY_DIR = fileURLToPath(new URL(".", import.meta.url));

/** The JSON values an app manifest holds. */
export type ManifestValue =
  | string
  | number
  | boolean
  | null
  | ManifestValue[]
  | { [key: string]: ManifestValue };

/** Everything in app-compose.json but the compose file itself. */
export interface ManifestSettings {
  readonly [key: string]: ManifestValue;
  readonly manifest_version: 2;
  readonly name: string;
  readonly runner: "docker-compose";
  /** Encrypted-environment variables the CVM accepts; the compose file's `${VAR}` references, exactly. */
  readonly allowed_envs: string[];
}

export interface Target {
  readonly name: string;
  /** deploy/<name>/docker-compose.yaml → deploy/<name>/app-compose.json */
  readonly dir: string;
  readonly settings: ManifestSettings;
}

const COMMON = {
  manifest_version: 2,
  runner: "docker-compose",
  // Keys come from the dstack KMS, which asks the app's auth contract (a member app of the cluster,
  // deferring to the cluster's policy) whether this compose hash may boot.
  kms_enabled: true,
  key_provider: "kms",
  key_provider_id: "",
  // The gateway carries TCP/TLS to <app-id>-<port>[s].<gateway-domain>: the operator's view of
  // /healthz, the indexer's push port.
  gateway_enabled: true,
  public_sysinfo: true,
  // Verifiers need the TCB info to check the quote.
  public_tcbinfo: true,
  no_instance_id: false,
  // Wait for an authenticated clock before the containers start (TLS to the RPC checks dates).
  secure_time: true,
} as const;

export const TARGETS: readonly Target[] = [
  {
    name: "node",
    dir: join(DEPLOY_DIR, "node"),
    settings: {
      ...COMMON,
      name: "attestmesh-node",
      // Off: dstack publishes every container's output, and a node runs the operator's application
      // beside the sidecar, whose logs are not ours to publish (deploy/README.md, "Public logs").
      public_logs: false,
      allowed_envs: [
        "ATTESTMESH_ACCOUNT_FACTORY",
        "ATTESTMESH_BUNDLER_URL",
        "ATTESTMESH_GAS_KEY",
        "ATTESTMESH_PAYMASTER_URL",
        "ATTESTMESH_RPC_URL",
        "ATTESTMESH_RPC_URLS",
        "PEER_ENDPOINTS_JSON",
      ],
    },
  },
  {
    name: "indexer",
    dir: join(DEPLOY_DIR, "indexer"),
    settings: {
      ...COMMON,
      name: "attestmesh-indexer",
      // On: the indexer is the only container, its logs hold no secret (test/service/log-secrets.test.ts),
      // and its subscribers may audit what it followed (deploy/README.md, "Public logs").
      public_logs: true,
      allowed_envs: ["ATTESTMESH_RPC_URL", "ATTESTMESH_WS_URL"],
    },
  },
];

/** dstack's normalised JSON: object keys sorted at every level, no whitespace, non-ASCII as UTF-8. */
export function normalizedJson(value: ManifestValue): string {
  const sort = (v: ManifestValue): ManifestValue => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === "object") {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((key) => [key, sort(v[key]!)]),
      );
    }
    return v;
  };
  return JSON.stringify(sort(value));
}

/** The names a compose file takes from the environment: `${NAME}`, `${NAME:-…}`, …; `$${…}` is literal. */
export function interpolatedVariables(composeYaml: string): string[] {
  const names = new Set<string>();
  for (const match of composeYaml.matchAll(/\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)/g)) {
    if (match[1] === undefined) names.add(match[2]!);
  }
  return [...names].sort();
}

/** Template values that must be replaced before a real deployment. */
export function placeholders(composeYaml: string): string[] {
  const found: string[] = [];
  if (/@sha256:0{64}\b/.test(composeYaml)) found.push("an image digest is the all-zero placeholder");
  if (/\bghcr\.io\/your-org\//.test(composeYaml)) found.push("an image is still under ghcr.io/your-org/");
  if (/ATTESTMESH_(?:INDEXER_)?CLUSTERS?:\s*"?0x0{40}\b/.test(composeYaml))
    found.push("the cluster (ATTESTMESH_CLUSTER or ATTESTMESH_INDEXER_CLUSTERS) is the zero address");
  for (const key of ["cluster", "member_app_implementation"]) {
    if (new RegExp(`^\\s+${key}:\\s*"0x0{40}"`, "m").test(composeYaml))
      found.push(`x-attestmesh.${key} is the zero address`);
  }
  if (/^\s+kms_roots:.*"0x0{40}"/m.test(composeYaml))
    found.push("x-attestmesh.kms_roots holds the zero address");
  return found;
}

export class RenderError extends Error {}

export function composePath(target: Target): string {
  return join(target.dir, "docker-compose.yaml");
}

export function manifestPath(target: Target): string {
  return join(target.dir, "app-compose.json");
}

/** The exact bytes app-compose.json must hold for this compose file. */
export function renderAppCompose(target: Target, composeYaml: string): string {
  const referenced = interpolatedVariables(composeYaml);
  const allowed = [...target.settings.allowed_envs].sort();
  const unlisted = referenced.filter((name) => !allowed.includes(name));
  const unused = allowed.filter((name) => !referenced.includes(name));
  if (unlisted.length > 0 || unused.length > 0) {
    throw new RenderError(
      `${target.name}: allowed_envs must be exactly the compose file's \${VAR} references` +
        (unlisted.length > 0 ? `; referenced but not allowed: ${unlisted.join(", ")}` : "") +
        (unused.length > 0 ? `; allowed but never referenced: ${unused.join(", ")}` : "") +
        " (fix TARGETS in deploy/render-app-compose.ts or the compose file)",
    );
  }
  return normalizedJson({ ...target.settings, docker_compose_file: composeYaml });
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** Runs the command line; returns the exit code. */
export function main(args: readonly string[]): number {
  const flags = new Set(args.filter((a) => a.startsWith("--")));
  const names = args.filter((a) => !a.startsWith("--"));
  const unknownFlags = [...flags].filter((f) => f !== "--check" && f !== "--strict");
  const unknownNames = names.filter((n) => !TARGETS.some((t) => t.name === n));
  if (unknownFlags.length > 0 || unknownNames.length > 0) {
    process.stderr.write(
      `render-app-compose: unknown ${[...unknownFlags, ...unknownNames].join(", ")}\n` +
        `usage: node deploy/render-app-compose.ts [--check | --strict] [${TARGETS.map((t) => t.name).join("|")} ...]\n`,
    );
    return 2;
  }
  const check = flags.has("--check");
  const strict = flags.has("--strict");
  const targets = names.length === 0 ? TARGETS : TARGETS.filter((t) => names.includes(t.name));
  const root = join(DEPLOY_DIR, "..");
  let failed = false;
  for (const target of targets) {
    const composeFile = relative(root, composePath(target));
    const manifestFile = relative(root, manifestPath(target));
    const yaml = readText(composePath(target));
    if (yaml === undefined) {
      process.stderr.write(`${target.name}: ${composeFile} is missing\n`);
      failed = true;
      continue;
    }
    let manifest: string;
    try {
      manifest = renderAppCompose(target, yaml);
    } catch (error) {
      if (!(error instanceof RenderError)) throw error;
      process.stderr.write(`${error.message}\n`);
      failed = true;
      continue;
    }
    const found = placeholders(yaml);
    if (check) {
      if (readText(manifestPath(target)) !== manifest) {
        process.stderr.write(
          `${manifestFile} does not match ${composeFile}; run: node deploy/render-app-compose.ts\n`,
        );
        failed = true;
      }
      continue;
    }
    if (strict && found.length > 0) {
      process.stderr.write(`${target.name}: ${composeFile} is still a template: ${found.join("; ")}\n`);
      failed = true;
      continue;
    }
    const bytes = Buffer.from(manifest, "utf8");
    writeFileSync(manifestPath(target), bytes);
    process.stdout.write(`${manifestFile}  compose hash ${composeHashOfBytes(bytes)}\n`);
    for (const problem of found) {
      process.stdout.write(`  template: ${problem}; replace it before a real deployment\n`);
    }
  }
  return failed ? 1 : 0;
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2));
