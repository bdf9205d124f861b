// Parsing wg(8)'s machine-readable output.
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { PeerStatus } from "../model/wireguard.ts";
import { isWgBase64Key } from "./keys.ts";

/**
 * Peers from `wg show <name> dump`: tab-separated, the first line is the interface (and holds its
 * private key, so it is dropped unread), then one line per peer: public key, preshared key, endpoint,
 * allowed IPs, latest handshake, rx bytes, tx bytes, persistent keepalive.
 */
export function parseWgDump(dump: string): PeerStatus[] {
  const lines = dump.split("\n").filter((line) => line.length > 0);
  return lines.slice(1).map((line, index) => {
    const fields = line.split("\t");
    const [publicKey, , endpoint, allowedIps, handshake, rx, tx, keepalive] = fields;
    const numeric = /^\d+$/.test(`${handshake}${rx}${tx}`) && /^(off|\d+)$/.test(`${keepalive}`);
    if (fields.length !== 8 || !isWgBase64Key(publicKey!) || !numeric) {
      // The line itself is not quoted: its second field is a preshared key.
      throw new AttestmeshError(
        `Unexpected \`wg show dump\` peer line ${index + 1} (${fields.length} fields); is wg(8) too old?`,
        { code: "WireGuardDumpUnparsable", details: { line: index + 1, fields: fields.length } },
      );
    }
    return {
      publicKey: publicKey!,
      allowedIps: allowedIps === "(none)" ? [] : allowedIps!.split(","),
      ...(endpoint === "(none)" ? {} : { endpoint: endpoint! }),
      ...(keepalive === "off" ? {} : { keepaliveSeconds: Number(keepalive) }),
      latestHandshake: Number(handshake),
      rxBytes: BigInt(rx!),
      txBytes: BigInt(tx!),
    };
  });
}

/**
 * Peers from a userspace WireGuard's `get=1` answer on its control socket (the cross-platform UAPI that
 * wireguard-go serves at /var/run/wireguard/<name>.sock; what `wg show dump` reads there itself):
 * `key=value` lines, interface keys first, then each peer from its `public_key` (hex) on, ending with
 * `errno=0`. Private and preshared keys are skipped unread; a line it does not understand is refused
 * without quoting it.
 */
export function parseUapiPeers(answer: string): PeerStatus[] {
  const unparsable = (why: string, line: number) =>
    new AttestmeshError(`Unexpected WireGuard control socket answer (line ${line}: ${why})`, {
      code: "WireGuardDumpUnparsable",
      details: { line, why },
    });
  const peers: PeerStatus[] = [];
  let peer:
    | {
        publicKey: string;
        allowedIps: string[];
        endpoint?: string;
        keepaliveSeconds?: number;
        latestHandshake: number;
        rxBytes: bigint;
        txBytes: bigint;
      }
    | undefined;
  let errno: string | undefined;
  const lines = answer.split("\n");
  for (const [index, line] of lines.entries()) {
    if (line === "") continue;
    const at = line.indexOf("=");
    if (at <= 0) throw unparsable("not key=value", index + 1);
    const key = line.slice(0, at);
    const value = line.slice(at + 1);
    const count = () => {
      if (!/^\d+$/.test(value)) throw unparsable(`${key} is not a number`, index + 1);
      return value;
    };
    if (key === "errno") {
      errno = value;
      continue;
    }
    if (key === "public_key") {
      if (!/^[0-9a-f]{64}$/.test(value)) throw unparsable("public_key is not 32 bytes of hex", index + 1);
      if (peer !== undefined) peers.push(peer);
      peer = {
        publicKey: Buffer.from(value, "hex").toString("base64"),
        allowedIps: [],
        latestHandshake: 0,
        rxBytes: 0n,
        txBytes: 0n,
      };
      continue;
    }
    if (peer === undefined) continue; // interface keys (private_key, listen_port, fwmark)
    if (key === "endpoint") peer.endpoint = value;
    else if (key === "allowed_ip") peer.allowedIps.push(value);
    else if (key === "last_handshake_time_sec") peer.latestHandshake = Number(count());
    else if (key === "rx_bytes") peer.rxBytes = BigInt(count());
    else if (key === "tx_bytes") peer.txBytes = BigInt(count());
    else if (key === "persistent_keepalive_interval") {
      const seconds = Number(count());
      if (seconds > 0) peer.keepaliveSeconds = seconds;
    }
    // preshared_key, protocol_version, last_handshake_time_nsec: not part of the peer status.
  }
  if (errno === undefined) throw unparsable("no errno: the answer was cut off", lines.length);
  if (errno !== "0") {
    throw new AttestmeshError(`The WireGuard control socket answered errno=${errno}`, {
      code: "WireGuardDumpUnparsable",
      details: { errno },
    });
  }
  if (peer !== undefined) peers.push(peer);
  return peers;
}
