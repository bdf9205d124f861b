// Desired WireGuard peers against the current ones: what to add, change and remove, and the order to
// apply it in. Pure apart from `applyDiff`, which only calls the backend.
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import type { PeerConfig } from "../model/wireguard.ts";
import type { WireGuardBackend } from "../wireguard/backend.ts";
import { canonicalCidr } from "../wireguard/cidr.ts";

export interface PeerDiff {
  /** Peers the interface does not have yet. */
  readonly add: PeerConfig[];
  /** Peers it has with other allowed IPs, endpoint or keepalive; each carries the full desired config. */
  readonly update: PeerConfig[];
  /** Public keys of peers that are no longer desired. */
  readonly remove: string[];
}

/**
 * The changes that turn `current` into `desired`, matched by public key; unchanged peers appear nowhere.
 * `current` may be `backend.peers()` (PeerStatus extends PeerConfig).
 *
 * A desired peer without an endpoint accepts whatever endpoint the interface has: wg(8) cannot clear an
 * endpoint, and WireGuard learns one from the peer's own packets, so comparing would rewrite it forever.
 * Endpoints compare as strings: give them as wg(8) prints them (`1.2.3.4:51820`, `[fd00::1]:51820`), not
 * as host names, which wg resolves and then reports as addresses.
 *
 * Throws `DuplicatePeerKey` / `DuplicateAllowedIp` when `desired` names a key or an allowed IP twice:
 * WireGuard keeps one peer per key and one owner per IP, so such a state can never converge. Deciding
 * which member wins is the caller's policy, not this function's.
 */
export function diffPeers(current: readonly PeerConfig[], desired: readonly PeerConfig[]): PeerDiff {
  assertConsistent(desired);
  const currentByKey = new Map(current.map((peer) => [peer.publicKey, peer]));
  const desiredKeys = new Set(desired.map((peer) => peer.publicKey));
  const add: PeerConfig[] = [];
  const update: PeerConfig[] = [];
  for (const peer of desired) {
    const existing = currentByKey.get(peer.publicKey);
    if (existing === undefined) add.push(peer);
    else if (!samePeer(existing, peer)) update.push(peer);
  }
  const remove = current.filter((peer) => !desiredKeys.has(peer.publicKey)).map((peer) => peer.publicKey);
  return { add, update, remove };
}

/** True when the diff changes nothing. */
export function isEmptyDiff(diff: PeerDiff): boolean {
  return diff.add.length === 0 && diff.update.length === 0 && diff.remove.length === 0;
}

/**
 * Applies `diff` one call per peer (adds and updates in one call where the backend has `setPeers`): adds and updates first, removals last, so an allowed IP that moves to
 * a new key (a rotated member, a reused address) is routed to its new owner before the old peer goes, and
 * a failure half-way never leaves fewer peers than before. Returns the number of peer operations (one per peer);
 * stops at the first failure (the next reconcile recomputes the diff).
 */
export async function applyDiff(
  backend: Pick<WireGuardBackend, "setPeer" | "setPeers" | "removePeer">,
  diff: PeerDiff,
): Promise<number> {
  let operations = 0;
  const set = [...diff.add, ...diff.update];
  if (backend.setPeers !== undefined && set.length > 1) {
    // One step for every add and change (wg.ts: one wg(8) call), so a newcomer's peers all start
    // their handshakes together instead of one command apart.
    await backend.setPeers(set);
    operations += set.length;
  } else {
    for (const peer of set) {
      await backend.setPeer(peer);
      operations += 1;
    }
  }
  for (const publicKey of diff.remove) {
    await backend.removePeer(publicKey);
    operations += 1;
  }
  return operations;
}

function samePeer(current: PeerConfig, desired: PeerConfig): boolean {
  return (
    sameIps(current.allowedIps, desired.allowedIps) &&
    (desired.endpoint === undefined || desired.endpoint === current.endpoint) &&
    (current.keepaliveSeconds ?? 0) === (desired.keepaliveSeconds ?? 0)
  );
}

function sameIps(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a.map(canonicalCidr));
  const right = new Set(b.map(canonicalCidr));
  return left.size === right.size && [...left].every((cidr) => right.has(cidr));
}

function assertConsistent(desired: readonly PeerConfig[]): void {
  const keys = new Set<string>();
  const ipOwners = new Map<string, string>();
  for (const peer of desired) {
    if (keys.has(peer.publicKey)) {
      throw new AttestmeshError(
        `Desired WireGuard state lists peer ${peer.publicKey} twice; drop duplicate keys when building it.`,
        { code: "DuplicatePeerKey", details: { publicKey: peer.publicKey } },
      );
    }
    keys.add(peer.publicKey);
    for (const cidr of new Set(peer.allowedIps.map(canonicalCidr))) {
      const owner = ipOwners.get(cidr);
      if (owner !== undefined) {
        throw new AttestmeshError(
          `Desired WireGuard state gives allowed IP ${cidr} to both ${owner} and ${peer.publicKey}; ` +
            "one address must have one owner.",
          { code: "DuplicateAllowedIp", details: { allowedIp: cidr, publicKeys: [owner, peer.publicKey] } },
        );
      }
      ipOwners.set(cidr, peer.publicKey);
    }
  }
}
