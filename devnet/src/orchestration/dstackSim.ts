// The simulated dstack guest agent of one devnet CVM (a node or the indexer): `attestmesh dstack-sim`
// as a detached process, started once here for both.
import { access, mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { GuestApi, PinnedTrust } from "@attestmesh/shared/service/pinned.ts";
import type { Address, Hex } from "viem";
import { spawnDetached, waitFor } from "./processes.ts";

export interface DevnetDstackSim {
  /** The unix socket the CVM's daemon reaches the guest agent on. */
  readonly socketPath: string;
  readonly appId: Address;
  readonly composeHash: Hex;
  /** The app name the guest agent reports in /Info. */
  readonly appName: string;
  readonly logFile: string;
  /** Who it serves, for the timeout message (e.g. "node2", "the indexer"). */
  readonly owner: string;
  /** The guest API the compose it returns pins (default v0, no pin). */
  readonly guestApi?: GuestApi;
  /** The chain id and RPC providers the compose pins. */
  readonly rpc?: PinnedRpc;
  /** The trust values the compose pins (chain id, cluster, member-app implementation, KMS roots). */
  readonly trust?: PinnedTrust;
  /** A label that makes its compose (the app name in it) differ from every other node's, and so its hash. */
  readonly composeVariant?: string;
  /** The device id Info reports (32 bytes); default the simulator's placeholder every node shares. */
  readonly deviceId?: Hex;
}

/** The chain a compose pins: its id and the RPC provider origins (x-attestmesh.chain_id, rpc_providers). */
export interface PinnedRpc {
  readonly chainId: number;
  readonly providers: readonly string[];
}

/** What a devnet compose may pin: the chain id, and any of the RPC providers and the trust values. */
export type DevnetPins = { readonly chainId: number } & Partial<Omit<PinnedRpc, "chainId">> &
  Partial<Omit<PinnedTrust, "chainId">>;

/**
 * The app-compose document a devnet simulator returns: a compose file whose x-attestmesh block pins
 * `guestApi` and, when given, the chain id, the RPC providers and the devnet's trust values, as
 * deploy/<target>/docker-compose.yaml does for a real CVM.
 */
export function devnetAppCompose(guestApi: GuestApi, pins?: DevnetPins, variant?: string): string {
  const lines: string[] = [];
  if (pins !== undefined) {
    lines.push(`  chain_id: ${pins.chainId}`);
    if (pins.providers !== undefined)
      lines.push(`  rpc_providers: [${pins.providers.map((p) => JSON.stringify(p)).join(", ")}]`);
    if (pins.cluster !== undefined) lines.push(`  cluster: "${pins.cluster}"`);
    if (pins.memberAppImplementation !== undefined)
      lines.push(`  member_app_implementation: "${pins.memberAppImplementation}"`);
    if (pins.kmsRoots !== undefined)
      lines.push(`  kms_roots: [${pins.kmsRoots.map((r) => `"${r}"`).join(", ")}]`);
  }
  const block = lines.map((l) => `${l}\n`).join("");
  return JSON.stringify({
    docker_compose_file: `x-attestmesh:\n  guest_api: ${guestApi}\n${block}services: {}\n`,
    manifest_version: 2,
    name: variant === undefined ? "attestmesh-devnet" : `attestmesh-devnet-${variant}`,
    runner: "docker-compose",
  });
}

/** Starts the simulator and returns its pid once its socket exists. */
export async function startDstackSim(sim: DevnetDstackSim): Promise<number> {
  const cli = fileURLToPath(import.meta.resolve("@attestmesh/scripts/cli/main.ts"));
  const appComposeFile = `${sim.socketPath}.app-compose.json`;
  await mkdir(dirname(appComposeFile), { recursive: true });
  await writeFile(
    appComposeFile,
    devnetAppCompose(
      sim.guestApi ?? "v0",
      sim.rpc === undefined && sim.trust === undefined
        ? undefined
        : ({ ...sim.trust, ...sim.rpc } as DevnetPins),
      sim.composeVariant,
    ),
  );
  const pid = spawnDetached(
    process.execPath,
    [
      cli,
      "dstack-sim",
      "--socket",
      sim.socketPath,
      "--app-id",
      sim.appId,
      "--compose-hash",
      sim.composeHash,
      "--app-name",
      sim.appName,
      "--app-compose",
      appComposeFile,
      ...(sim.deviceId === undefined ? [] : ["--device-id", sim.deviceId]),
    ],
    { logFile: sim.logFile },
  );
  await waitFor(
    `the dstack simulator socket of ${sim.owner}`,
    async () => (await access(sim.socketPath).then(() => true)) || undefined,
    15_000,
  );
  return pid;
}
