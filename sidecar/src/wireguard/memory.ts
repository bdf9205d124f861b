// An in-memory WireGuard backend for unit tests. It keeps wg(8)'s semantics where tests can observe
// them — peers keyed by public key, an allowed IP owned by one peer at a time, an endpoint kept when a
// change names none — and records every change so tests can count the operations a reconcile made.
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { InterfaceConfig, PeerConfig, PeerStatus, RouteMtus } from "../model/wireguard.ts";
import type { WireGuardBackend } from "./backend.ts";
import { canonicalCidr } from "./cidr.ts";
import { wireguardKeyPair } from "./keys.ts";
import { validateInterfaceConfig, validatePeerConfig, validateRouteMtus } from "./validate.ts";

/** A change the backend was asked to make; the private key is recorded as its public key only. */
export type MemoryOperation =
  | {
      readonly kind: "up";
      readonly name: string;
      readonly listenPort: number;
      readonly address: string;
      readonly publicKey: string;
    }
  | { readonly kind: "setPeer"; readonly peer: PeerConfig }
  | { readonly kind: "removePeer"; readonly publicKey: string }
  /** Recorded only when the per-peer routes changed: all of them afterwards. */
  | { readonly kind: "setRouteMtus"; readonly routes: RouteMtus }
  | { readonly kind: "down" };

export type MemoryOperationKind = MemoryOperation["kind"] | "peers";

export interface MemoryBackend extends WireGuardBackend {
  /** Every change in call order (reads are not recorded); tests may empty it with `length = 0`. */
  readonly operations: MemoryOperation[];
  /** The interface as `up` left it, or undefined while down. */
  readonly interface: Omit<Extract<MemoryOperation, { kind: "up" }>, "kind"> | undefined;
  /** What `guardPort` was last asked to guard (nothing is filtered in memory); cleared by `down`. */
  readonly guarded: { readonly meshIp: string; readonly port: number } | undefined;
  setRouteMtus(routes: RouteMtus): Promise<void>;
  /** The per-peer route MTUs `setRouteMtus` left (canonical CIDRs); cleared by `down` and a new address. */
  readonly routes: RouteMtus;
  /** Sets a peer's latest handshake (unix seconds) as if WireGuard had completed one. */
  setHandshake(publicKey: string, unixSeconds: number): void;
  /** Sets a peer's traffic counters. */
  setTransfer(publicKey: string, rxBytes: bigint, txBytes: bigint): void;
  /** Makes the next call of `kind` reject with `error` (once). */
  failNext(kind: MemoryOperationKind, error: Error): void;
  /**
   * The interface goes away by itself, as when wireguard-go dies: peers and routes gone, `onLost`
   * listeners told, every operation but `up` and `down` rejects with WireGuardDaemonExited until `up`.
   * The port guard stays, as the real backend keeps it for the interface's name.
   */
  crash(): void;
}

