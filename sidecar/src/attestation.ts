// GET /attestation?nonce=<32 bytes hex>: a fresh quote from the guest agent (v0 GetQuote or v1 Attest,
// per the pinned guest API) whose report data commits to the chain id, the cluster, this member's id,
// its on-chain keys and the caller's nonce (shared/src/attestation/document.ts), served with the event
// log and the exact app-compose document. Rate-limited: a quote costs the guest agent real work, so at
// most `limit` quotes per `windowMs`, whoever asks; further requests get 429 and a Retry-After.
import {
  type AttestationDocument,
  attestationReportData,
  type MemberClaims,
} from "@attestmesh/shared/attestation/document.ts";
import { isSimulatedQuote } from "@attestmesh/shared/attestation/simulated.ts";
import type { EvidenceSource } from "@attestmesh/shared/service/dstack.ts";
import type { Logger } from "pino";

export interface AttestationResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export type AttestationHandler = (url: URL) => Promise<AttestationResponse>;

const json = (status: number, value: unknown, headers: Record<string, string> = {}): AttestationResponse => ({
  status,
  headers: { "content-type": "application/json", "cache-control": "no-store", ...headers },
  body: `${JSON.stringify(value)}\n`,
});

export function createAttestationHandler(options: {
  readonly source: EvidenceSource;
  /** Who this member is on chain; undefined until it is a member. */
  readonly claims: () => MemberClaims | undefined;
  readonly limit: number;
  readonly windowMs: number;
  readonly logger: Logger;
  readonly now?: () => number;
}): AttestationHandler {
  const now = options.now ?? Date.now;
  let served: number[] = [];
  return async (url) => {
    const text = url.searchParams.get("nonce") ?? "";
    if (!/^(0x)?[0-9a-fA-F]{64}$/.test(text)) {
      return json(400, { error: "nonce must be 32 bytes of hex: GET /attestation?nonce=0x<64 hex digits>" });
    }
    const claims = options.claims();
    if (claims === undefined) return json(503, { error: "not a member yet: nothing on chain to attest to" });
    const at = now();
    served = served.filter((t) => at - t < options.windowMs);
    if (served.length >= options.limit) {
      const retry = Math.ceil((options.windowMs - (at - served[0]!)) / 1000);
      return json(
        429,
        { error: "too many attestation requests; retry later" },
        { "retry-after": String(retry) },
      );
    }
    served.push(at);
    const nonce = Buffer.from(text.replace(/^0x/, ""), "hex");
    let evidence: Awaited<ReturnType<EvidenceSource["evidence"]>>;
    try {
      evidence = await options.source.evidence(attestationReportData(claims, nonce));
    } catch (err) {
      options.logger.warn({ err }, "attestation request failed: the guest agent gave no quote");
      return json(503, { error: "the guest agent gave no quote; retry later" });
    }
    const simulated = isSimulatedQuote(Buffer.from(evidence.quote.slice(2), "hex"));
    const document: AttestationDocument = {
      version: 1,
      claims,
      nonce: `0x${nonce.toString("hex")}`,
      guestApi: evidence.guestApi,
      simulated,
      quote: evidence.quote,
      eventLog: evidence.eventLog,
      appCompose: evidence.appCompose,
    };
    options.logger.info(
      { memberId: claims.memberId, guestApi: evidence.guestApi, simulated },
      simulated ? "served a SIMULATED attestation" : "served an attestation",
    );
    return json(200, document);
  };
}
