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

/**
 * The route MTU of the mesh subnet, and so of every peer reached over direct UDP: what fits a 1500-byte
 * underlay with WireGuard's 80 bytes of IPv6, UDP and WireGuard headers (wg-quick's default).
 */
export const WG_MTU = 1420;

/**
 * The interface MTU, and the route MTU of each peer on the gateway path: its WireGuard datagrams go to
 * the bridge over loopback and on as frames of a TLS stream, never as UDP on a wire, so their size is
 * not bounded by any underlay. 4,064 inner bytes make a 4,096-byte datagram (32 bytes of WireGuard's
 * own), the largest frame every sidecar's bridge accepts (transport/frame.ts DEFAULT_MAX_PAYLOAD), so
 * nodes that still run 1420 take them. Fewer, larger datagrams: the bridges' cost is mostly per
 * datagram (docs/performance.md).
 */
export const WG_GATEWAY_MTU = 4064;

/** The smallest route MTU accepted: IPv6's minimum link MTU. */
export const WG_MIN_MTU = 1280;

/**
 * Route MTUs for single peers, on top of the mesh subnet's (WG_MTU): mesh address as a CIDR (the
 * peer's /32) → MTU. Exactly these routes exist after `WireGuardBackend.setRouteMtus`.
 */
export type RouteMtus = ReadonlyMap<string, number>;
