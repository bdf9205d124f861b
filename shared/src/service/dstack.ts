// Keys derived inside the TEE through the dstack guest agent, and the proof behind each: the app key
// recovered from the app signature and the full chain up to its KMS signer, checked exactly as the
// cluster contract will check it, with signatures normalised to the one encoding the contract and
// the off-chain verifier agree on (v in {0, 1}, low s).
import { DstackClient } from "@phala/dstack-sdk";
import { type Address, bytesToHex, getAddress, type Hex, hexToBytes } from "viem";
import type { EventLogJson } from "../bytes.ts";
import { decodeTdxAttestation } from "../dstack/attestation.ts";
import { type GuestApiVersion, keyClaimDigestV1 } from "../dstack/guestV1.ts";
import { derivedKeyDigest, derivedPublicKey, type KeyAlgorithm } from "../dstack/keychain.ts";
import { SECP256K1_HALF_N, SECP256K1_N, verifyDstackKeyChain } from "../dstack/verify.ts";
import { AttestmeshError } from "../errors.ts";
import type { KeySpec } from "../keys/purposes.ts";
import { secp256k1Recover } from "../keys/secp256k1.ts";
import { createDstackV1Agent, createDstackV1Client } from "./dstackV1.ts";
import { fatalError, retryableError } from "./errors.ts";
import {
  type GuestApi,
  type PinnedSettings,
  readPinnedSettings,
  refusePinnedInEnvironment,
} from "./pinned.ts";

/** What dstack GetKey returns: the derived secret and [app signature, KMS signature]. */
export interface DerivedKey {
  readonly key: Uint8Array;
  readonly signatureChain: readonly Uint8Array[];
  /** The guest API the key came from: 0 (`GetKey`, the default) or 1 (`/v1/GetKey`). */
  readonly guestApiVersion?: GuestApiVersion;
  /** v1 returns the raw public key too; when present it must be the key's own. */
  readonly publicKey?: Uint8Array;
}

/** What the guest agent's Info says about the CVM: its app, the compose it measured and its device. */
export interface CvmIdentity {
  readonly appId: Address;
  /** `Info.compose_hash`: sha256 of the exact app-compose.json bytes (32 bytes). */
  readonly composeHash: Hex;
  /** `Info.device_id`: the machine's device id (32 bytes). */
  readonly deviceId: Hex;
}

/** The part of the dstack guest agent that derives keys. */
export interface KeySource {
  /** The CVM's dstack app id. */
  appId(): Promise<Address>;
  getKey(path: string, purpose: string, algorithm: KeyAlgorithm): Promise<DerivedKey>;
  /** The guest agent's Info (a member states its compose hash and device id at registration). */
  info?(): Promise<CvmIdentity>;
  /** The values pinned in the attested compose the guest agent returns (pinned.ts); absent: none known. */
  pinned?(): Promise<PinnedSettings>;
}

/** The whole guest agent a daemon uses: keys, the CVM's identity, and quotes. */
export interface DstackAgent extends KeySource {
  info(): Promise<CvmIdentity>;
  /** A TDX quote over `reportData`, 0x-hex. */
  getQuote(reportData: Uint8Array): Promise<Hex>;
}

const hex0x = (text: string): Hex => (text.startsWith("0x") ? text : `0x${text}`).toLowerCase() as Hex;

/**
 * The guest agent on the guest API the attested compose pins (`x-attestmesh.guest_api`, see pinned.ts):
 * the compose is read once from the agent's v0 Info (`tcb_info.app_compose`, served by every dstack,
 * 0.6 included), then every call goes to the v0 agent (SDK) or the v1 client. Never switched by
 * itself, and never by the environment: a pin variable in `env` is refused.
 */
/** A quote with what a verifier needs beside it: the event log and the exact app-compose document. */
export interface CvmEvidence {
  /** 0x-hex. */
  readonly quote: Hex;
  /** dstack's JSON event log (v0 `GetQuote`'s `event_log`, or v1's decoded into the same fields). */
  readonly eventLog: readonly EventLogJson[];
  readonly appCompose: string;
  /** The guest API that made the quote, per the pinned compose. */
  readonly guestApi: GuestApi;
}

/** The guest agent's attestation: a fresh quote over `reportData` and its evidence. */
export interface EvidenceSource {
  evidence(reportData: Uint8Array): Promise<CvmEvidence>;
}

/**
 * Evidence from the guest API the attested compose pins: v0 `GetQuote` (its event log) and Info's
 * app-compose, or v1 `Attest` (quote and event log decoded from the versioned attestation) and v1 Info.
 * The app-compose is measured at boot and cannot change during the CVM's life: Info is asked once (again
 * only after a failure), so every later quote costs one guest-agent call.
 */
