/**
 * Intel's collateral for verifying a TDX quote (PCK CRLs, TCB info, QE identity and their issuer
 * chains, in `@phala/dcap-qvl`'s `Collateral` shape), where it comes from, and the window in which it
 * may be used. Collateral comes from a PCCS the operator names or from a file; there is no third way,
 * and nothing verifies without it.
 *
 * The PCCS source caches per platform (FMSPC and PCK CA) until the earliest `nextUpdate` of the TCB
 * info and the QE identity, so a node verifying many quotes from the same platform asks the PCCS once
 * a month, not once per quote.
 */
import { readFile } from "node:fs/promises";
import { type Collateral, getCollateral, intel, PHALA_PCCS_URL, Quote } from "@phala/dcap-qvl";
import { AttestmeshError } from "../errors.ts";

export type { Collateral } from "@phala/dcap-qvl";

/** Phala's public PCCS, the default in production (`ATTESTMESH_PCCS_URL` overrides it). */
export const DEFAULT_PCCS_URL: string = PHALA_PCCS_URL;

/** What the collateral is for and when it may be used (unix seconds). */
export interface CollateralWindow {
  /** "TDX" for TDX collateral; "SGX" otherwise. */
  readonly tee: string;
  /** Uppercase hex, as Intel writes it. */
  readonly fmspc: string;
  /** The later of the TCB info's and the QE identity's issue dates. */
  readonly notBefore: number;
  /** The earlier of their `nextUpdate`s: after it the collateral is stale. */
  readonly notAfter: number;
}

/** Something that gives collateral for a quote. */
export interface CollateralSource {
  /** For reports: "PCCS <url>" or "file <path>". */
  readonly describe: string;
  get(quote: Uint8Array): Promise<Collateral>;
}

function malformed(message: string, cause?: unknown): never {
  throw new AttestmeshError(`the collateral is malformed: ${message}`, {
    code: "CollateralMalformed",
    ...(cause === undefined ? {} : { cause }),
  });
}

function seconds(text: unknown, field: string): number {
  const ms = typeof text === "string" ? Date.parse(text) : Number.NaN;
  if (!Number.isFinite(ms)) malformed(`${field} is not a date.`);
  return Math.floor(ms / 1000);
}

/** Reads the window and platform out of the collateral's TCB info and QE identity. */
export function collateralWindow(collateral: Collateral): CollateralWindow {
  let tcb: Record<string, unknown>;
  let qe: Record<string, unknown>;
  try {
    tcb = JSON.parse(collateral.tcb_info) as Record<string, unknown>;
    qe = JSON.parse(collateral.qe_identity) as Record<string, unknown>;
  } catch (cause) {
    return malformed("tcb_info or qe_identity is not JSON.", cause);
  }
  if (typeof tcb.fmspc !== "string") malformed("tcb_info has no fmspc.");
  return {
    tee: typeof tcb.id === "string" ? tcb.id : "SGX",
    fmspc: tcb.fmspc.toUpperCase(),
    notBefore: Math.max(
      seconds(tcb.issueDate, "tcb_info.issueDate"),
      seconds(qe.issueDate, "qe_identity.issueDate"),
    ),
    notAfter: Math.min(
      seconds(tcb.nextUpdate, "tcb_info.nextUpdate"),
      seconds(qe.nextUpdate, "qe_identity.nextUpdate"),
    ),
  };
}

/** The platform a TDX quote's PCK certificate names: FMSPC (uppercase hex) and PCK CA. */
export function quotePlatform(quote: Uint8Array): { readonly fmspc: string; readonly ca: string } {
  const parsed = Quote.parse(Buffer.from(quote));
  return {
    fmspc: Buffer.from(intel.getFmspc(parsed)).toString("hex").toUpperCase(),
    ca: intel.getCa(parsed),
  };
}

