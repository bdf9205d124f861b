// Serving the CSK to a member that asks over the mesh. A request is answered only if it parses, names
// this cluster and this server, is fresh (timestamp within `maxSkewMs`, nonce not seen before from that
// requester), comes from an active member of the membership view (or the in-memory `lookup` cache: an
// unknown id never costs a chain read), from that member's mesh IP, carries its Ed25519 signature and,
// checked last because it may read the chain, the member stands at the head for the asked epoch
// (standing.ts: active, so not the member whose departure opened it, and not stale: no device revoked,
// compose hash or KMS root withdrawn under it). Last, checked synchronously right before sealing (so a
// verdict that changed while the head was read counts), the attestation gate: this node's
// re-attestation must hold a current passing verdict on the requester (reattest/scheduler.ts `admits`).
// The requester controls its evidence and its timing, and a newcomer is peered (so it can be attested
// over the mesh) before any peer judged it: until a verdict passes it gets "not attested yet", a signed
// answer without a key that tells it to ask again soon; a refused or expired verdict gets no key either.
// The answer is the held CSK of the asked epoch sealed to the requester's on-chain key, "not held", or
// "not attested yet"; any other refused request gets no answer.
//
// After "not attested yet", the key follows as soon as it may (issue 15): the server keeps that request
// (the latest one per requester) for `parkMs`, and when its re-attestation's verdict on the requester
// passes (`attested`) it answers the same request once more, with the key, after running the checks
// that come after the signature again: the requester still in the view with the same keys and mesh IP,
// standing at the head for the asked epoch, and the gate passed, read synchronously before sealing. A
// request is pushed to at most once; a refused, expired or never-judged requester gets nothing.

import { type SigningKey, sealToIdentityKey } from "../meshnet/crypto.ts";
import type { MemberDirectory, MeshMember } from "../meshnet/directory.ts";
import type { Remote } from "../meshnet/socket.ts";
import type { ClusterId } from "../meshnet/wire.ts";
import { WireError } from "../meshnet/wire.ts";
import {
  type CskRequest,
  decodeRequest,
  encodeResponse,
  ResponseStatus,
  type Signed,
  verifySigned,
} from "./codec.ts";
import type { CskHolder } from "./holder.ts";
import type { StandingCheck } from "./standing.ts";

export const SERVE_OUTCOMES = [
  "served",
  "not-held",
  "malformed",
  "wrong-cluster",
  "wrong-server",
  "stale",
  "not-a-member",
  "wrong-source",
  "bad-signature",
  "replay",
  "departed",
  "not-standing",
  "head-behind",
  "head-unreadable",
  "not-attested-yet",
  "attestation-refused",
] as const;
export type ServeOutcome = (typeof SERVE_OUTCOMES)[number];

/**
 * Which key bytes to seal for a verified request; the honest policy returns the held CSK of the asked
 * epoch. Tests replace it to play a malicious member.
 */
export type CskServePolicy = (request: CskRequest, holder: CskHolder) => Uint8Array | undefined;

export const honestServePolicy: CskServePolicy = (request, holder) => {
  const held = holder.current();
  return held !== undefined && held.epoch === request.epoch ? held.key.reveal() : undefined;
};

/**
 * This node's verdict on the requester's live attestation (its record, these keys): passed (current:
 * neither refused nor expired), pending (no verdict yet, or the last one expired or was lifted and not
 * re-proven), refused.
 */
export type AttestationGate = (requester: MeshMember) => "passed" | "pending" | "refused";

export interface CskServerOptions {
  readonly self: bigint;
  readonly cluster: ClusterId;
  readonly key: SigningKey;
  readonly directory: MemberDirectory;
  /** A member not in the view: an in-memory cache only (never a chain read per datagram). */
  readonly lookup?: (memberId: bigint) => MeshMember | undefined;
  /** The requester's standing at the head for the asked epoch; without it the view alone decides. */
  readonly standing?: StandingCheck;
  /** Peer re-attestation's verdict on the requester; without it (re-attestation off) nothing gates. */
  readonly attested?: AttestationGate;
  readonly holder: CskHolder;
  readonly send: (datagram: Uint8Array, to: Remote) => void;
  readonly maxSkewMs: number;
  readonly now?: () => number;
  readonly policy?: CskServePolicy;
  /** Most remembered nonces; the oldest are forgotten first (they are stale by then anyway). */
  readonly maxNonces?: number;
  /**
   * How long a request answered "not attested yet" waits for the verdict (then its key is pushed);
   * default 1 s, the requester's own wait for an answer.
   */
  readonly parkMs?: number;
  /** A requester was told "not attested yet": it is up and reachable, so its check may start now. */
  readonly onNotAttested?: (requester: MeshMember) => void;
}

export interface ServeResult {
  readonly outcome: ServeOutcome;
  readonly requesterId?: bigint;
  readonly detail?: string;
}

export interface CskServer {
  handle(datagram: Uint8Array, from: Remote): Promise<ServeResult>;
  /**
   * This node's re-attestation just passed `requesterId`: if a request of it was answered "not attested
   * yet" within `parkMs`, answer it again with the key (every check after the signature re-run). At most
   * once per request; undefined when there was nothing to answer.
   */
  attested(requesterId: bigint): Promise<ServeResult | undefined>;
}

/** A request answered "not attested yet", kept for the verdict. */
interface Parked {
  readonly request: CskRequest;
  readonly from: Remote;
  /** The requester's identity key the request was verified against: the key is sealed to no other. */
  readonly identityKey: Uint8Array;
  readonly at: number;
}

