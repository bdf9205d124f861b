// Certificates of members, verified once and cached: nothing about a member counts (a WireGuard peer,
// a CSK sealed to it, a heartbeat or message attributed to it) until its certificate verified offline
// against the pinned trust values and its record (shared/certs/certificate.ts). Verified certificates
// are cached by member id and keys, so asking again costs no RPC call and no signature check; a member
// whose certificate could not be fetched or was refused is asked again only after a backoff (a fake
// member an RPC injects costs a few calls per backoff, not one per pass). Refusals are logged at most
// once a minute per member and reason, and counted by reason.
import {
  type CertificateRefusal,
  type VerifiedCertificate,
  verifyMemberCertificate,
} from "@attestmesh/shared/certs/certificate.ts";
import { metricsOn } from "@attestmesh/shared/service/metrics.ts";
import type { PinnedTrust } from "@attestmesh/shared/service/pinned.ts";
import type { Registry } from "prom-client";
import type { RegistrationLocation, RegistrationSeen } from "../chain/follower.ts";
import { AttestmeshError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Member } from "../model/member.ts";
import type { CertificateSource } from "./source.ts";

export type CertifyResult =
  | { readonly ok: true; readonly verified: VerifiedCertificate }
  | {
      readonly ok: false;
      readonly reason: CertificateRefusal | "CertificateUnavailable";
      readonly detail: string;
    };

export interface MemberCertifier {
  /** The member's verified certificate from the cache, or undefined (never fetches). */
  cached(member: Member): VerifiedCertificate | undefined;
  /**
   * Verifies the member's certificate (cache first; fetched and verified at most once per backoff).
   * `hint`, where the caller read the member's MemberRegistered log, only speeds the fetch up.
   */
  certify(member: Member, hint?: RegistrationLocation): Promise<CertifyResult>;
  /** Members currently refused or unavailable (for the gauge and tests). */
  unverified(): number;
  /** A member was just seen registering: its certificate's reads may start (source.ts `prefetch`). */
  prefetch?(seen: RegistrationSeen): void;
}

/** Cache key: a record whose keys changed is another certificate. */
const keyOf = (m: Member) =>
  `${m.memberId}:${m.appId}:${m.memberKey}:${m.wireguardKey}:${m.identityKey}`.toLowerCase();

export function createMemberCertifier(options: {
  readonly pinned: PinnedTrust;
  readonly source: CertificateSource;
  readonly logger: Logger;
  readonly registry?: Registry;
  /** First retry after a refusal; doubles up to `maxRetryMs`. Default 5 s and 5 min. */
  readonly retryMs?: number;
  readonly maxRetryMs?: number;
  /** Shortest time between two log lines for one member and reason; default 60 s. */
  readonly logEveryMs?: number;
  readonly now?: () => number;
}): MemberCertifier {
  const { pinned, source, logger } = options;
  const now = options.now ?? Date.now;
  const retryMs = options.retryMs ?? 5_000;
  const maxRetryMs = options.maxRetryMs ?? 300_000;
  const logEveryMs = options.logEveryMs ?? 60_000;
  const verified = new Map<string, VerifiedCertificate>();
  const refused = new Map<string, { result: CertifyResult; retryAt: number; delay: number }>();
  const inflight = new Map<string, Promise<CertifyResult>>();
  const logged = new Map<string, number>();
  const { counter, gauge } = metricsOn(options.registry);
  const results = counter(
    "attestmesh_member_certificates_total",
    "Member certificates checked (fetched and verified offline), by result: verified, or the refusal reason.",
    ["result"],
  );
  const unverifiedGauge = gauge(
    "attestmesh_unverified_members",
    "Active members in the chain view whose certificate is refused or unavailable; none of them is a peer, gets the CSK or is attributed anything.",
  );

  async function check(member: Member, key: string, hint?: RegistrationLocation): Promise<CertifyResult> {
    let result: CertifyResult;
    try {
      const started = Date.now();
      const certificate = await source(member, hint);
      const fetchMs = Date.now() - started;
      result = { ok: true, verified: await verifyMemberCertificate(certificate, pinned, member) };
      logger.trace(
        {
          memberId: member.memberId.toString(),
          hinted: hint !== undefined,
          fetchMs,
          verifyMs: Date.now() - started - fetchMs,
        },
        "member certificate fetched and verified",
      );
    } catch (error) {
      if (!(error instanceof AttestmeshError)) {
        result = {
          ok: false,
          reason: "CertificateUnavailable",
          detail: error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error),
        };
      } else {
        result = {
          ok: false,
          reason: error.code as CertificateRefusal | "CertificateUnavailable",
          detail: error.message,
        };
      }
    }
    results.inc({ result: result.ok ? "verified" : result.reason });
    if (result.ok) {
      verified.set(key, result.verified);
      refused.delete(key);
    } else {
      const previous = refused.get(key);
      const delay = Math.min(previous === undefined ? retryMs : previous.delay * 2, maxRetryMs);
      refused.set(key, { result, retryAt: now() + delay, delay });
      const logKey = `${key}:${result.reason}`;
      const last = logged.get(logKey);
      if (last === undefined || now() - last >= logEveryMs) {
        logged.set(logKey, now());
        logger.warn(
          {
            memberId: member.memberId.toString(),
            appId: member.appId,
            reason: result.reason,
            detail: result.detail,
            retryInMs: delay,
          },
          "member not verified: not a peer, no CSK, nothing attributed to it",
        );
      }
    }
    unverifiedGauge.set(refused.size);
    return result;
  }

  return {
    cached: (member) => verified.get(keyOf(member)),
    async certify(member, hint) {
      const key = keyOf(member);
      const hit = verified.get(key);
      if (hit !== undefined) return { ok: true, verified: hit };
      const last = refused.get(key);
      if (last !== undefined && now() < last.retryAt) return last.result;
      const running = inflight.get(key);
      if (running !== undefined) return running;
      const promise = check(member, key, hint).finally(() => inflight.delete(key));
      inflight.set(key, promise);
      return promise;
    },
    unverified: () => refused.size,
    prefetch: (seen) => source.prefetch?.(seen),
  };
}
