// What may reach ip(8) and wg(8): interface and peer configurations checked before any command runs.
// Both backends validate the same way, so the in-memory one refuses what the real one would.
import { isIP } from "node:net";
import {
  type DeviceConfig,
  type InterfaceConfig,
  type PeerConfig,
  type RouteMtus,
  WG_GATEWAY_MTU,
  WG_MIN_MTU,
} from "../model/wireguard.ts";
import { invalid } from "./errors.ts";
import { isWgBase64Key } from "./keys.ts";

/** Throws `WireGuardInvalidConfig` unless `config` is safe to hand to ip(8) and wg(8). */
export function validateInterfaceConfig(config: InterfaceConfig): void {
  validateDeviceConfig(config);
  if (!isCidr(config.address)) {
    throw invalid(`interface address "${config.address}" needs a prefix, e.g. 10.77.0.1/16`, {
      address: config.address,
    });
  }
}

/** The same for an interface prepared before it has an address (`WireGuardBackend.prepare`). */
export function validateDeviceConfig(config: DeviceConfig): void {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_=+.-]{0,14}$/.test(config.name)) {
    throw invalid(`interface name "${config.name}" is not valid (1-15 of A-Z a-z 0-9 _ = + . -)`, {
      name: config.name,
    });
  }
  if (config.privateKey.length !== 32) {
    throw invalid(`the private key has ${config.privateKey.length} bytes, not 32`, {});
  }
  if (!Number.isInteger(config.listenPort) || config.listenPort < 0 || config.listenPort > 65_535) {
    throw invalid(`listen port ${config.listenPort} is not a port number`, { listenPort: config.listenPort });
  }
}

/** Throws `WireGuardInvalidConfig` unless `peer` is safe to hand to wg(8). */
export function validatePeerConfig(peer: PeerConfig): void {
  if (!isWgBase64Key(peer.publicKey)) {
    throw invalid(`peer public key "${peer.publicKey}" is not a WireGuard key`, {
      publicKey: peer.publicKey,
    });
  }
  const badIp = peer.allowedIps.find((cidr) => !isCidr(cidr));
  if (badIp !== undefined) {
    throw invalid(`allowed IP "${badIp}" of peer ${peer.publicKey} is not a CIDR`, { allowedIp: badIp });
  }
  if (peer.endpoint !== undefined && !isEndpoint(peer.endpoint)) {
    throw invalid(`endpoint "${peer.endpoint}" of peer ${peer.publicKey} is not host:port`, {
      endpoint: peer.endpoint,
    });
  }
  const keepalive = peer.keepaliveSeconds;
  if (keepalive !== undefined && (!Number.isInteger(keepalive) || keepalive < 0 || keepalive > 65_535)) {
    throw invalid(`persistent keepalive ${keepalive} of peer ${peer.publicKey} is not 0-65535 seconds`, {
      keepaliveSeconds: keepalive,
    });
  }
}

/** Throws `WireGuardInvalidConfig` unless every route is a CIDR with an MTU of WG_MIN_MTU..WG_GATEWAY_MTU. */
export function validateRouteMtus(routes: RouteMtus): void {
  for (const [cidr, mtu] of routes) {
    if (!isCidr(cidr)) throw invalid(`route "${cidr}" is not a CIDR`, { route: cidr });
    if (!Number.isInteger(mtu) || mtu < WG_MIN_MTU || mtu > WG_GATEWAY_MTU) {
      throw invalid(`route MTU ${mtu} for ${cidr} is not ${WG_MIN_MTU}..${WG_GATEWAY_MTU}`, {
        route: cidr,
        mtu,
      });
    }
  }
}

function isCidr(value: string): boolean {
  const match = /^([^/]+)\/(\d{1,3})$/.exec(value);
  if (match === null) return false;
  const version = isIP(match[1]!);
  return version !== 0 && Number(match[2]) <= (version === 4 ? 32 : 128);
}

function isEndpoint(value: string): boolean {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9][A-Za-z0-9.-]*)):(\d{1,5})$/.exec(value);
  if (match === null) return false;
  if (match[1] !== undefined && isIP(match[1]) !== 6) return false;
  const port = Number(match[3]);
  return port >= 1 && port <= 65_535;
}
