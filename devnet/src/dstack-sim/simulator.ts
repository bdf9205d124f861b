/**
 * The dstack simulator's state and behaviour, without any transport: a KMS
 * root, simulated CVMs that answer GetKey / Info / GetQuote exactly as dstack
 * would (DESIGN.md, "dstack, exactly"), and the simulated quote format. The
 * unix-socket HTTP server is a thin layer that maps requests onto these
 * functions and hex-encodes the bytes.
 *
 * Everything here is for development: the devnet KMS root secret is public,
 * and a simulated quote carries no hardware signature at all.
 *
 * Bytes are `Uint8Array` in and out; addresses are checksummed `0x` strings.
 */

import { appSignKeyClaimV1, deriveKeyV1 } from "@attestmesh/shared/dstack/guestV1.ts";
import {
  appSignDerivedKey,
  deriveAppKey,
  derivedPublicKey,
  deriveKey,
  type KeyAlgorithm,
  kmsIssuedDigest,
  kmsSignAppKey,
  secp256k1PublicKey,
} from "@attestmesh/shared/dstack/keychain.ts";
import { compressedToAddress, recoverSignerAddress } from "@attestmesh/shared/dstack/verify.ts";
import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { sha256 } from "@noble/hashes/sha2";
import { keccak_256 } from "@noble/hashes/sha3";
import { concatBytes, hexToBytes, utf8ToBytes } from "@noble/hashes/utils";
import type { Address } from "viem";

// ---------------------------------------------------------------- KMS root

/**
 * DEVELOPMENT KEY, PUBLICLY KNOWN: the devnet KMS root secret,
 * keccak256(utf8("attestmesh devnet kms root — not a secret")). Anything it
 * signs proves nothing; only a devnet cluster may allowlist its address.
 */
export const DEVNET_KMS_ROOT_SECRET: Uint8Array = keccak_256(
  utf8ToBytes("attestmesh devnet kms root — not a secret"),
);

export type KmsRoot = {
  readonly secret: Uint8Array;
  /** 33-byte compressed secp256k1 public key. */
  readonly publicKey: Uint8Array;
  /** Address the KMS signatures recover to. */
  readonly address: Address;
};

/** A KMS root from `secret`, by default the public devnet root. */
export function createKmsRoot(secret: Uint8Array = DEVNET_KMS_ROOT_SECRET): KmsRoot {
  const publicKey = secp256k1PublicKey(secret);
  return { secret: secret.slice(), publicKey, address: compressedToAddress(publicKey) };
}

// ---------------------------------------------------------- simulated quote

/** ASCII marker every simulated quote starts with; no real TDX quote does. */
export const SIMULATED_QUOTE_MARKER = "ATTESTMESH-SIMULATED-QUOTE-v1";

const MARKER_BYTES = utf8ToBytes(SIMULATED_QUOTE_MARKER);

/**
 * Fixed layout of a simulated quote (byte offsets):
 *   [0, 29)    marker "ATTESTMESH-SIMULATED-QUOTE-v1"
 *   [29, 93)   report data, 64 bytes, zero-padded on the right
 *   [93, 113)  app id, 20 bytes
 *   [113, 145) compose hash, 32 bytes
 */
export const SIMULATED_QUOTE_LAYOUT = {
  reportData: { offset: MARKER_BYTES.length, length: 64 },
  appId: { offset: MARKER_BYTES.length + 64, length: 20 },
  composeHash: { offset: MARKER_BYTES.length + 84, length: 32 },
} as const;

export const SIMULATED_QUOTE_LENGTH = MARKER_BYTES.length + 64 + 20 + 32;

export type SimulatedQuoteFields = {
  /** 64 bytes, as padded into the quote. */
  readonly reportData: Uint8Array;
  readonly appId: Uint8Array;
  readonly composeHash: Uint8Array;
};

function simulatorError(
  code: string,
  message: string,
  details: Record<string, unknown> = {},
): AttestmeshError {
  return new AttestmeshError(message, { code, retryable: false, details });
}

