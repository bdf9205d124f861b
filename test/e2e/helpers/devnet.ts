// What every end-to-end file needs to drive the devnet: the skip reason where it cannot run, the CLI as
// a subprocess, the devnet's state, commands inside a node's namespace, a TCP echo across the mesh, a
// node's health, metrics and signing key, and a bounded wait that says what it waited for.
import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { waitFor } from "@attestmesh/devnet/orchestration/processes.ts";
import { type DevnetNode, type DevnetState, readState } from "@attestmesh/devnet/orchestration/state.ts";
import { createDstackKeySource, deriveNodeKeys } from "@attestmesh/sidecar/keys.ts";
import { type SigningKey, signingKeyFromSeed } from "@attestmesh/sidecar/meshnet/crypto.ts";

export const execFileAsync = promisify(execFile);
export const ROOT = new URL("../../..", import.meta.url).pathname;
export const CLI = join(ROOT, "scripts/src/cli/main.ts");

/** Why the devnet cannot run here, or false when it can (CI runs as root with TUN devices). */
export const devnetSkip: string | false =
  process.getuid?.() !== 0
    ? "needs root (network namespaces, TUN devices); CI runs it as root"
    : !existsSync("/dev/net/tun")
      ? "needs /dev/net/tun"
      : false;

/** Runs `attestmesh <args>` and returns its stdout; fails with its stderr on a non-zero exit. */
export async function cli(
  args: readonly string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  const { stdout } = await execFileAsync(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    timeout: options.timeoutMs ?? 300_000,
    maxBuffer: 16 * 1024 * 1024,
    ...(options.env === undefined ? {} : { env: options.env }),
  });
  return stdout;
}

/** The devnet's state file (.devnet/state.json) as `devnet up` and `add-node` left it. */
export async function devnetState(): Promise<DevnetState> {
  const state = await readState();
  if (state === undefined) throw new Error("no devnet state: is the devnet up?");
  return state;
}

/**
 * A node's real identity signing key, derived through its simulated guest agent as its sidecar derives
 * it (libsodium must be loaded); the caller destroys it.
 */
export async function nodeSigningKey(node: Pick<DevnetNode, "socketPath">): Promise<SigningKey> {
  const keys = await deriveNodeKeys(createDstackKeySource(node.socketPath));
  return signingKeyFromSeed(Uint8Array.from(keys.identity.secret.reveal()));
}

export function inNetns(netns: string, cmd: string, args: readonly string[], timeoutMs = 30_000) {
  return execFileAsync("ip", ["netns", "exec", netns, cmd, ...args], { timeout: timeoutMs });
}

/**
 * Runs `clientScript` (node -e) in `clientNetns` against a one-shot TCP echo listening on `server`'s
 * mesh IP and `port` in its namespace (the echo exits after `serverMs`); returns what the client printed.
 */
export async function echoRoundTrip(
  server: { readonly netns: string; readonly meshIp: string | null },
  clientNetns: string,
  port: number,
  clientScript: string,
  serverMs: number,
): Promise<string> {
  const serverScript = `const s=require("node:net").createServer(c=>{c.pipe(c);c.on("end",()=>s.close())});s.listen(${port},"${server.meshIp}",()=>console.log("listening"));setTimeout(()=>process.exit(2),${serverMs}).unref();`;
  const child = spawn("ip", ["netns", "exec", server.netns, process.execPath, "-e", serverScript]);
  await new Promise<void>((resolve, reject) => {
    child.stdout.once("data", () => resolve());
    child.once("exit", (code) => reject(new Error(`echo server exited ${code}`)));
  });
  try {
    // The client may run as long as the echo listens (inNetns's own default is 30 s).
    const { stdout } = await inNetns(clientNetns, process.execPath, ["-e", clientScript], serverMs);
    return stdout;
  } finally {
    child.kill();
  }
}

/** What a node's /healthz says of its membership and CSK; each test file adds the fields it reads. */
export interface MemberHealth {
  phase: string;
  memberId: string | null;
  meshIp: string | null;
  cskEpoch: string | null;
  cskAcquired: boolean;
}

/** A node's /healthz document, as the test file types it. */
export async function healthOf<T>(node: { readonly healthUrl: string }): Promise<T> {
  const res = await fetch(node.healthUrl, { signal: AbortSignal.timeout(3000) });
  return (await res.json()) as T;
}

/** The value of metric `name{labels}` on a node's /metrics, 0 when the series is absent. */
export async function metricOf(
  node: { readonly healthUrl: string },
  name: string,
  labels: string,
): Promise<number> {
  const res = await fetch(node.healthUrl.replace("/healthz", "/metrics"), {
    signal: AbortSignal.timeout(3000),
  });
  const line = (await res.text()).split("\n").find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(" ").at(-1));
}

/** `wg show <iface> latest-handshakes` inside `netns`, as the devnet reads it. */
export { latestHandshakes } from "@attestmesh/devnet/orchestration/netns.ts";

/** The devnet's own bounded wait (`waitFor`), a minute unless told otherwise. */
export function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
  intervalMs = 250,
): Promise<T> {
  return waitFor(what, check, timeoutMs, intervalMs);
}
