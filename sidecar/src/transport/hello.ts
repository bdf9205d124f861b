// The hello: the first frame on every bridge stream, and the only thing that makes an inbound stream a
// peer's. The gateway leg is routing, so a stream proves who opened it: the hello is signed by the
// sender's identity key over the cluster, both member ids, a timestamp and a nonce, and bound to the
// TLS session by exported keying material (RFC 5705 / RFC 8446 §7.5). The dstack gateway passes TLS
// through without terminating it, so both sidecars hold the same session and the same exporter value;
// a hello captured on one session does not verify on any other, and a relay that terminates TLS on
// either side holds a different session.
//
//   off  size  field
//   0    4     magic "AMWG"
//   4    1     version = 2
//   5    8     chainId
//   13   20    cluster (diamond address)
//   33   8     from: the sender's member id (> 0)
//   41   8     to: the receiver's member id (> 0, ≠ from)
//   49   8     timestampMs: the sender's wall clock, ms since the Unix epoch
//   57   16    nonce: random per hello
//   73   64    Ed25519 signature by from's identity key over
//              "attestmesh gateway-hello v2" || 0x00 || bytes 0 .. 73 || ekm
//   (137 bytes)
//
//   ekm = TLS exporter, 32 bytes, label "EXPORTER-attestmesh-gateway-hello", empty context; never sent.
import type { TLSSocket } from "node:tls";
import type { Address, Hex } from "viem";
import { ED25519_SIGNATURE_BYTES, verifySignature } from "../meshnet/crypto.ts";
import { type ClusterId, Reader, signingInput, U64_MAX, WireError, Writer } from "../meshnet/wire.ts";
import { encodeFrame, frameError } from "./frame.ts";

export const HELLO_MAGIC = Buffer.from("AMWG", "ascii");
export const HELLO_VERSION = 2;
export const HELLO_CONTEXT = "attestmesh gateway-hello v2";
export const HELLO_NONCE_BYTES = 16;
export const HELLO_BODY_BYTES = HELLO_MAGIC.length + 1 + 8 + 20 + 8 + 8 + 8 + HELLO_NONCE_BYTES;
export const HELLO_BYTES = HELLO_BODY_BYTES + ED25519_SIGNATURE_BYTES;
export const HELLO_EKM_LABEL = "EXPORTER-attestmesh-gateway-hello";
export const HELLO_EKM_BYTES = 32;

export interface Hello extends ClusterId {
  readonly from: bigint;
  readonly to: bigint;
  readonly timestampMs: bigint;
  readonly nonce: Uint8Array;
}

export interface SignedHello extends Hello {
  readonly signature: Uint8Array;
  /** The bytes before the signature. */
  readonly body: Uint8Array;
}

/** The TLS session's exporter value a hello is bound to; throws if the handshake is not complete. */
export function helloKeyingMaterial(socket: TLSSocket): Uint8Array {
  return socket.exportKeyingMaterial(HELLO_EKM_BYTES, HELLO_EKM_LABEL, Buffer.alloc(0));
}

function body(hello: Hello): Uint8Array {
  const id = (value: bigint, field: string) => {
    if (value <= 0n || value > U64_MAX) throw frameError(`hello ${field} is not a member id`, { field });
    return value;
  };
  if (hello.from === hello.to) throw frameError("a hello from a member to itself");
  if (hello.nonce.length !== HELLO_NONCE_BYTES)
    throw frameError(`a hello nonce is ${HELLO_NONCE_BYTES} bytes`, { bytes: hello.nonce.length });
  if (!/^0x[0-9a-fA-F]{40}$/.test(hello.cluster)) throw frameError("hello cluster is not an address");
  return new Writer()
    .bytes(HELLO_MAGIC)
    .u8(HELLO_VERSION)
    .u64(BigInt(hello.chainId))
    .address(hello.cluster)
    .u64(id(hello.from, "from"))
    .u64(id(hello.to, "to"))
    .u64(hello.timestampMs)
    .bytes(hello.nonce)
    .finish();
}

function signed(helloBody: Uint8Array, ekm: Uint8Array): Uint8Array {
  return signingInput(HELLO_CONTEXT, Buffer.concat([helloBody, ekm]));
}

/** The hello frame (length prefix included), signed by `sign` and bound to `ekm`. */
export function encodeHello(
  hello: Hello,
  ekm: Uint8Array,
  sign: (message: Uint8Array) => Uint8Array,
): Buffer {
  const b = body(hello);
  const signature = sign(signed(b, ekm));
  if (signature.length !== ED25519_SIGNATURE_BYTES)
    throw frameError("the hello signer returned no signature");
  return encodeFrame(Buffer.concat([b, signature]));
}

