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