function isCollateral(value: unknown): value is Collateral {
  if (typeof value !== "object" || value === null) return false;
  const c = value as Record<string, unknown>;
  return (
    typeof c.tcb_info === "string" &&
    typeof c.qe_identity === "string" &&
    typeof c.tcb_info_issuer_chain === "string" &&
    typeof c.qe_identity_issuer_chain === "string" &&
    typeof c.pck_crl_issuer_chain === "string" &&
    c.pck_crl !== undefined &&
    c.root_ca_crl !== undefined &&
    c.tcb_info_signature !== undefined &&
    c.qe_identity_signature !== undefined
  );
}

/** Collateral from a value: the collateral itself or a bundle holding it under `collateral`. */
export function parseCollateral(value: unknown): Collateral {
  const candidate =
    typeof value === "object" && value !== null && "collateral" in value
      ? (value as { collateral: unknown }).collateral
      : value;
  if (!isCollateral(candidate)) {
    malformed(
      "it lacks the fields of Intel's collateral (tcb_info, qe_identity, pck_crl, root_ca_crl, their signatures and issuer chains).",
    );
  }
  collateralWindow(candidate);
  return candidate;
}

/** Collateral saved in a JSON file (the collateral, or a bundle with a `collateral` field). */
export async function readCollateralFile(path: string): Promise<Collateral> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new AttestmeshError(`cannot read the collateral file ${path}; check the path.`, {
      code: "CollateralUnavailable",
      details: { path },
      cause,
    });
  }
  try {
    return parseCollateral(JSON.parse(text));
  } catch (cause) {
    if (cause instanceof AttestmeshError) throw cause;
    return malformed(`${path} is not JSON.`, cause);
  }
}

/** Always the same collateral (a file, or a test's fixture). */
export function fixedCollateral(collateral: Collateral, describe: string): CollateralSource {
  return { describe, get: async () => collateral };
}

/** A collateral file as a source; read on first use, then kept. */
export function fileCollateral(path: string): CollateralSource {
  let loaded: Promise<Collateral> | undefined;
  return {
    describe: `file ${path}`,
    get: () => {
      loaded ??= readCollateralFile(path);
      return loaded;
    },
  };
}

/**
 * Collateral from a PCCS, cached per platform until its `nextUpdate`. `now` (unix seconds) decides
 * staleness; a failed fetch is not cached, so the next quote asks again.
 */
export function pccsCollateral(options: {
  readonly url: string;
  readonly now?: () => number;
}): CollateralSource & { readonly fetches: () => number } {
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  const cache = new Map<string, { readonly notAfter: number; readonly collateral: Promise<Collateral> }>();
  let fetches = 0;
  return {
    describe: `PCCS ${options.url}`,
    fetches: () => fetches,
    async get(quote) {
      let platform: { fmspc: string; ca: string };
      try {
        platform = quotePlatform(quote);
      } catch (cause) {
        throw new AttestmeshError("the quote is malformed: no PCK certificate names its platform.", {
          code: "QuoteMalformed",
          cause,
        });
      }
      const key = `${platform.fmspc}:${platform.ca}`;
      const hit = cache.get(key);
      if (hit !== undefined && now() < hit.notAfter) return hit.collateral;
      fetches += 1;
      const pending = getCollateral(options.url, Buffer.from(quote)).then(
        (collateral) => {
          const window = collateralWindow(collateral);
          cache.set(key, { notAfter: window.notAfter, collateral: Promise.resolve(collateral) });
          return collateral;
        },
        (cause: unknown) => {
          cache.delete(key);
          throw new AttestmeshError(
            `cannot fetch collateral from the PCCS at ${options.url}; check ATTESTMESH_PCCS_URL and that the PCCS is reachable.`,
            { code: "CollateralUnavailable", retryable: true, details: { url: options.url }, cause },
          );
        },
      );
      // Concurrent verifications of the same platform share one fetch.
      cache.set(key, { notAfter: Number.POSITIVE_INFINITY, collateral: pending });
      return pending;
    },
  };
}