function requireBytes(name: string, value: Uint8Array, length: number): void {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw simulatorError("InvalidSimulatorOption", `${name} must be exactly ${length} bytes.`, {
      name,
      length: value instanceof Uint8Array ? value.length : null,
    });
  }
}

/** Report data padded to 64 bytes; more than 64 bytes is refused, as dstack does. */
export function padReportData(reportData: Uint8Array): Uint8Array {
  const { length } = SIMULATED_QUOTE_LAYOUT.reportData;
  if (!(reportData instanceof Uint8Array) || reportData.length > length) {
    throw simulatorError("ReportDataTooLong", `report data must be at most ${length} bytes; hash it first.`, {
      length: reportData instanceof Uint8Array ? reportData.length : null,
    });
  }
  const padded = new Uint8Array(length);
  padded.set(reportData);
  return padded;
}

export function encodeSimulatedQuote(fields: {
  readonly reportData: Uint8Array;
  readonly appId: Uint8Array;
  readonly composeHash: Uint8Array;
}): Uint8Array {
  requireBytes("appId", fields.appId, SIMULATED_QUOTE_LAYOUT.appId.length);
  requireBytes("composeHash", fields.composeHash, SIMULATED_QUOTE_LAYOUT.composeHash.length);
  return concatBytes(MARKER_BYTES, padReportData(fields.reportData), fields.appId, fields.composeHash);
}

/** Reads the fields of a simulated quote; throws `InvalidSimulatedQuote` for anything else. */
export function parseSimulatedQuote(bytes: Uint8Array): SimulatedQuoteFields {
  if (!(bytes instanceof Uint8Array) || bytes.length !== SIMULATED_QUOTE_LENGTH) {
    throw simulatorError(
      "InvalidSimulatedQuote",
      `a simulated quote is exactly ${SIMULATED_QUOTE_LENGTH} bytes; this is not one (a real TDX quote needs a real verifier).`,
      { length: bytes instanceof Uint8Array ? bytes.length : null },
    );
  }
  if (!MARKER_BYTES.every((byte, i) => bytes[i] === byte)) {
    throw simulatorError(
      "InvalidSimulatedQuote",
      `quote does not start with ${SIMULATED_QUOTE_MARKER}; it is not a simulated quote.`,
    );
  }
  const field = (f: { offset: number; length: number }) => bytes.slice(f.offset, f.offset + f.length);
  return {
    reportData: field(SIMULATED_QUOTE_LAYOUT.reportData),
    appId: field(SIMULATED_QUOTE_LAYOUT.appId),
    composeHash: field(SIMULATED_QUOTE_LAYOUT.composeHash),
  };
}

// ------------------------------------------------------------ simulated CVM

export type GetKeyResult = {
  /** The derived secret k (32 bytes), as dstack's GetKey `key`. */
  readonly key: Uint8Array;
  /** [app signature over the derived public key, KMS signature over the app key]. */
  readonly signatureChain: readonly [Uint8Array, Uint8Array];
};

/**
 * What the simulator reports through Info: the fields of dstack's Info
 * response (`app_id`, `instance_id`, `compose_hash`, `device_id`, `app_name`)
 * as bytes, plus the KMS root address and the app public key, which dstack
 * exposes only indirectly (key provider info, signature chains).
 */
export type CvmInfo = {
  /** The app-compose.json document the CVM was booted with, verbatim (Info's `app_compose`). */
  readonly appCompose: string;
  readonly appId: Uint8Array;
  readonly instanceId: Uint8Array;
  readonly composeHash: Uint8Array;
  readonly deviceId: Uint8Array;
  readonly appName: string;
  readonly kmsRootAddress: Address;
  readonly appPublicKey: Uint8Array;
};