export function createDstackEvidenceSource(
  endpoint: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): EvidenceSource {
  refusePinnedInEnvironment(env);
  const v0 = createDstackV0Agent(endpoint);
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  const once = <T>(read: () => Promise<T>): (() => Promise<T>) => {
    let cached: Promise<T> | undefined;
    return () => {
      cached ??= read().catch((error: unknown) => {
        cached = undefined; // a guest agent that was not up yet is asked again on the next call
        throw error;
      });
      return cached;
    };
  };
  const composeV0 = once(async () => {
    const appCompose = await v0.appCompose();
    return { appCompose, guestApi: readPinnedSettings(appCompose).guestApi };
  });
  const composeV1 = once(async () => (await createDstackV1Client(endpoint).info()).appCompose);
  return {
    async evidence(reportData) {
      const { appCompose, guestApi } = await composeV0();
      if (guestApi === "v1") {
        const client = createDstackV1Client(endpoint);
        const encoded = await client.attest(reportData);
        let attestation: ReturnType<typeof decodeTdxAttestation>;
        try {
          attestation = decodeTdxAttestation(encoded);
        } catch (cause) {
          if (!(cause instanceof AttestmeshError)) throw cause;
          throw fatalError("InvalidAttestation", `dstack /v1/Attest: ${cause.message}`, { cause });
        }
        return {
          quote: `0x${hex(attestation.quote)}` as Hex,
          eventLog: attestation.eventLog.map((e) => ({
            imr: e.imr,
            event_type: e.event_type,
            digest: hex(e.digest),
            event: e.event,
            event_payload: hex(e.event_payload),
          })),
          appCompose: await composeV1(),
          guestApi,
        };
      }
      let response: { quote: string; event_log: string };
      try {
        response = await new DstackClient(endpoint).getQuote(reportData);
      } catch (cause) {
        throw retryableError(
          "DstackUnavailable",
          `dstack GetQuote failed (${endpoint ?? "default socket"}).`,
          {
            cause,
          },
        );
      }
      let eventLog: CvmEvidence["eventLog"];
      try {
        eventLog = JSON.parse(response.event_log) as CvmEvidence["eventLog"];
      } catch (cause) {
        throw fatalError("InvalidAttestation", "dstack GetQuote returned an event log that is not JSON.", {
          cause,
        });
      }
      return { quote: hex0x(response.quote), eventLog, appCompose, guestApi };
    },
  };
}

export function createDstackAgent(
  endpoint: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): DstackAgent & { guestApi(): Promise<GuestApi>; pinned(): Promise<PinnedSettings> } {
  refusePinnedInEnvironment(env);
  const v0 = createDstackV0Agent(endpoint);
  let pinned: Promise<{ api: GuestApi; agent: DstackAgent; settings: PinnedSettings }> | undefined;
  const resolve = () => {
    pinned ??= (async () => {
      const settings = readPinnedSettings(await v0.appCompose());
      const { guestApi } = settings;
      return { api: guestApi, agent: guestApi === "v1" ? createDstackV1Agent(endpoint) : v0, settings };
    })().catch((error: unknown) => {
      pinned = undefined; // a guest agent that was not up yet is asked again on the next call
      throw error;
    });
    return pinned;
  };
  return {
    guestApi: async () => (await resolve()).api,
    pinned: async () => (await resolve()).settings,
    info: async () => (await resolve()).agent.info(),
    appId: async () => (await resolve()).agent.appId(),
    getKey: async (path, purpose, algorithm) => (await resolve()).agent.getKey(path, purpose, algorithm),
    getQuote: async (reportData) => (await resolve()).agent.getQuote(reportData),
  };
}

/** A `DstackAgent` over the official dstack SDK (guest API v0); `endpoint` undefined lets the SDK find the socket. */
export function createDstackV0Agent(
  endpoint: string | undefined,
): DstackAgent & { appCompose(): Promise<string> } {
  // The client checks the socket exists when constructed, so build it per call: a guest agent that
  // comes up late is then picked up by the next retry.
  const client = () => new DstackClient(endpoint);
  const call = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (cause) {
      throw retryableError(
        "DstackUnavailable",
        `dstack ${what} failed (${endpoint ?? "default socket"}); check the guest agent socket is mounted, or set DSTACK_SIMULATOR_ENDPOINT.`,
        { cause, details: { endpoint: endpoint ?? null } },
      );
    }
  };
  return {
    async info() {
      const raw = await call("Info", () => client().info());
      return {
        appId: parseAppId(raw.app_id),
        composeHash: parseBytes32("compose_hash", raw.compose_hash),
        deviceId: parseBytes32("device_id", raw.device_id),
      };
    },
    appId: async () => parseAppId((await call("Info", () => client().info())).app_id),
    async appCompose() {
      const raw = await call("Info", () => client().info());
      const compose = (raw.tcb_info as { app_compose?: unknown } | undefined)?.app_compose;
      return typeof compose === "string" ? compose : "";
    },
    getKey: (path, purpose, algorithm) =>
      call("GetKey", async () => {
        const result = await client().getKey(path, purpose, algorithm);
        return { key: result.key, signatureChain: result.signature_chain };
      }),
    getQuote: (reportData) =>
      call("GetQuote", async () => hex0x((await client().getQuote(reportData)).quote)),
  };
}

