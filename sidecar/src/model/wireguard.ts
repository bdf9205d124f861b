// WireGuard's plain data (wgctrl-go's wgtypes): peers as they should be and as the interface reports
// them, and the interface itself. Keys are base64 as wg(8) prints them.

/** One peer as WireGuard should have it; everything here comes from chain state. */
export interface PeerConfig {
  /** The peer's WireGuard public key, base64. */
  readonly publicKey: string;
  /** The peer's mesh address as a /32, e.g. "10.77.0.2/32". */
  readonly allowedIps: readonly string[];
  /** Where its datagrams go, "host:port"; undefined when not known yet. */
  readonly endpoint?: string;
  /** Persistent keepalive in seconds; undefined for none. */
  readonly keepaliveSeconds?: number;
}

/** A peer as WireGuard reports it. */
export interface PeerStatus extends PeerConfig {
  /** Unix seconds of the latest completed handshake, 0 if none. */
  readonly latestHandshake: number;
  readonly rxBytes: bigint;
  readonly txBytes: bigint;
}

export interface InterfaceConfig {
  /** Interface name, "attestmesh0" by default. */
  readonly name: string;
  /** The private key, raw 32 bytes; handed to wg(8) on stdin, never in argv or a file. */
  readonly privateKey: Uint8Array;
  /** UDP listen port. */
  readonly listenPort: number;
  /** This node's mesh address with the cluster prefix, e.g. "10.77.0.1/16". */
  readonly address: string;
}

/** An interface before this node has a mesh address: what `WireGuardBackend.prepare` takes. */
export type DeviceConfig = Omit<InterfaceConfig, "address">;