export type SimulatedCvm = {
  /** 33-byte compressed public key of the app key. */
  readonly appPublicKey: Uint8Array;
  getKey(path: string, purpose: string, algorithm?: KeyAlgorithm): GetKeyResult;
  /**
   * Guest API v1 (`/v1/GetKey`, dstack 0.6): the key of `(domain, algorithm)` under the v1 KDF, its
   * raw public key, and the chain whose link 0 signs the length-prefixed v1 key claim.
   */
  getKeyV1(domain: string | Uint8Array, algorithm: KeyAlgorithm): GetKeyV1Result;
  info(): CvmInfo;
  /** A simulated quote binding `reportData` (≤ 64 bytes) to this app; see `SIMULATED_QUOTE_LAYOUT`. */
  getQuote(reportData: Uint8Array): Uint8Array;
};

export type GetKeyV1Result = GetKeyResult & {
  /** 33-byte compressed secp256k1 or 32-byte Ed25519 public key, the bytes link 0 binds. */
  readonly publicKey: Uint8Array;
};

export type CvmIdentityOptions = {
  /**
   * The app-compose.json document Info returns (default: a minimal document with an empty compose
   * file). Only what a test or the devnet pins in it matters (e.g. an `x-attestmesh` block); the
   * compose hash stays what `composeHash` says.
   */
  readonly appCompose?: string;
  /**
   * false reproduces dstack before 0.5.6: GetKey ignores `algorithm` and link 0 always signs the
   * secp256k1 public key of the derived secret, so no Ed25519 key has a valid chain. Default true.
   */
  readonly ed25519Chains?: boolean;
  /** 32 bytes; default sha256 of the app-compose document's exact bytes, as dstack measures it. */
  readonly composeHash?: Uint8Array;
  /** 20 bytes; default the first 20 bytes of keccak256("attestmesh simulated instance" || appId). */
  readonly instanceId?: Uint8Array;
  /** 32 bytes; default keccak256("attestmesh simulated device"). */
  readonly deviceId?: Uint8Array;
  /** Default "attestmesh-simulated". */
  readonly appName?: string;
};

export type SimulatedCvmOptions = CvmIdentityOptions & {
  readonly kmsRoot: KmsRoot;
  /** 20 bytes. */
  readonly appId: Uint8Array;
};

export const DEFAULT_APP_NAME = "attestmesh-simulated";

/** The compose document Info returns when none is given: no `x-attestmesh` block, so guest API v0. */
export const DEFAULT_APP_COMPOSE = JSON.stringify({
  docker_compose_file: "services: {}\n",
  manifest_version: 2,
  name: DEFAULT_APP_NAME,
  runner: "docker-compose",
});

/** A CVM built from an app key and the KMS signature over it; both constructors below end here. */
function cvmFromAppKey(
  params: {
    readonly appKey: Uint8Array;
    readonly appId: Uint8Array;
    readonly kmsSignature: Uint8Array;
    readonly kmsRootAddress: Address;
  } & CvmIdentityOptions,
): SimulatedCvm {
  const appId = params.appId.slice();
  const appKey = params.appKey.slice();
  const kmsSignature = params.kmsSignature.slice();
  const appCompose = params.appCompose ?? DEFAULT_APP_COMPOSE;
  // As dstack measures it: sha256 over the exact bytes of the compose document, unless a test pins one.
  const composeHash = (params.composeHash ?? sha256(utf8ToBytes(appCompose))).slice();
  const instanceId = (
    params.instanceId ??
    keccak_256(concatBytes(utf8ToBytes("attestmesh simulated instance"), appId)).subarray(0, 20)
  ).slice();
  const deviceId = (params.deviceId ?? keccak_256(utf8ToBytes("attestmesh simulated device"))).slice();
  const appName = params.appName ?? DEFAULT_APP_NAME;
  const ed25519Chains = params.ed25519Chains ?? true;
  requireBytes("composeHash", composeHash, 32);
  requireBytes("instanceId", instanceId, 20);
  requireBytes("deviceId", deviceId, 32);
  const appPublicKey = secp256k1PublicKey(appKey);

  return {
    appPublicKey: appPublicKey.slice(),
    getKey(path, purpose, algorithm = "secp256k1") {
      const key = deriveKey(appKey, path);
      const signed = ed25519Chains ? algorithm : "secp256k1";
      const appSignature = appSignDerivedKey(appKey, purpose, derivedPublicKey(key, signed));
      return { key, signatureChain: [appSignature, kmsSignature.slice()] };
    },
    getKeyV1(domain, algorithm) {
      const key = deriveKeyV1(appKey, algorithm, domain);
      const publicKey = derivedPublicKey(key, algorithm);
      const appSignature = appSignKeyClaimV1(appKey, domain, publicKey);
      return { key, publicKey, signatureChain: [appSignature, kmsSignature.slice()] };
    },
    info() {
      return {
        appCompose,
        appId: appId.slice(),
        instanceId: instanceId.slice(),
        composeHash: composeHash.slice(),
        deviceId: deviceId.slice(),
        appName,
        kmsRootAddress: params.kmsRootAddress,
        appPublicKey: appPublicKey.slice(),
      };
    },
    getQuote(reportData) {
      return encodeSimulatedQuote({ reportData, appId, composeHash });
    },
  };
}