export function createCskServer(options: CskServerOptions): CskServer {
  const { self, cluster, key, directory, maxSkewMs } = options;
  const now = options.now ?? Date.now;
  const policy = options.policy ?? honestServePolicy;
  const maxNonces = options.maxNonces ?? 10_000;
  const parkMs = options.parkMs ?? 1000;
  /** Requester id → its latest request answered "not attested yet" (one per member of the view). */
  const parked = new Map<bigint, Parked>();
  /** `${requesterId}:${nonceHex}` → wall ms when seen. */
  const seen = new Map<string, number>();

  const prune = (wallMs: number) => {
    for (const [k, at] of seen) {
      if (wallMs - at <= 2 * maxSkewMs && seen.size <= maxNonces) break;
      seen.delete(k);
    }
  };

  return {
    async handle(datagram, from) {
      let signed: Signed<CskRequest>;
      try {
        signed = decodeRequest(datagram);
      } catch (error) {
        if (!(error instanceof WireError)) throw error;
        return { outcome: "malformed", detail: error.message };
      }
      const req = signed.message;
      const requesterId = req.requesterId;
      if (req.chainId !== cluster.chainId || req.cluster !== cluster.cluster) {
        return { outcome: "wrong-cluster", requesterId };
      }
      if (req.serverId !== self)
        return { outcome: "wrong-server", requesterId, detail: `for member ${req.serverId}` };
      const wallMs = now();
      const skew = Number(req.timestampMs) - wallMs;
      if (Math.abs(skew) > maxSkewMs) return { outcome: "stale", requesterId, detail: `${skew} ms off` };
      const requester = directory.get(requesterId) ?? options.lookup?.(requesterId);
      if (requester === undefined) return { outcome: "not-a-member", requesterId };
      if (from.address !== requester.meshIp)
        return { outcome: "wrong-source", requesterId, detail: `from ${from.address}` };
      if (!verifySigned(signed, requester.identityKey)) return { outcome: "bad-signature", requesterId };
      const nonceKey = `${requesterId}:${Buffer.from(req.nonce).toString("hex")}`;
      if (seen.has(nonceKey)) return { outcome: "replay", requesterId };
      seen.set(nonceKey, wallMs);
      prune(wallMs);
      for (const [id, p] of parked) if (wallMs - p.at > parkMs) parked.delete(id);
      return serve(req, requester, from, false);
    },
    async attested(requesterId) {
      const p = parked.get(requesterId);
      if (p === undefined) return undefined;
      // At most one more answer per request, whatever follows.
      parked.delete(requesterId);
      if (now() - p.at > parkMs) return { outcome: "stale", requesterId, detail: "parked too long" };
      const requester = directory.get(requesterId) ?? options.lookup?.(requesterId);
      if (requester === undefined) return { outcome: "not-a-member", requesterId };
      // The record may have changed meanwhile: only the keys and address the request was verified against.
      if (requester.meshIp !== p.from.address || !sameBytes(requester.identityKey, p.identityKey))
        return { outcome: "wrong-source", requesterId, detail: "its record changed since it asked" };
      return serve(p.request, requester, p.from, true);
    },
  };

  /**
   * The checks after the signature (head standing, then the gate with no await before the sealing) and
   * the answer. `pushed`: a second answer to a parked request, sent only with the key.
   */
  async function serve(req: CskRequest, requester: MeshMember, from: Remote, pushed: boolean) {
    const requesterId = req.requesterId;
    if (options.standing !== undefined) {
      const standing = await options.standing.of(requesterId, req.epoch).catch(() => undefined);
      if (standing === undefined) return { outcome: "head-unreadable", requesterId } as const;
      if (standing === "departed") return { outcome: "departed", requesterId } as const;
      // The owner's revocation reached it (peer re-attestation refuses it too): no key, before any eviction.
      if (standing === "stale") return { outcome: "not-standing", requesterId } as const;
      if (standing === "behind") return { outcome: "head-behind", requesterId } as const;
    }
    const answer = (status: ResponseStatus, sealed: Uint8Array) =>
      options.send(
        encodeResponse(
          {
            chainId: cluster.chainId,
            cluster: cluster.cluster,
            serverId: self,
            requesterId,
            epoch: req.epoch,
            nonce: req.nonce,
            status,
            sealed,
          },
          key.sign,
        ),
        from,
      );
    // No await between this check and the sealing below: the verdict read is the one that counts, on
    // the very record (keys) the request was verified against and the key is sealed to.
    const verdict = options.attested?.(requester) ?? "passed";
    if (verdict === "refused") {
      parked.delete(requesterId);
      return { outcome: "attestation-refused", requesterId } as const;
    }
    if (verdict !== "passed") {
      if (pushed) return { outcome: "not-attested-yet", requesterId } as const;
      parked.set(requesterId, {
        request: req,
        from,
        identityKey: requester.identityKey,
        at: now(),
      });
      answer(ResponseStatus.NotAttestedYet, new Uint8Array(0));
      options.onNotAttested?.(requester);
      return { outcome: "not-attested-yet", requesterId } as const;
    }
    // Served now: an older parked request of this requester needs no second answer.
    if (!pushed) parked.delete(requesterId);
    const csk = policy(req, options.holder);
    const sealed = csk === undefined ? undefined : sealToIdentityKey(csk, requester.identityKey);
    // A pushed answer carries a key or nothing: the requester asks again anyway.
    if (sealed === undefined && pushed) return { outcome: "not-held", requesterId } as const;
    answer(sealed === undefined ? ResponseStatus.NotHeld : ResponseStatus.Ok, sealed ?? new Uint8Array(0));
    return { outcome: sealed === undefined ? "not-held" : "served", requesterId } as const;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
