// Serving the CSK to a member that asks over the mesh. A request is answered only if it parses, names
// this cluster and this server, is fresh (timestamp within `maxSkewMs`, nonce not seen before from that
// requester), comes from an active member of the membership view (or the in-memory `lookup` cache: an
// unknown id never costs a chain read), from that member's mesh IP, carries its Ed25519 signature and,
// checked last because it may read the chain, the member stands at the head for the asked epoch
// (standing.ts: active, so not the member whose departure opened it). The answer is the held CSK of the
// asked epoch sealed to the requester's on-chain key, or "not held"; a refused request gets no answer.

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
  "head-behind",
  "head-unreadable",
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

export interface CskServerOptions {
  readonly self: bigint;
  readonly cluster: ClusterId;
  readonly key: SigningKey;
  readonly directory: MemberDirectory;
  /** A member not in the view: an in-memory cache only (never a chain read per datagram). */
  readonly lookup?: (memberId: bigint) => MeshMember | undefined;
  /** The requester's standing at the head for the asked epoch; without it the view alone decides. */
  readonly standing?: StandingCheck;
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
        if (standing === "behind") return { outcome: "head-behind", requesterId };
      }

      const csk = policy(req, options.holder);
      const sealed = csk === undefined ? undefined : sealToIdentityKey(csk, requester.identityKey);
      const response = encodeResponse(
        {
          chainId: cluster.chainId,
          cluster: cluster.cluster,
          serverId: self,
          requesterId,
          epoch: req.epoch,
          nonce: req.nonce,
          status: sealed === undefined ? ResponseStatus.NotHeld : ResponseStatus.Ok,
          sealed: sealed ?? new Uint8Array(0),
        },
        key.sign,
      );
      options.send(response, from);
      return { outcome: sealed === undefined ? "not-held" : "served", requesterId };
    },
  };
}