export function createMemoryBackend(): MemoryBackend {
  const operations: MemoryOperation[] = [];
  const peers = new Map<string, PeerStatus>();
  const failures = new Map<MemoryOperationKind, Error>();
  let current: MemoryBackend["interface"];
  let guarded: MemoryBackend["guarded"];
  let routes: RouteMtus = new Map();
  /** Why the interface is gone, after `crash` and until `up`. */
  let lost: AttestmeshError | undefined;
  const lostListeners = new Set<(error: AttestmeshError) => void>();

  function injected(kind: MemoryOperationKind): void {
    const error = failures.get(kind);
    if (error === undefined) return;
    failures.delete(kind);
    throw error;
  }

  function usable(): void {
    if (lost !== undefined) throw lost;
    if (current === undefined) {
      throw new AttestmeshError("The WireGuard interface is not up; call up() first.", {
        code: "WireGuardNotUp",
      });
    }
  }

  function known(publicKey: string): PeerStatus {
    const peer = peers.get(publicKey);
    if (peer === undefined) throw new Error(`memory backend: no peer ${publicKey}`);
    return peer;
  }

  return {
    operations,
    get interface() {
      return current;
    },

    async up(config: InterfaceConfig) {
      injected("up");
      validateInterfaceConfig(config);
      if (current !== undefined && current.name !== config.name) peers.clear();
      lost = undefined;
      // As the real backend: a changed address takes the routes from the old one with it.
      if (current?.address !== config.address) routes = new Map();
      current = {
        name: config.name,
        listenPort: config.listenPort,
        address: config.address,
        publicKey: wireguardKeyPair(config.privateKey).publicKeyBase64,
      };
      operations.push({ kind: "up", ...current });
    },

    async setPeer(peer) {
      injected("setPeer");
      validatePeerConfig(peer);
      usable();
      operations.push({ kind: "setPeer", peer: { ...peer, allowedIps: [...peer.allowedIps] } });
      const allowedIps = [...new Set(peer.allowedIps.map(canonicalCidr))];
      for (const [key, other] of peers) {
        if (key === peer.publicKey) continue;
        const kept = other.allowedIps.filter((cidr) => !allowedIps.includes(cidr));
        if (kept.length !== other.allowedIps.length) peers.set(key, { ...other, allowedIps: kept });
      }
      const previous = peers.get(peer.publicKey);
      const endpoint = peer.endpoint ?? previous?.endpoint;
      peers.set(peer.publicKey, {
        publicKey: peer.publicKey,
        allowedIps,
        ...(endpoint === undefined ? {} : { endpoint }),
        ...(peer.keepaliveSeconds ? { keepaliveSeconds: peer.keepaliveSeconds } : {}),
        latestHandshake: previous?.latestHandshake ?? 0,
        rxBytes: previous?.rxBytes ?? 0n,
        txBytes: previous?.txBytes ?? 0n,
      });
    },

    async removePeer(publicKey) {
      injected("removePeer");
      usable();
      operations.push({ kind: "removePeer", publicKey });
      peers.delete(publicKey);
    },

    async peers() {
      injected("peers");
      usable();
      return [...peers.values()].map((peer) => ({ ...peer, allowedIps: [...peer.allowedIps] }));
    },

    async setRouteMtus(wanted) {
      injected("setRouteMtus");
      validateRouteMtus(wanted);
      usable();
      const next = new Map([...wanted].map(([cidr, mtu]) => [canonicalCidr(cidr), mtu]));
      const same = next.size === routes.size && [...next].every(([cidr, mtu]) => routes.get(cidr) === mtu);
      if (same) return;
      routes = next;
      operations.push({ kind: "setRouteMtus", routes: new Map(next) });
    },

    get routes() {
      return routes;
    },

    async guardPort(meshIp, port) {
      usable();
      guarded = { meshIp, port };
    },

    get guarded() {
      return guarded;
    },

    onLost(listener) {
      lostListeners.add(listener);
      return () => lostListeners.delete(listener);
    },

    async down() {
      injected("down");
      operations.push({ kind: "down" });
      current = undefined;
      lost = undefined;
      guarded = undefined;
      routes = new Map();
      peers.clear();
    },

    setHandshake(publicKey, unixSeconds) {
      peers.set(publicKey, { ...known(publicKey), latestHandshake: unixSeconds });
    },

    setTransfer(publicKey, rxBytes, txBytes) {
      peers.set(publicKey, { ...known(publicKey), rxBytes, txBytes });
    },

    failNext(kind, error) {
      failures.set(kind, error);
    },

    crash() {
      if (current === undefined) return;
      const name = current.name;
      current = undefined;
      routes = new Map();
      peers.clear();
      lost = new AttestmeshError(
        `wireguard-go for ${name} exited unexpectedly (signal SIGKILL); the interface is gone.`,
        {
          code: "WireGuardDaemonExited",
          details: { name, code: null, signal: "SIGKILL" },
        },
      );
      for (const listener of lostListeners) listener(lost);
    },
  };
}
