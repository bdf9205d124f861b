// The indexer's quote, verified on the first push of every session (its hello): the TDX quote and its
// Intel collateral at the current time, the compose hash it binds against the registry's code id, and
// report data binding the registry's signing key. Simulated quotes pass only where the cluster allowed
// the simulator (the devnet), and the report says they are simulated. The simulator and TCB rules are
// read at a head a quorum of the pinned providers agree on: one provider claiming the simulator is
// allowed must not let a simulated "indexer" in.
import type { CollateralSource } from "@attestmesh/shared/attestation/collateral.ts";
import type { AttestationPolicy } from "@attestmesh/shared/attestation/policy.ts";
import { type QuoteReport, verifyEvidence } from "@attestmesh/shared/attestation/verify.ts";
import { fromHex } from "@attestmesh/shared/indexer/envelope.ts";
import { quoteReportData } from "@attestmesh/shared/indexer/protocol.ts";
import type { IndexerRecord } from "./registry.ts";

/** Verifies the quote of a hello against the registry's record of the indexer. */
export type IndexerQuoteCheck = (quoteHex: string, record: IndexerRecord) => Promise<QuoteReport>;

export function createIndexerQuoteCheck(options: {
  /** The rules to judge by, read for every check (reattest/policy.ts: agreedAttestationPolicy). */
  readonly policy: () => Promise<AttestationPolicy>;
  readonly collateral: CollateralSource;
  /** Unix seconds; the wall clock unless a test fixes it. */
  readonly now?: () => number;
}): IndexerQuoteCheck {
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  return async (quoteHex, record) => {
    const policy = await options.policy();
    return verifyEvidence(
      { quote: fromHex(quoteHex) },
      {
        at: now(),
        collateral: options.collateral,
        allowSimulator: policy.allowSimulator,
        requireTcbUpToDate: policy.requireTcbUpToDate,
        expectedReportData: quoteReportData(fromHex(record.signingKey)),
        expectedComposeHash: record.codeId,
      },
    );
  };
}
