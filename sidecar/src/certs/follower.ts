// The membership view every later stage sees: the chain follower's, minus every active member whose
// certificate did not verify. Reconciling (WireGuard peers), the mesh directory (heartbeats, CSK
// serving and pulling), the gateway hello and message attribution all read this view, so a member an
// RPC made up — or any key no TEE certified — is never a peer, never gets the CSK and is never
// attributed anything. Records that are not active pass through unchanged: they grant nothing, and
// the reconciler needs them to notice this node's own eviction.
import type { MembershipFollower, MembershipSnapshot } from "../chain/follower.ts";
import type { Member } from "../model/member.ts";
import type { MemberCertifier } from "./certifier.ts";

/** Certificates fetched at the same time during one sync. */
const CONCURRENCY = 8;

export function createCertifiedFollower(
  inner: MembershipFollower,
  certifier: MemberCertifier,
): MembershipFollower {
  let snapshot: MembershipSnapshot | undefined;

  async function filter(next: MembershipSnapshot): Promise<MembershipSnapshot> {
    const pending = [...next.members.values()].filter(
      (m) => m.status === "active" && certifier.cached(m) === undefined,
    );
    for (let i = 0; i < pending.length; i += CONCURRENCY) {
      await Promise.all(pending.slice(i, i + CONCURRENCY).map((m) => certifier.certify(m)));
    }
    const previous = snapshot;
    const members = new Map<bigint, Member>();
    let same = previous !== undefined;
    for (const [id, m] of next.members) {
      if (m.status === "active" && certifier.cached(m) === undefined) continue;
      members.set(id, m);
      if (same && previous?.members.get(id) !== m) same = false;
    }
    if (same && previous !== undefined && previous.members.size !== members.size) same = false;
    // An unchanged view keeps its map, so the directories built over it are not rebuilt.
    return { ...next, members: same && previous !== undefined ? previous.members : members };
  }

  return {
    async sync() {
      snapshot = await filter(await inner.sync());
      return snapshot;
    },
    current: () => snapshot,
    invalidate: (reason) => inner.invalidate(reason),
  };
}