/** A 32-byte field of dstack's Info (hex, with or without 0x) as lowercase 0x-hex. */
export function parseBytes32(field: string, text: string | undefined): Hex {
  const hex = (text ?? "").replace(/^0[xX]/, "");
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw fatalError(
      "InvalidInfo",
      `dstack reported ${field} ${JSON.stringify(text)}, which is not 32 bytes of hex.`,
      {
        details: { field, value: text ?? null },
      },
    );
  }
  return hex0x(hex);
}

/** The app id as dstack's Info reports it (hex, with or without 0x) as a checksummed address. */
export function parseAppId(text: string): Address {
  const hex = text.startsWith("0x") || text.startsWith("0X") ? text.slice(2) : text;
  if (!/^[0-9a-fA-F]{40}$/.test(hex)) {
    throw fatalError(
      "InvalidAppId",
      `dstack reported app id ${JSON.stringify(text)}, which is not 20 bytes of hex.`,
      { details: { appId: text } },
    );
  }
  return getAddress(`0x${hex.toLowerCase()}`);
}

/**
 * A signature in the one encoding the contract and the off-chain verifier agree on: v in {0, 1}
 * (27/28 accepted and mapped down) and low s (a high s is replaced by n - s, with v flipped, which
 * recovers the same key).
 */
export function normaliseSignature(signature: Uint8Array, field: string): Uint8Array {
  if (signature.length !== 65) {
    throw fatalError(
      "InvalidSignatureLength",
      `${field} is ${signature.length} bytes, not 65; dstack sent a malformed chain.`,
      { details: { field, length: signature.length } },
    );
  }
  const out = signature.slice();
  const v = out[64]!;
  let recovery: number;
  if (v === 0 || v === 27) recovery = 0;
  else if (v === 1 || v === 28) recovery = 1;
  else {
    throw fatalError("InvalidSignatureV", `${field} has v = ${v}; expected 0, 1, 27 or 28.`, {
      details: { field, v },
    });
  }
  const s = BigInt(bytesToHex(out.subarray(32, 64)));
  if (s > SECP256K1_HALF_N) {
    out.set(hexToBytes(`0x${(SECP256K1_N - s).toString(16).padStart(64, "0")}`), 32);
    recovery ^= 1;
  }
  out[64] = recovery;
  return out;
}

/** The 33-byte compressed app key that made `appSignature` (normalised) over `purpose` and `derivedPubkey`. */
export function recoverAppPublicKey(
  purpose: string,
  derivedPubkey: Uint8Array,
  appSignature: Uint8Array,
): Uint8Array {
  return recoverPublicKey(derivedKeyDigest(purpose, derivedPubkey), appSignature);
}

/** The 33-byte compressed key that made `signature` (normalised) over `digest`. */
function recoverPublicKey(digest: Uint8Array, appSignature: Uint8Array): Uint8Array {
  let appPubkey: Uint8Array | null = null;
  let cause: unknown;
  try {
    appPubkey = secp256k1Recover(digest, appSignature.subarray(0, 64), appSignature[64] as 0 | 1, true);
  } catch (error) {
    // r or s is 0 or not below n: that recovers no key either.
    cause = error;
  }
  if (appPubkey === null) {
    throw fatalError(
      "SignatureRecoveryFailed",
      "the app signature recovers no public key; dstack sent a corrupt chain.",
      { cause },
    );
  }
  return appPubkey;
}

/** A derived key's public half and the checked chain behind it. */
export interface ProvenKey {
  /** 33-byte compressed secp256k1 or 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** The app key, recovered from the app signature (dstack does not return it). */
  readonly appPubkey: Uint8Array;
  /** Signatures with v in {0, 1} and low s. */
  readonly appSignature: Uint8Array;
  readonly kmsSignature: Uint8Array;
  /** The KMS root the chain leads to; whether the cluster accepts it is the contract's call. */
  readonly kmsSigner: Address;
  /** The guest API whose link 0 the chain carries (0: `purpose:hex(key)`, 1: the v1 key claim). */
  readonly guestApiVersion: GuestApiVersion;
}

/**
 * Checks one GetKey answer the way the contract will: the derived public key, the app key recovered
 * from the app signature, and the full chain up to its KMS signer (`verifyDstackKeyChain`).
 */
