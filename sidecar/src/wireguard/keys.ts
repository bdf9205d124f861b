// WireGuard (Curve25519) keys: the key pair derived from a TEE secret, and the two spellings a key has —
// bytes32 hex on chain, base64 in wg(8).

import { AttestmeshError } from "@attestmesh/shared/errors.ts";
import { x25519 } from "@noble/curves/ed25519";

const KEY_BYTES = 32;
const BASE64_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const HEX_KEY = /^0x[0-9a-fA-F]{64}$/;

export interface WireGuardKeyPair {
  /** The clamped private key, as wg(8) stores it. */
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly privateKeyBase64: string;
  readonly publicKeyBase64: string;
}

/**
 * The WireGuard key pair for a 32-byte secret (e.g. a dstack-derived key). The secret is clamped the way
 * `wg genkey` clamps, so `wg pubkey` of `privateKeyBase64` prints `publicKeyBase64`.
 */
export function wireguardKeyPair(secret32: Uint8Array): WireGuardKeyPair {
  if (secret32.length !== KEY_BYTES) {
    throw new AttestmeshError(
      `A WireGuard private key needs a 32-byte secret, got ${secret32.length} bytes; derive exactly 32 bytes.`,
      { code: "InvalidWireGuardKey", details: { length: secret32.length } },
    );
  }
  const privateKey = clamp(secret32);
  const publicKey = x25519.getPublicKey(privateKey);
  return {
    privateKey,
    publicKey,
    privateKeyBase64: bytesToBase64(privateKey),
    publicKeyBase64: bytesToBase64(publicKey),
  };
}

/** True for a key the way wg(8) prints it: 44 base64 characters encoding 32 bytes. */
export function isWgBase64Key(value: string): boolean {
  return BASE64_KEY.test(value);
}

/** bytes32 hex (chain) → base64 (wg). */
export function hexToWgBase64(hex: string): string {
  if (!HEX_KEY.test(hex)) {
    throw new AttestmeshError(`Not a bytes32 WireGuard key: expected 0x and 64 hex digits, got "${hex}".`, {
      code: "InvalidWireGuardKey",
      details: { value: hex },
    });
  }
  return Buffer.from(hex.slice(2), "hex").toString("base64");
}

/** base64 (wg) → lowercase bytes32 hex (chain). */
export function wgBase64ToHex(base64: string): `0x${string}` {
  if (!isWgBase64Key(base64)) {
    throw new AttestmeshError(
      `Not a WireGuard key: expected 44 base64 characters encoding 32 bytes, got "${base64}".`,
      { code: "InvalidWireGuardKey", details: { value: base64 } },
    );
  }
  return `0x${Buffer.from(base64, "base64").toString("hex")}`;
}

/** RFC 7748 clamping, on a copy. */
function clamp(secret: Uint8Array): Uint8Array {
  const key = Uint8Array.from(secret);
  key[0] = key[0]! & 248;
  key[31] = (key[31]! & 127) | 64;
  return key;
}

function bytesToBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}
