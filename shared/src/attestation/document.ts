/**
 * A member's attestation as `GET /attestation?nonce=…` serves it and `attestmesh attest` saves it: a
 * fresh quote whose report data commits to who the member is on chain (chain id, cluster, member id,
 * its member key, WireGuard key and identity key) and to the caller's nonce, with the event log and the
 * exact app-compose document. The report data is
 *
 *   keccak256("attestmesh-attestation-v1") || keccak256(abi.encode(chainId, cluster, memberId,
 *                                                       memberKey, wireguardKey, identityKey, nonce))
 *
 * so a verifier recomputes it from the chain's record and its own nonce, never from the document.
 *
 * Files are read in this form, or in the bundle form of the test fixtures (a quote with its
 * collateral, `tcb_info.event_log`, `tcb_info.app_compose` and a `verifyAt` time).
 */
import { keccak_256 } from "@noble/hashes/sha3";
import { concatBytes, utf8ToBytes } from "@noble/hashes/utils";
import { type Address, encodeAbiParameters, type Hex, hexToBytes, isAddress, isHex } from "viem";
import { AttestmeshError } from "../errors.ts";
import { type Collateral, parseCollateral } from "./collateral.ts";
import { type EventLogEntry, parseEventLog } from "./eventLog.ts";
import type { Evidence } from "./verify.ts";

export const ATTESTATION_DOCUMENT_VERSION = 1;
const TAG = keccak_256(utf8ToBytes("attestmesh-attestation-v1"));

/** Who the member is on chain: what its attestation's report data commits to. */
export interface MemberClaims {
  readonly chainId: number;
  readonly cluster: Address;
  /** Decimal. */
  readonly memberId: string;
  readonly memberKey: Address;
  /** 32 bytes, 0x-hex. */
  readonly wireguardKey: Hex;
  /** 32 bytes, 0x-hex. */
  readonly identityKey: Hex;
}

/** The served (and saved) attestation. */
export interface AttestationDocument {
  readonly version: typeof ATTESTATION_DOCUMENT_VERSION;
  readonly claims: MemberClaims;
  /** The caller's nonce, 32 bytes, 0x-hex. */
  readonly nonce: Hex;
  /** Which guest API made the quote: "v0" GetQuote or "v1" Attest. */
  readonly guestApi: "v0" | "v1";
  /** True when the quote is the dstack simulator's (no hardware behind it). */
  readonly simulated: boolean;
  readonly quote: Hex;
  /** dstack's JSON event log: imr, event_type, digest, event, event_payload (hex). */
  readonly eventLog: readonly {
    readonly imr: number;
    readonly event_type: number;
    readonly digest: string;
    readonly event: string;
    readonly event_payload: string;
  }[];
  /** The exact app-compose.json text. */
  readonly appCompose: string;
}

/** The 64 bytes of report data a member's attestation carries for `claims` and `nonce`. */
export function attestationReportData(claims: MemberClaims, nonce: Uint8Array): Uint8Array {
  if (nonce.length !== 32) {
    throw new AttestmeshError("an attestation nonce is 32 bytes.", { code: "InvalidNonce" });
  }
  const encoded = encodeAbiParameters(
    [
      { type: "uint256" },
      { type: "address" },
      { type: "uint64" },
      { type: "address" },
      { type: "bytes32" },
      { type: "bytes32" },
      { type: "bytes32" },
    ],
    [
      BigInt(claims.chainId),
      claims.cluster,
      BigInt(claims.memberId),
      claims.memberKey,
      claims.wireguardKey,
      claims.identityKey,
      `0x${Buffer.from(nonce).toString("hex")}`,
    ],
  );
  return concatBytes(TAG, keccak_256(hexToBytes(encoded)));
}

/** What a file holds: the evidence, and whatever else it carries. */
export interface AttestationFile {
  readonly evidence: Evidence & { readonly eventLog: readonly EventLogEntry[] };
  readonly document?: AttestationDocument;
  readonly collateral?: Collateral;
  /** Unix seconds the file says its collateral is valid at (fixture bundles). */
  readonly verifyAt?: number;
}

function invalid(message: string): never {
  throw new AttestmeshError(`not an attestation: ${message}`, { code: "InvalidAttestationDocument" });
}

const isBytes32 = (v: unknown): v is Hex => typeof v === "string" && isHex(v) && v.length === 66;

function quoteBytes(value: unknown): Uint8Array {
  if (Array.isArray(value) && value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
    return Uint8Array.from(value as number[]);
  }
  if (typeof value === "string" && /^(0x)?([0-9a-fA-F]{2})+$/.test(value)) {
    return Uint8Array.from(Buffer.from(value.replace(/^0x/, ""), "hex"));
  }
  return invalid("quote is neither hex nor a list of bytes.");
}

/** Checks the shape of a served document. */
export function parseAttestationDocument(value: unknown): AttestationDocument {
  if (typeof value !== "object" || value === null) invalid("it is not a JSON object.");
  const d = value as Record<string, unknown>;
  if (d.version !== ATTESTATION_DOCUMENT_VERSION) invalid(`version is ${String(d.version)}, expected 1.`);
  const c = d.claims as Record<string, unknown> | undefined;
  if (
    typeof c !== "object" ||
    c === null ||
    !Number.isSafeInteger(c.chainId) ||
    typeof c.cluster !== "string" ||
    !isAddress(c.cluster, { strict: false }) ||
    typeof c.memberId !== "string" ||
    !/^\d+$/.test(c.memberId) ||
    typeof c.memberKey !== "string" ||
    !isAddress(c.memberKey, { strict: false }) ||
    !isBytes32(c.wireguardKey) ||
    !isBytes32(c.identityKey)
  ) {
    invalid("claims lack chainId, cluster, memberId, memberKey, wireguardKey or identityKey.");
  }
  if (!isBytes32(d.nonce)) invalid("nonce is not 32 bytes of 0x-hex.");
  if (d.guestApi !== "v0" && d.guestApi !== "v1") invalid("guestApi is neither v0 nor v1.");
  if (typeof d.simulated !== "boolean") invalid("simulated is not a boolean.");
  if (typeof d.quote !== "string" || !isHex(d.quote)) invalid("quote is not 0x-hex.");
  if (typeof d.appCompose !== "string") invalid("appCompose is not text.");
  parseEventLog(d.eventLog);
  return d as unknown as AttestationDocument;
}

/** Reads a saved attestation: a served document, or a fixture bundle. */
export function parseAttestationFile(value: unknown): AttestationFile {
  if (typeof value !== "object" || value === null) invalid("it is not a JSON object.");
  const v = value as Record<string, unknown>;
  if ("version" in v && "claims" in v) {
    const document = parseAttestationDocument(v);
    return {
      document,
      evidence: {
        quote: quoteBytes(document.quote),
        eventLog: parseEventLog(document.eventLog),
        appCompose: document.appCompose,
      },
    };
  }
  const tcb = v.tcb_info as Record<string, unknown> | undefined;
  if (v.quote === undefined || typeof tcb !== "object" || tcb === null) {
    invalid("it is neither an attestmesh attestation document nor a quote bundle with tcb_info.");
  }
  if (typeof tcb.app_compose !== "string") invalid("tcb_info.app_compose is missing.");
  return {
    evidence: {
      quote: quoteBytes(v.quote),
      eventLog: parseEventLog(tcb.event_log),
      appCompose: tcb.app_compose,
    },
    ...(v.collateral === undefined ? {} : { collateral: parseCollateral(v.collateral) }),
    ...(typeof v.verifyAt === "number" ? { verifyAt: v.verifyAt } : {}),
  };
}
