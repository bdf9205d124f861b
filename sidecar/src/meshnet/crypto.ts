// The mesh protocols' cryptography, all through libsodium: Ed25519 signatures by a member's on-chain
// identity key, and sealed boxes (crypto_box_seal) to the X25519 form of that same key. Call
// `loadSodium()` once before anything else here (it waits for the WebAssembly module).
import sodium from "libsodium-wrappers";

export const ED25519_PUBLIC_KEY_BYTES = 32;
export const ED25519_SIGNATURE_BYTES = 64;
/** crypto_box_SEALBYTES: an ephemeral public key and a MAC. */
export const SEAL_OVERHEAD_BYTES = 48;

let ready = false;

export async function loadSodium(): Promise<void> {
  await sodium.ready;
  ready = true;
}

function lib(): typeof sodium {
  if (!ready) throw new Error("libsodium is not loaded: await loadSodium() first");
  return sodium;
}

/** An Ed25519 signing key from its 32-byte seed (the dstack-derived identity key). */
export interface SigningKey {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
  /** Opens a sealed box addressed to this key's X25519 form; undefined when it does not open. */
  openSealed(box: Uint8Array): Uint8Array | undefined;
  /** Zeroes the secret halves. */
  destroy(): void;
}

/**
 * The X25519 form of an Ed25519 public key (the one conversion of the sidecar); throws for a key of
 * the wrong length or one that is not a point.
 */
export function x25519PublicKeyOf(identityKey: Uint8Array): Uint8Array {
  if (identityKey.length !== ED25519_PUBLIC_KEY_BYTES)
    throw new Error(`an Ed25519 public key is ${ED25519_PUBLIC_KEY_BYTES} bytes, got ${identityKey.length}`);
  return lib().crypto_sign_ed25519_pk_to_curve25519(identityKey);
}

/** An Ed25519 key pair from its 32-byte seed, with the X25519 form of both halves. */
export function keyPairsFromSeed(seed: Uint8Array): {
  readonly ed25519: { readonly publicKey: Uint8Array; readonly privateKey: Uint8Array };
  readonly x25519: { readonly publicKey: Uint8Array; readonly secretKey: Uint8Array };
} {
  const s = lib();
  if (seed.length !== 32) throw new Error(`an Ed25519 seed is 32 bytes, got ${seed.length}`);
  const pair = s.crypto_sign_seed_keypair(seed);
  return {
    ed25519: pair,
    x25519: {
      publicKey: x25519PublicKeyOf(pair.publicKey),
      secretKey: s.crypto_sign_ed25519_sk_to_curve25519(pair.privateKey),
    },
  };
}

export function signingKeyFromSeed(seed: Uint8Array): SigningKey {
  const s = lib();
  const { ed25519: pair, x25519 } = keyPairsFromSeed(seed);
  const { publicKey: xPublic, secretKey: xSecret } = x25519;
  return {
    publicKey: pair.publicKey,
    sign: (message) => s.crypto_sign_detached(message, pair.privateKey),
    openSealed(box) {
      if (box.length < SEAL_OVERHEAD_BYTES) return undefined;
      try {
        return s.crypto_box_seal_open(box, xPublic, xSecret);
      } catch {
        return undefined;
      }
    },
    destroy() {
      s.memzero(pair.privateKey);
      s.memzero(xSecret);
    },
  };
}

/** True only for a valid signature by `publicKey`; any malformed input is simply false. */
export function verifySignature(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== ED25519_SIGNATURE_BYTES || publicKey.length !== ED25519_PUBLIC_KEY_BYTES)
    return false;
  try {
    return lib().crypto_sign_verify_detached(signature, message, publicKey);
  } catch {
    return false;
  }
}

/** Seals `message` to the X25519 form of an Ed25519 public key; undefined when the key has none. */
export function sealToIdentityKey(message: Uint8Array, identityKey: Uint8Array): Uint8Array | undefined {
  let x: Uint8Array;
  try {
    x = x25519PublicKeyOf(identityKey);
  } catch {
    return undefined;
  }
  return lib().crypto_box_seal(message, x);
}

export function randomBytes(length: number): Uint8Array {
  return lib().randombytes_buf(length);
}

/** Overwrites `bytes` with zeroes. */
export function zero(bytes: Uint8Array): void {
  lib().memzero(bytes);
}
