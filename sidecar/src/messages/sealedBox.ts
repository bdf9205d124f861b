// libsodium sealed boxes (crypto_box_seal) addressed to a member's on-chain Ed25519 identity key,
// converted to its X25519 form. Only the holder of the identity secret can open a box; the box itself
// says nothing about who sealed it (the chain attributes the sender, see envelope.ts).
import sodium from "libsodium-wrappers";
import { fatalError } from "../errors.ts";
import { keyPairsFromSeed, loadSodium, x25519PublicKeyOf } from "../meshnet/crypto.ts";
import { type Secret, secret } from "../secret.ts";

/** Bytes a sealed box adds to its plaintext: an ephemeral X25519 key and a Poly1305 tag. */
export const SEAL_OVERHEAD = 48;

/** Resolves once libsodium's WebAssembly is loaded; every other function here needs it. */
export async function sodiumReady(): Promise<void> {
  await loadSodium();
}

export interface X25519KeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Secret<Uint8Array>;
}

/** The X25519 form of a 32-byte Ed25519 public key; throws `InvalidIdentityKey` for a non-point. */
export function x25519FromEd25519PublicKey(identityKey: Uint8Array): Uint8Array {
  if (identityKey.length !== 32) {
    throw fatalError(
      "InvalidIdentityKey",
      `an Ed25519 identity key is 32 bytes, not ${identityKey.length}.`,
      {
        details: { length: identityKey.length },
      },
    );
  }
  try {
    return x25519PublicKeyOf(identityKey);
  } catch (cause) {
    throw fatalError("InvalidIdentityKey", "the identity key is not a valid Ed25519 public key.", { cause });
  }
}

/** The X25519 key pair of an Ed25519 identity seed (the 32 bytes dstack derives). */
export function x25519FromEd25519Seed(seed: Uint8Array): X25519KeyPair {
  const { ed25519, x25519 } = keyPairsFromSeed(seed);
  sodium.memzero(ed25519.privateKey);
  return { publicKey: x25519.publicKey, secretKey: secret(x25519.secretKey) };
}

/** Seals `plaintext` to an X25519 public key. */
export function seal(plaintext: Uint8Array, recipient: Uint8Array): Uint8Array {
  return sodium.crypto_box_seal(plaintext, recipient);
}

/** Opens a sealed box, or returns undefined when it is not a box for this key pair (or was altered). */
export function open(ciphertext: Uint8Array, keyPair: X25519KeyPair): Uint8Array | undefined {
  if (ciphertext.length < SEAL_OVERHEAD) return undefined;
  try {
    return sodium.crypto_box_seal_open(ciphertext, keyPair.publicKey, keyPair.secretKey.reveal());
  } catch {
    return undefined;
  }
}
