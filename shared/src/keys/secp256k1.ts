// secp256k1 public-key recovery on libsecp256k1 (bitcoin-core's C library, compiled to WebAssembly and
// shipped by tiny-secp256k1), for the recoveries of the dstack key chain and the registration signature.
//
// Why not @noble/curves here: its recovery is plain JavaScript, 3.5–4 ms a signature on the 2-core
// devnet machine against 0.4–0.5 ms here, and every member verifies a newcomer's certificate (three
// recoveries) before it may peer with it, on the critical path of every join (docs/performance.md,
// "secp256k1 recovery on libsecp256k1"). The C library is the one geth's ecrecover runs on.
//
// Why tiny-secp256k1 and not the native `secp256k1` package (4 times faster again): that one builds a
// Node add-on in an install script and, where it cannot, silently falls back to JavaScript; this one is
// WebAssembly, with no install script and one small dependency. The sidecar bundle loads its .wasm from
// beside itself (sidecar/build/bundle.ts copies it there).
//
// What a recovery accepts, the same as @noble/curves' `Signature.recoverPublicKey` and ecrecover:
// - r and s in [1, n − 1] (callers check them first, to name their own errors; a RangeError otherwise);
// - recovery id 0 or 1: R is the point with x = r and that y parity (ids 2 and 3, x = r + n, are not
//   Ethereum's, whose v is 27 or 28);
// - any 32-byte digest, reduced mod n.
// It recovers no key (null) when r is not the x coordinate of a curve point or the result is the point at
// infinity: the two cases where ecrecover returns the zero address. High s is not refused here.
import { isXOnlyPoint, recover } from "tiny-secp256k1";

/** Group order of secp256k1, big-endian. */
const N_BYTES = Uint8Array.from(
  Buffer.from("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", "hex"),
);

/** Whether the 32 big-endian bytes are a scalar in [1, n − 1]. */
function isNonZeroScalar(bytes: Uint8Array): boolean {
  const differs = bytes.findIndex((byte, i) => byte !== N_BYTES[i]);
  return differs >= 0 && bytes[differs]! < N_BYTES[differs]! && bytes.some((byte) => byte !== 0);
}

/**
 * The public key that made `signature` (64 bytes, r || s) over `digest` (32 bytes) with recovery id
 * `recovery`: 65 bytes uncompressed (0x04 || x || y), or 33 compressed; null when no key is recovered.
 */
export function secp256k1Recover(
  digest: Uint8Array,
  signature: Uint8Array,
  recovery: 0 | 1,
  compressed = false,
): Uint8Array | null {
  if (digest.length !== 32) throw new RangeError(`a digest is 32 bytes, got ${digest.length}`);
  if (signature.length !== 64)
    throw new RangeError(`a signature is 64 bytes (r || s), got ${signature.length}`);
  if (recovery !== 0 && recovery !== 1)
    throw new RangeError(`a recovery id is 0 or 1, got ${String(recovery)}`);
  const r = signature.subarray(0, 32);
  if (!isNonZeroScalar(r) || !isNonZeroScalar(signature.subarray(32))) {
    throw new RangeError("r and s must be in [1, n-1]; check the signature's fields before recovering");
  }
  // tiny-secp256k1 throws, rather than answer null, for an r that is no point's x coordinate.
  if (!isXOnlyPoint(r)) return null;
  return recover(digest, signature, recovery, compressed);
}