/** Parses a hello payload; throws `TransportFrameInvalid` for anything else. No signature check. */
export function decodeHello(payload: Uint8Array): SignedHello {
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (bytes.length < HELLO_MAGIC.length || !bytes.subarray(0, HELLO_MAGIC.length).equals(HELLO_MAGIC)) {
    throw frameError("the first frame is not an attestmesh hello (wrong magic)");
  }
  if (bytes[HELLO_MAGIC.length] !== HELLO_VERSION) {
    throw frameError(
      `unsupported hello version ${bytes[HELLO_MAGIC.length]}; this side speaks ${HELLO_VERSION}`,
      { version: bytes[HELLO_MAGIC.length] },
    );
  }
  if (bytes.length !== HELLO_BYTES) {
    throw frameError(`a hello is ${HELLO_BYTES} bytes, this one ${bytes.length}`, { bytes: bytes.length });
  }
  try {
    const r = new Reader(bytes);
    r.bytes(HELLO_MAGIC.length + 1, "magic");
    const chainId = r.u64("chainId");
    const cluster = r.address("cluster");
    const from = r.u64("from");
    const to = r.u64("to");
    const timestampMs = r.u64("timestampMs");
    const nonce = r.bytes(HELLO_NONCE_BYTES, "nonce");
    const helloBody = Uint8Array.from(r.consumed());
    const signature = r.bytes(ED25519_SIGNATURE_BYTES, "signature");
    r.end();
    if (from === 0n || to === 0n) throw new WireError(from === 0n ? "from" : "to", "member id 0");
    if (chainId > BigInt(Number.MAX_SAFE_INTEGER)) throw new WireError("chainId", "out of range");
    return { chainId: Number(chainId), cluster, from, to, timestampMs, nonce, signature, body: helloBody };
  } catch (error) {
    if (error instanceof WireError) throw frameError(`bad hello: ${error.message}`, { field: error.field });
    throw error;
  }
}

/**
 * The one place a hello's signature is checked: true only when `expectedKey` (the sender's identity
 * key as this node knows it) signed this hello bound to `ekm`, this side's exporter value.
 */
export function verifyHelloSignature(hello: SignedHello, ekm: Uint8Array, expectedKey: Uint8Array): boolean {
  return verifySignature(hello.signature, signed(hello.body, ekm), expectedKey);
}

export type HelloRefusal =
  | "wrong-chain"
  | "wrong-cluster"
  | "not-registered"
  | "not-for-this-node"
  | "unknown-peer"
  | "stale-hello"
  | "bad-signature"
  | "replayed-hello";

export type HelloCheck =
  | { readonly ok: true; readonly from: bigint }
  | { readonly ok: false; readonly reason: HelloRefusal; readonly detail?: string };

export interface HelloCheckerOptions extends ClusterId {
  /** This node's member id; undefined while it has none (every hello is refused). */
  readonly selfMemberId: () => bigint | undefined;
  /** The identity key of a current peer (32 bytes, or its hex), undefined for anyone else. */
  readonly identityKey: (memberId: bigint) => Uint8Array | Hex | undefined;
  /** How far a hello's timestamp may be from this node's clock; default 30 s. */
  readonly maxSkewMs?: number;
  /** Nonces remembered at most; the oldest go first (stale by then). Default 4096. */
  readonly maxNonces?: number;
  readonly now?: () => number;
}

export interface HelloChecker {
  /** Checks a decoded hello that arrived on the TLS session whose exporter value is `ekm`. */
  check(hello: SignedHello, ekm: Uint8Array): HelloCheck;
}

/**
 * Everything a hello must be before its stream may carry a peer's datagrams: for this chain, this
 * cluster and this node, from a current peer, fresh, signed by that peer's key bound to this TLS
 * session, and not seen before. A nonce is remembered only once its signature verified, so nobody can
 * fill the cache without the key.
 */
export function createHelloChecker(options: HelloCheckerOptions): HelloChecker {
  const maxSkewMs = options.maxSkewMs ?? 30_000;
  const maxNonces = options.maxNonces ?? 4096;
  const now = options.now ?? Date.now;
  const cluster = options.cluster.toLowerCase() as Address;
  /** `${from}:${nonceHex}` → wall ms when seen, oldest first. */
  const seen = new Map<string, number>();

  function prune(wallMs: number): void {
    for (const [key, at] of seen) {
      if (wallMs - at <= 2 * maxSkewMs && seen.size < maxNonces) break;
      seen.delete(key);
    }
  }

  return {
    check(hello, ekm) {
      if (hello.chainId !== options.chainId)
        return { ok: false, reason: "wrong-chain", detail: `chain ${hello.chainId}` };
      if (hello.cluster.toLowerCase() !== cluster)
        return { ok: false, reason: "wrong-cluster", detail: hello.cluster };
      const self = options.selfMemberId();
      if (self === undefined) return { ok: false, reason: "not-registered" };
      if (hello.to !== self) return { ok: false, reason: "not-for-this-node", detail: `to ${hello.to}` };
      const known = options.identityKey(hello.from);
      if (known === undefined) return { ok: false, reason: "unknown-peer", detail: `from ${hello.from}` };
      const wallMs = now();
      const skew = Number(hello.timestampMs) - wallMs;
      if (Math.abs(skew) > maxSkewMs) return { ok: false, reason: "stale-hello", detail: `${skew} ms off` };
      const key = typeof known === "string" ? Buffer.from(known.slice(2), "hex") : known;
      if (!verifyHelloSignature(hello, ekm, key)) return { ok: false, reason: "bad-signature" };
      prune(wallMs);
      const nonceKey = `${hello.from}:${Buffer.from(hello.nonce).toString("hex")}`;
      if (seen.has(nonceKey)) return { ok: false, reason: "replayed-hello" };
      seen.set(nonceKey, wallMs);
      return { ok: true, from: hello.from };
    },
  };
}
