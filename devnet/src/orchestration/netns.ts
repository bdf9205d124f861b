// The devnet's network: a hub namespace holding a bridge, and one namespace per node joined to the
// hub by a veth pair. Nodes reach each other's WireGuard port over the bridge; nothing touches the
// host's own interfaces.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseUapiPeers } from "@attestmesh/sidecar/wireguard/parse.ts";
import { uapiGet } from "@attestmesh/sidecar/wireguard/wg.ts";
import { run, tryRun } from "./exec.ts";
import { BRIDGE, HUB_NETNS, NETNS_PREFIX, UNDERLAY_HUB_IP } from "./state.ts";

/** Where wireguard-go puts its control sockets, as wg(8) and the sidecar's backend expect. */
const UAPI_DIR = "/var/run/wireguard";

export async function listDevnetNamespaces(): Promise<string[]> {
  const out = await run("ip", ["netns", "list"]);
  return out
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.startsWith(NETNS_PREFIX));
}

export async function createHub(): Promise<void> {
  await run("ip", ["netns", "add", HUB_NETNS]);
  await run("ip", ["-n", HUB_NETNS, "link", "set", "lo", "up"]);
  await run("ip", ["-n", HUB_NETNS, "link", "add", BRIDGE, "type", "bridge"]);
  await run("ip", ["-n", HUB_NETNS, "address", "add", `${UNDERLAY_HUB_IP}/24`, "dev", BRIDGE]);
  await run("ip", ["-n", HUB_NETNS, "link", "set", BRIDGE, "up"]);
}

/** A node namespace with `eth0` at `underlayIp`/24 on the hub's bridge. */
export async function createNodeNamespace(netns: string, index: number, underlayIp: string): Promise<void> {
  const hubSide = `amdevv${index}`;
  await run("ip", ["netns", "add", netns]);
  await run("ip", ["-n", netns, "link", "set", "lo", "up"]);
  await run("ip", [
    "-n",
    HUB_NETNS,
    "link",
    "add",
    hubSide,
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    netns,
  ]);
  await run("ip", ["-n", HUB_NETNS, "link", "set", hubSide, "master", BRIDGE]);
  await run("ip", ["-n", HUB_NETNS, "link", "set", hubSide, "up"]);
  await run("ip", ["-n", netns, "address", "add", `${underlayIp}/24`, "dev", "eth0"]);
  await run("ip", ["-n", netns, "link", "set", "eth0", "up"]);
}

/** Kill every process still inside the namespace, then delete it (its interfaces go with it). */
export async function deleteNamespace(netns: string): Promise<void> {
  const pids = (await run("ip", ["netns", "pids", netns]).catch(() => ""))
    .split("\n")
    .map((p) => Number(p))
    .filter((p) => Number.isInteger(p) && p > 0);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await tryRun("ip", ["netns", "del", netns]);
}

/** The nftables table `--block-udp` adds to a node namespace; deleting it lets UDP through again. */
export const NO_UDP_TABLE = "amdev_noudp";

/** Drops UDP on the node's underlay (eth0) both ways, as dstack does for CVMs; loopback is untouched. */
export async function blockUdp(netns: string): Promise<void> {
  const nft = (...args: string[]) => run("ip", ["netns", "exec", netns, "nft", ...args]);
  await nft("add", "table", "inet", NO_UDP_TABLE);
  await nft(
    "add",
    "chain",
    "inet",
    NO_UDP_TABLE,
    "in",
    "{ type filter hook input priority 0; policy accept; }",
  );
  await nft(
    "add",
    "chain",
    "inet",
    NO_UDP_TABLE,
    "out",
    "{ type filter hook output priority 0; policy accept; }",
  );
  await nft("add", "rule", "inet", NO_UDP_TABLE, "in", "iifname", "eth0", "meta", "l4proto", "udp", "drop");
  await nft("add", "rule", "inet", NO_UDP_TABLE, "out", "oifname", "eth0", "meta", "l4proto", "udp", "drop");
}

export async function unblockUdp(netns: string): Promise<void> {
  await run("ip", ["netns", "exec", netns, "nft", "delete", "table", "inet", NO_UDP_TABLE]);
}

/**
 * Latest handshakes of `wgInterface` in `netns`: public key (base64) → unix seconds (0 = never). A
 * devnet node's wireguard-go answers on its control socket (/var/run/wireguard/<iface>.sock, reachable
 * from here), which costs no process: a benchmark sampling every node every few ms must not load the
 * machine it measures. Only an interface without a socket (a kernel one) is read with wg(8): a socket
 * that does not answer may be a restarting daemon's, between its bind and its listen, and wg(8)
 * deletes a socket that refuses it, which makes that wireguard-go exit.
 */
export async function latestHandshakes(netns: string, wgInterface: string): Promise<Map<string, number>> {
  const socket = join(UAPI_DIR, `${wgInterface}.sock`);
  if (existsSync(socket)) {
    const answer = await uapiGet(socket, 2_000);
    return new Map(parseUapiPeers(answer).map((peer) => [peer.publicKey, peer.latestHandshake] as const));
  }
  const stdout = await run("ip", ["netns", "exec", netns, "wg", "show", wgInterface, "latest-handshakes"]);
  return new Map(
    stdout
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((line) => {
        const [key, at] = line.split("\t");
        return [key!, Number(at)] as const;
      }),
  );
}