/** A simulated CVM whose app key the given KMS root derives and signs for `appId`. */
export function createSimulatedCvm(options: SimulatedCvmOptions): SimulatedCvm {
  const { kmsRoot, appId, ...identity } = options;
  requireBytes("appId", appId, 20);
  const appKey = deriveAppKey(kmsRoot.secret, appId);
  const kmsSignature = kmsSignAppKey(kmsRoot.secret, appId, secp256k1PublicKey(appKey));
  return cvmFromAppKey({ appKey, appId, kmsSignature, kmsRootAddress: kmsRoot.address, ...identity });
}

function hexField(json: Record<string, unknown>, name: string, length: number): Uint8Array {
  const value = json[name];
  const hex = typeof value === "string" ? value.replace(/^0x/i, "") : "";
  if (hex.length !== length * 2 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw simulatorError(
      "InvalidAppKeysFile",
      `appkeys.json field ${name} must be ${length} bytes of hex; use the file from dstack's sdk/simulator.`,
      { name },
    );
  }
  return hexToBytes(hex.toLowerCase());
}

/**
 * A simulated CVM from dstack's own simulator key file (`appkeys.json`, as
 * text or parsed): `k256_key` is the app key and `k256_signature` the KMS
 * root's signature over it for `appId`. Without the KMS secret it cannot
 * re-issue, so every GetKey carries that fixed KMS signature; the KMS root
 * address is what the signature recovers to for `appId` (only meaningful
 * for the app id the file was issued for).
 */
export function loadDstackAppKeys(
  json: unknown,
  appId: Uint8Array,
  identity: CvmIdentityOptions = {},
): SimulatedCvm {
  let parsed: unknown = json;
  if (typeof json === "string") {
    try {
      parsed = JSON.parse(json);
    } catch (cause) {
      throw new AttestmeshError(
        "appkeys.json is not valid JSON; pass the file's text or its parsed object.",
        {
          code: "InvalidAppKeysFile",
          cause,
        },
      );
    }
  }
  if (typeof parsed !== "object" || parsed === null) {
    throw simulatorError(
      "InvalidAppKeysFile",
      "appkeys.json must be a JSON object with k256_key and k256_signature.",
    );
  }
  const record = parsed as Record<string, unknown>;
  const appKey = hexField(record, "k256_key", 32);
  const kmsSignature = hexField(record, "k256_signature", 65);
  requireBytes("appId", appId, 20);
  const kmsRootAddress = recoverSignerAddress(
    kmsIssuedDigest(appId, secp256k1PublicKey(appKey)),
    kmsSignature,
  );
  return cvmFromAppKey({ appKey, appId, kmsSignature, kmsRootAddress, ...identity });
}
