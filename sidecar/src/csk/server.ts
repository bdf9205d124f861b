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
}

export interface CskServer {
  handle(
    datagram: Uint8Array,
    from: Remote,
  ): Promise<{ outcome: ServeOutcome; requesterId?: bigint; detail?: string }>;
}

export function createCskServer(options: CskServerOptions): CskServer {
  const { self, cluster, key, directory, maxSkewMs } = options;
  const now = options.now ?? Date.now;
  const policy = options.policy ?? honestServePolicy;
  const maxNonces = options.maxNonces ?? 10_000;
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
      if (options.standing !== undefined) {
        const standing = await options.standing.of(requesterId, req.epoch).catch(() => undefined);
        if (standing === undefined) return { outcome: "head-unreadable", requesterId };
        if (standing === "departed") return { outcome: "departed", requesterId };
        // The owner's revocation reached it (peer re-attestation refuses it too): no key, before any eviction.
        if (standing === "stale") return { outcome: "not-standing", requesterId };
        if (standing === "behind") return { outcome: "head-behind", requesterId };
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
      if (verdict === "refused") return { outcome: "attestation-refused", requesterId };
      if (verdict !== "passed") {
        answer(ResponseStatus.NotAttestedYet, new Uint8Array(0));
        return { outcome: "not-attested-yet", requesterId };
      }

      const csk = policy(req, options.holder);
      const sealed = csk === undefined ? undefined : sealToIdentityKey(csk, requester.identityKey);
      answer(sealed === undefined ? ResponseStatus.NotHeld : ResponseStatus.Ok, sealed ?? new Uint8Array(0));
      return { outcome: sealed === undefined ? "not-held" : "served", requesterId };
    },
  };
}
