// The indexer's Ed25519 signing key, derived inside its TEE through dstack GetKey, with the key chain
// the owner submits to the indexer registry, and the quote whose report data binds the key.
import { derivedKeyDigest, derivedPublicKey } from "@attestmesh/shared/dstack/keychain.ts";
import { verifyDstackKeyChain } from "@attestmesh/shared/dstack/verify.ts";
import { toHex } from "@attestmesh/shared/indexer/envelope.ts";
import { quoteReportData } from "@attestmesh/shared/indexer/protocol.ts";
import { INDEXER_KEY } from "@attestmesh/shared/keys/purposes.ts";
import { secp256k1 } from "@noble/curves/secp256k1";
import { DstackClient } from "@phala/dstack-sdk";
import { type Address, getAddress, type Hex } from "viem";
import { AttestmeshError, fatalError, retryableError } from "./errors.ts";

/** The parts of the dstack guest agent the indexer uses. */
export interface IndexerKeySource {
  info(): Promise<{ appId: string; composeHash: string }>;
  getKey(
    path: string,
    purpose: string,
    algorithm: "ed25519",
  ): Promise<{ key: Uint8Array; chain: Uint8Array[] }>;
  getQuote(reportData: Uint8Array): Promise<string>;
}

export interface IndexerKeys {
  /** 32-byte Ed25519 seed; stays in memory. */
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly publicKeyHex: Hex;
  readonly appId: Address;
  readonly composeHash: Hex;
  readonly kmsRoot: Address;
  /** The registry's `IndexerProof`. */
  readonly proof: {
    appId: Address;
    appPubkey: Hex;
    appSignature: Hex;
    kmsSignature: Hex;
    guestApiVersion: 0 | 1;
  };
  /** dstack GetQuote over `quoteReportData(publicKey)`, 0x-hex. */
  readonly quote: Hex;
}

export function createDstackKeySource(endpoint: string | undefined): IndexerKeySource {
  const client = () => new DstackClient(endpoint);
  const wrap = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (cause) {
      throw retryableError(
        "DstackUnavailable",
        `dstack ${what} failed (${endpoint ?? "default socket"}); check the guest agent socket, or set DSTACK_SIMULATOR_ENDPOINT.`,
        { cause },
      );
    }
  };
  return {
    info: () =>
      wrap("Info", async () => {
        const info = await client().info();
        return { appId: info.app_id, composeHash: info.compose_hash };
      }),
    getKey: (path, purpose, algorithm) =>
      wrap("GetKey", async () => {
        const result = await client().getKey(path, purpose, algorithm);
        return { key: result.key, chain: [...result.signature_chain] };
      }),
    getQuote: (reportData) => wrap("GetQuote", async () => (await client().getQuote(reportData)).quote),
  };
}

const hex0x = (text: string): Hex => (text.startsWith("0x") ? text : `0x${text}`).toLowerCase() as Hex;

function normaliseV(signature: Uint8Array): Uint8Array {
  if (signature.length !== 65) {
    throw fatalError(
      "InvalidSignatureChain",
      `dstack returned a ${signature.length}-byte signature, not 65.`,
    );
  }
  const out = signature.slice();
  if (out[64] === 27 || out[64] === 28) out[64] -= 27;
  return out;
}

/** Derives the signing key, checks its chain as the registry will, and fetches the quote. */
export async function deriveIndexerKeys(source: IndexerKeySource): Promise<IndexerKeys> {
  const info = await source.info();
  const appId = getAddress(hex0x(info.appId));
  const derived = await source.getKey(INDEXER_KEY.path, INDEXER_KEY.purpose, "ed25519");
  const [rawApp, rawKms] = derived.chain;
  if (derived.key.length !== 32 || rawApp === undefined || rawKms === undefined) {
    throw fatalError("InvalidSignatureChain", "dstack GetKey returned no [app, kms] signature chain.");
  }
  const publicKey = derivedPublicKey(derived.key, "ed25519");
  const appSignature = normaliseV(rawApp);
  const kmsSignature = normaliseV(rawKms);
  const digest = derivedKeyDigest(INDEXER_KEY.purpose, publicKey);
  const appPubkey = secp256k1.Signature.fromBytes(appSignature.subarray(0, 64), "compact")
    .addRecoveryBit(appSignature[64]!)
    .recoverPublicKey(digest)
    .toBytes(true);
  let kmsRoot: Address;
  try {
    kmsRoot = verifyDstackKeyChain({
      appId: Buffer.from(appId.slice(2), "hex"),
      purpose: INDEXER_KEY.purpose,
      derivedPubkey: publicKey,
      appPubkey,
      appSignature,
      kmsSignature,
    });
  } catch (cause) {
    if (!(cause instanceof AttestmeshError)) throw cause;
    throw fatalError(cause.code, `the indexer key's dstack chain does not verify: ${cause.message}`, {
      cause,
    });
  }
  const quote = hex0x(await source.getQuote(quoteReportData(publicKey)));
  return {
    secretKey: derived.key,
    publicKey,
    publicKeyHex: toHex(publicKey) as Hex,
    appId,
    composeHash: hex0x(info.composeHash),
    kmsRoot,
    proof: {
      appId,
      appPubkey: toHex(appPubkey) as Hex,
      appSignature: toHex(appSignature) as Hex,
      kmsSignature: toHex(kmsSignature) as Hex,
      guestApiVersion: 0,
    },
    quote,
  };
}
