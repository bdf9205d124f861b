// The WireGuard driver seen by the reconcile loop: a small interface with a real backend (wg(8) and
// wireguard-go or the kernel module, wg.ts) and an in-memory one for unit tests (memory.ts).
// Keys are base64 as wg(8) prints them. Private keys enter only through `up`, never through argv.
// The plain data it takes and reports lives in model/wireguard.ts.
import type { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { DeviceConfig, InterfaceConfig, PeerConfig, PeerStatus, RouteMtus } from "../model/wireguard.ts";

export interface WireGuardBackend {
  /**
   * Optional: create the interface with its key and listen port ahead of `up`, while this node has no
   * mesh address yet (before registration), so that `up` then only adds the address and the peers'
   * handshakes do not wait for the device to start (wireguard-go takes about a second).
   */
  prepare?(config: DeviceConfig): Promise<void>;
  /**
   * Create (or take over) and configure the interface, address up. Idempotent. The interface's MTU is
   * WG_GATEWAY_MTU; the route to the mesh subnet carries WG_MTU, so every peer without a route of its
   * own (`setRouteMtus`) gets datagrams that fit the underlay. A changed address drops those routes.
   * An interface that went away by itself (`onLost`) is created anew, without peers or per-peer routes;
   * the port guard of the same interface name stays.
   */
  up(config: InterfaceConfig): Promise<void>;
  /** Add a peer or change an existing one (matched by public key). */
  setPeer(peer: PeerConfig): Promise<void>;
  /** Optional: add or change several peers in one step (as if by `setPeer` each, in order). */
  setPeers?(peers: readonly PeerConfig[]): Promise<void>;
  /** Remove a peer by public key; removing an absent peer is not an error. */
  removePeer(publicKey: string): Promise<void>;
  /**
   * Optional: make the per-peer routes exactly `routes` (mesh CIDR → MTU, WG_MIN_MTU..WG_GATEWAY_MTU):
   * each replaced where its MTU differs, the others removed, so those peers fall back to the subnet's
   * WG_MTU. Takes effect for open TCP connections too: the kernel checks a socket's route again after a
   * route change, and its segment size follows.
   */
  setRouteMtus?(routes: RouteMtus): Promise<void>;
  /** The peers the interface has now. */
  peers(): Promise<PeerStatus[]>;
  /**
   * Admit UDP to `meshIp`:`port` only when it arrived on the interface: Linux delivers a datagram for
   * a local address whatever interface it came in on, so without this the host could reach the mesh
   * port over the underlay. An nftables table of our own, replaced whole on every call (idempotent),
   * removed by `down`. The in-memory backend only records it.
   */
  guardPort(meshIp: string, port: number): Promise<void>;
  /**
   * Optional: `listener` hears of the interface going away by itself (wireguard-go died: crash, OOM
   * kill), once per loss, with the error every later operation throws (WireGuardDaemonExited) until `up`
   * brings the interface back; likewise for a kernel interface, or one taken over, deleted from outside
   * (WireGuardInterfaceGone), which the real backend watches for (`ip monitor link`). Returns a function
   * that stops listening.
   */
  onLost?(listener: (error: AttestmeshError) => void): () => void;
  /** Remove the interface and the port guard (and stop wireguard-go if this backend started it). Idempotent. */
  down(): Promise<void>;
}
