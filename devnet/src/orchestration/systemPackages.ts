// The system packages the devnet and the test suites use, installed up front with apt-get so that no
// test skips on a fresh machine for a missing tool: `npm run devnet` installs them in its preflight,
// `npm test` as its first step (`node devnet/src/orchestration/systemPackages.ts`), and CI through
// `npm test`. Installing needs root; without it this says what to run instead.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { which } from "./exec.ts";

const execFileAsync = promisify(execFile);

/** Each tool, the Debian package that provides it, and who uses it. */
export const SYSTEM_PACKAGES = [
  { command: "ip", pkg: "iproute2", usedBy: "network namespaces and veth pairs" },
  { command: "wg", pkg: "wireguard-tools", usedBy: "WireGuard configuration" },
  { command: "wireguard-go", pkg: "wireguard-go", usedBy: "userspace WireGuard interfaces" },
  { command: "ping", pkg: "iputils-ping", usedBy: "reaching nodes across the mesh" },
  { command: "nft", pkg: "nftables", usedBy: "dropping UDP between namespaces (`--block-udp`)" },
  { command: "curl", pkg: "curl", usedBy: "the README's first hour: a sidecar's application API" },
  {
    command: "chromium",
    pkg: "chromium",
    usedBy: "the dashboard's browser tests (headless; nothing downloads a browser)",
  },
] as const;

const ALL_PACKAGES = SYSTEM_PACKAGES.map((p) => p.pkg);

/** The packages whose command is not on PATH. */
export async function missingPackages(): Promise<string[]> {
  const missing: string[] = [];
  for (const { command, pkg } of SYSTEM_PACKAGES) if (!(await which(command))) missing.push(pkg);
  return missing;
}

const isRoot = () => process.getuid?.() === 0;

/** What a person without root runs to get `packages`, and the command that then does the rest. */
function installAdvice(packages: readonly string[], then: string): string {
  return `install them with \`sudo apt-get install -y ${packages.join(" ")}\`, or run \`sudo -E ${then}\`, which installs them itself`;
}

async function aptGet(args: readonly string[]): Promise<void> {
  try {
    await execFileAsync("apt-get", args, {
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (cause) {
    const stderr = (cause as { stderr?: string }).stderr?.trim() ?? "";
    throw new AttestmeshError(`apt-get ${args.join(" ")} failed: ${stderr || String(cause)}`, {
      code: "SystemPackagesInstallFailed",
      cause,
    });
  }
}

/**
 * Installs every missing system package with apt-get, as root. Returns what it installed. Throws when
 * something is missing and cannot be installed here (not root, no apt-get, apt-get failed), saying what
 * to run; `then` names the command to re-run (`npm run devnet`, `npm test`).
 */
export async function installSystemPackages(
  progress: (message: string) => void,
  then: string,
): Promise<string[]> {
  const missing = await missingPackages();
  if (missing.length === 0) return [];
  if (!isRoot()) {
    throw new AttestmeshError(`missing ${missing.join(", ")} and not root: ${installAdvice(missing, then)}`, {
      code: "SystemPackagesNeedRoot",
      details: { missing },
    });
  }
  if (!(await which("apt-get"))) {
    throw new AttestmeshError(
      `missing ${missing.join(", ")} and there is no apt-get: install them with your package manager and run \`${then}\` again`,
      { code: "SystemPackagesNoAptGet", details: { missing } },
    );
  }
  progress(`installing ${missing.join(", ")} with apt-get`);
  try {
    await aptGet(["install", "-y", "-qq", ...missing]);
  } catch {
    // A fresh machine has no package lists yet.
    await aptGet(["update", "-qq"]);
    await aptGet(["install", "-y", "-qq", ...missing]);
  }
  const still = await missingPackages();
  if (still.length > 0) {
    throw new AttestmeshError(
      `apt-get installed ${missing.join(", ")} but ${still.join(", ")} is still missing`,
      {
        code: "SystemPackagesInstallFailed",
        details: { missing: still },
      },
    );
  }
  return missing;
}

// `npm test`'s first step: install as root; without root, say what will skip and what to run, and go on.
if (import.meta.main) {
  const write = (message: string) => process.stdout.write(`${message}\n`);
  if (isRoot()) {
    try {
      const installed = await installSystemPackages(write, "npm test");
      write(`${installed.length > 0 ? "installed" : "present"}: ${ALL_PACKAGES.join(", ")}`);
    } catch (error) {
      process.stderr.write(`${(error as Error).message}\n`);
      process.exitCode = 1;
    }
  } else {
    const missing = await missingPackages();
    const tools = missing.length > 0 ? `, and so will those that need ${missing.join(", ")}` : "";
    const installs = missing.length > 0 ? ` (it installs ${missing.join(", ")} with apt-get)` : "";
    write(
      `not root: the WireGuard interface and end-to-end tests need root (network namespaces, TUN devices) and will skip${tools}. To run every test: \`sudo -E npm test\`${installs}.`,
    );
  }
}
