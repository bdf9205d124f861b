// The view the mesh sees once peers re-attest: the certified view (certs/follower.ts) minus every
// member whose live attestation was refused (scheduler.ts). Reconciling (WireGuard peers), the mesh
// directory (heartbeats, CSK serving and the commit rank), the gateway hello and message attribution
// all read this view, so a refused peer leaves the WireGuard peer set and gets no CSK. Members the
// chain already reads as stale (device revoked, compose hash or KMS root withdrawn) are left out too. The scheduler
// attests the members of the certified view (`certifiedMembers`), refused ones included, so a policy
// that admits one again brings it back. A new certified view (policy events force one) re-judges
// every peer's last evidence against the head's policy.
import type { MembershipFollower, MembershipSnapshot } from "../chain/follower.ts";
import { isStale, type Member } from "../model/member.ts";
import type { Reattestation } from "./scheduler.ts";

export interface AttestedFollower extends MembershipFollower {
  /** The certified view's active members, refused ones included (what the scheduler attests). */
  certifiedMembers(): readonly Member[];
  /** A refusal changed: the next `current()` recomputes the view. */
  refusalsChanged(): void;
}

export function createAttestedFollower(
  inner: MembershipFollower,
  reattestation: () => Reattestation | undefined,
  /** This node's member id: never filtered out (the reconciler must see its own record). */
  self: () => bigint | undefined,
): AttestedFollower {
  let source: MembershipSnapshot | undefined;
  let filtered: MembershipSnapshot | undefined;
  let generation = 0;
  let filteredAt = -1;

  function view(): MembershipSnapshot | undefined {
    const snapshot = inner.current();
    if (snapshot === undefined) return undefined;
    if (snapshot === source && filteredAt === generation && filtered !== undefined) return filtered;
    if (snapshot.members !== source?.members) reattestation()?.policyChanged();
    source = snapshot;
    filteredAt = generation;
    const r = reattestation();
    const me = self();
    // Stale members (the owner's revocation reached them) are out at once, before any re-judgement.
    const refused = [...snapshot.members.values()].filter(
      (m) => m.status === "active" && m.memberId !== me && (isStale(m.standing) || r?.refused(m) === true),
    );
    if (refused.length === 0) {
      filtered = snapshot;
      return filtered;
    }
    const members = new Map(snapshot.members);
    for (const m of refused) members.delete(m.memberId);
    filtered = { ...snapshot, members };
    return filtered;
  }

  return {
    async sync() {
      await inner.sync();
      return view()!;
    },
    current: view,
    invalidate: (reason) => inner.invalidate(reason),
    certifiedMembers: () =>
      [...(inner.current()?.members.values() ?? [])].filter((m) => m.status === "active"),
    refusalsChanged() {
      generation += 1;
    },
  };
}