export function proveKey(appId: Address, spec: KeySpec, derived: DerivedKey): ProvenKey {
  if (!(derived.key instanceof Uint8Array) || derived.key.length !== 32) {
    throw fatalError("InvalidDerivedKey", `dstack returned a ${spec.path} key that is not 32 bytes.`, {
      details: { path: spec.path, length: derived.key?.length ?? null },
    });
  }
  const [rawApp, rawKms] = derived.signatureChain;
  if (rawApp === undefined || rawKms === undefined) {
    throw fatalError(
      "InvalidSignatureChain",
      `dstack returned ${derived.signatureChain.length} signatures for ${spec.path}; expected [app, kms]. Is the guest agent a KMS-backed dstack?`,
      { details: { path: spec.path, length: derived.signatureChain.length } },
    );
  }
  const guestApiVersion = derived.guestApiVersion ?? 0;
  const publicKey = derivedPublicKey(derived.key, spec.algorithm);
  if (derived.publicKey !== undefined && bytesToHex(derived.publicKey) !== bytesToHex(publicKey)) {
    throw fatalError(
      "InvalidDerivedKey",
      `dstack returned a public key for ${spec.path} that is not the ${spec.algorithm} key of the returned secret.`,
      { details: { path: spec.path } },
    );
  }
  const appSignature = normaliseSignature(rawApp, "appSignature");
  const kmsSignature = normaliseSignature(rawKms, "kmsSignature");
  const appPubkey =
    guestApiVersion === 1
      ? recoverPublicKey(keyClaimDigestV1(spec.purpose, publicKey), appSignature)
      : recoverAppPublicKey(spec.purpose, publicKey, appSignature);
  let kmsSigner: Address;
  try {
    kmsSigner = verifyDstackKeyChain({
      appId: hexToBytes(appId),
      purpose: spec.purpose,
      derivedPubkey: publicKey,
      appPubkey,
      appSignature,
      kmsSignature,
      guestApiVersion,
    });
  } catch (cause) {
    if (!(cause instanceof AttestmeshError)) throw cause;
    throw new AttestmeshError(`the dstack key chain for ${spec.path} does not verify: ${cause.message}`, {
      code: cause.code,
      cause,
      details: { path: spec.path, ...cause.details },
    });
  }
  return { publicKey, appPubkey, appSignature, kmsSignature, kmsSigner, guestApiVersion };
}

/** The dstack release from which GetKey signs an Ed25519 key (earlier agents ignore `algorithm`). */
export const FIRST_DSTACK_WITH_ED25519_CHAINS = "0.5.6";

/**
 * Refuses an Ed25519 key whose chain does not verify for the Ed25519 key: its link 0 recovers another
 * app key than `anchorAppPubkey`, the app key of a secp256k1 chain from the same agent (secp256k1
 * chains verify on every dstack). That is what a dstack agent before 0.5.6 returns: it ignores
 * `algorithm` and signs `purpose:hex(secp256k1 key)` of the same secret, so the chain never proves the
 * Ed25519 key and registration would be refused forever. Fatal, naming the dstack release needed.
 *
 * With the derived `secret` at hand the old agent's signature is confirmed (link 0 recovers the
 * anchor when read as over the secp256k1 key); a chain that matches neither reading is left to the
 * caller's consistency check. Without it (a chain seen from outside), any mismatch is refused.
 */
export function requireEd25519Chain(
  anchorAppPubkey: Uint8Array,
  spec: KeySpec,
  proven: Pick<ProvenKey, "publicKey" | "appPubkey" | "appSignature" | "guestApiVersion">,
  secret?: Uint8Array,
): void {
  if (spec.algorithm !== "ed25519") return;
  const anchor = bytesToHex(anchorAppPubkey);
  if (bytesToHex(proven.appPubkey) === anchor) return;
  if (secret !== undefined) {
    if (proven.guestApiVersion !== 0) return;
    let signedSecp256k1: string;
    try {
      signedSecp256k1 = bytesToHex(
        recoverAppPublicKey(spec.purpose, derivedPublicKey(secret, "secp256k1"), proven.appSignature),
      );
    } catch {
      return;
    }
    if (signedSecp256k1 !== anchor) return;
  }
  throw fatalError(
    "Ed25519ChainUnsupported",
    `the dstack guest agent cannot sign an Ed25519 key: the chain for ${spec.path} does not verify for its Ed25519 key (link 0 signs the secp256k1 key of the same secret, as dstack before ${FIRST_DSTACK_WITH_ED25519_CHAINS} does, ignoring algorithm). Registration can never succeed: boot the CVM on a dstack ${FIRST_DSTACK_WITH_ED25519_CHAINS} or later OS image (guest API v0), or dstack 0.6 or later with guest_api v1.`,
    {
      details: {
        path: spec.path,
        requiredDstack: FIRST_DSTACK_WITH_ED25519_CHAINS,
        recoveredAppPubkey: bytesToHex(proven.appPubkey),
        expectedAppPubkey: anchor,
      },
    },
  );
}
