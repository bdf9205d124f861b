// The membership view every later stage sees: the chain follower's, minus every active member whose
// certificate did not verify. Reconciling (WireGuard peers), the mesh directory (heartbeats, CSK
// serving and pulling), the gateway hello and message attribution all read this view, so a member an
// RPC made up — or any key no TEE certified — is never a peer, never gets the CSK and is never
// attributed anything. Records that are not active pass through unchanged: they grant nothing, and
// the reconciler needs them to notice this node's own eviction.
//
// Two shortcuts, neither of which trusts the chain. This node's own record — its member id, and
// exactly its own app id, member key, WireGuard key and identity key, which come from this TEE's own
// dstack key chains — passes with no fetch, but only once this node's own certificate, built from what
// it holds, verified offline with the same verifier and pins as every other member's (certs/own.ts):
// its key chains verified at start prove that dstack issued the keys, not that the KMS signer is a
// pinned root or the app id a member app of this cluster, and a node its peers refuse must not count
// itself. Until that check passed, or if it refused, the own record is certified like any other (and
// refused, as its peers refuse it). A record carrying those keys under another id, or this id with any
// other key, is certified like any other. And where the follower read a member's MemberRegistered log,
// the certifier gets its location as a hint (certs/source.ts), which only spares the search for it;
// the reads it leads to start as soon as the log is read, beside the member's record.
import type { MembershipFollower, MembershipSnapshot } from "../chain/follower.ts";
import { isSameNode, type Member } from "../model/member.ts";
import type { MemberCertifier } from "./certifier.ts";

/** Certificates fetched at the same time during one sync. */
const CONCURRENCY = 8;

/** This node's member id and its own keys, as its key derivation proved them. */
export type OwnRecord = Pick<Member, "memberId" | "appId" | "memberKey" | "wireguardKey" | "identityKey">;

/** Whether `m` is this node's own record: its id and every one of its keys. */
function isOwn(m: Member, own: OwnRecord | undefined): boolean {
  return own !== undefined && m.memberId === own.memberId && isSameNode(m, own);
}

export function createCertifiedFollower(
  inner: MembershipFollower,
  certifier: MemberCertifier,
  /**
   * This node's own record once it registered and its own certificate verified offline (certs/own.ts);
   * undefined before, or if it did not verify. A promise while that check is still running.
   */
  self: () => OwnRecord | undefined | Promise<OwnRecord | undefined> = () => undefined,
): MembershipFollower {
  let snapshot: MembershipSnapshot | undefined;
  // A newcomer's certificate is read beside its record, from the moment its registration log is: the
  // sync that found it waits on one round trip, not on the record's and then the certificate's.
  // This node's own registration needs no certificate read (its own check, above).
  inner.onRegistrations?.((seen) => {
    for (const registration of seen) {
      void Promise.resolve(self()).then(
        (own) => {
          if (own?.memberId !== registration.memberId) certifier.prefetch?.(registration);
        },
        () => {},
      );
    }
  });

  async function filter(next: MembershipSnapshot): Promise<MembershipSnapshot> {
    const own = await self();
    const counts = (m: Member) => m.status !== "active" || isOwn(m, own) || certifier.cached(m) !== undefined;
    const pending = [...next.members.values()].filter((m) => !counts(m));
    for (let i = 0; i < pending.length; i += CONCURRENCY) {
      await Promise.all(
        pending
          .slice(i, i + CONCURRENCY)
          .map((m) => certifier.certify(m, next.registrations?.get(m.memberId))),
      );
    }
    const previous = snapshot;
    const members = new Map<bigint, Member>();
    let same = previous !== undefined;
    for (const [id, m] of next.members) {
      if (!counts(m)) continue;
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
