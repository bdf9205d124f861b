// The CSK request and response datagrams (UDP, inside the mesh, to the server's mesh IP on the mesh
// port; the response goes back to the request's source address and port).
//
// Request (142 bytes):
//   off  size  field
//   0    1     version = 1
//   1    1     type = 2 (CSK request)
//   2    8     chainId
//   10   20    cluster
//   30   8     requesterId (> 0)
//   38   8     serverId (> 0, ≠ requesterId): binds the request to one server, so it cannot be replayed
//              to another
//   46   8     epoch: the CSK epoch asked for
//   54   8     timestampMs: the requester's wall clock
//   62   16    nonce: random, echoed in the response; a server answers a (requester, nonce) once
//   78   64    Ed25519 signature by the requester's on-chain identity key over
//              "attestmesh csk-request v1" || 0x00 || bytes 0 .. 78
//
// Response (137 bytes with a CSK, 57 + 64 without):
//   0    1     version = 1
//   1    1     type = 3 (CSK response)
//   2    8     chainId
//   10   20    cluster
//   30   8     serverId
//   38   8     requesterId
//   46   8     epoch
//   54   16    nonce (from the request)
//   70   1     status: 0 = ok (a sealed CSK follows), 1 = not held (the server lacks that epoch's CSK),
//              2 = not attested yet (the server holds no current passing verdict on the requester's
//              attestation yet: ask again soon, or ask another holder)
//   71   2     sealedLength: 80 when ok (crypto_box_seal of the 32-byte CSK), 0 otherwise
//   73   n     sealed: crypto_box_seal(CSK) to the X25519 form of the requester's on-chain identity key
//   73+n 64    Ed25519 signature by the server's on-chain identity key over
//              "attestmesh csk-response v1" || 0x00 || bytes 0 .. 73+n
//
// A request answered with status 2 may get one more response, status 0 with the key, from the same
// server once its verdict on the requester passes (within 1 s; server.ts): same layout and nonce, no
// new type or version. A requester that no longer waits for that nonce drops it.
import { SEAL_OVERHEAD_BYTES, verifySignature } from "../meshnet/crypto.ts";
import {
  type ClusterId,
  decodeSigned,
  encodeSigned,
  MessageType,
  readMemberId,
  type Signed,
  WireError,
} from "../meshnet/wire.ts";

export type { Signed } from "../meshnet/wire.ts";

export const CSK_BYTES = 32;
export const NONCE_BYTES = 16;
export const SEALED_CSK_BYTES = CSK_BYTES + SEAL_OVERHEAD_BYTES;
export const REQUEST_CONTEXT = "attestmesh csk-request v1";
export const RESPONSE_CONTEXT = "attestmesh csk-response v1";

export const ResponseStatus = { Ok: 0, NotHeld: 1, NotAttestedYet: 2 } as const;
export type ResponseStatus = (typeof ResponseStatus)[keyof typeof ResponseStatus];

export interface CskRequest extends ClusterId {
  readonly requesterId: bigint;
  readonly serverId: bigint;
  readonly epoch: bigint;
  readonly timestampMs: bigint;
  readonly nonce: Uint8Array;
}

export interface CskResponse extends ClusterId {
  readonly serverId: bigint;
  readonly requesterId: bigint;
  readonly epoch: bigint;
  readonly nonce: Uint8Array;
  readonly status: ResponseStatus;
  /** Empty unless status is Ok. */
  readonly sealed: Uint8Array;
}

export function encodeRequest(req: CskRequest, sign: (m: Uint8Array) => Uint8Array): Uint8Array {
  if (req.nonce.length !== NONCE_BYTES) throw new WireError("nonce", `must be ${NONCE_BYTES} bytes`);
  return encodeSigned(MessageType.CskRequest, req, REQUEST_CONTEXT, sign, (w) =>
    w.u64(req.requesterId).u64(req.serverId).u64(req.epoch).u64(req.timestampMs).bytes(req.nonce),
  );
}

export function decodeRequest(datagram: Uint8Array): Signed<CskRequest> {
  return decodeSigned(datagram, MessageType.CskRequest, REQUEST_CONTEXT, (r, cluster) => {
    const requesterId = readMemberId(r, "requesterId");
    const serverId = readMemberId(r, "serverId");
    if (serverId === requesterId) throw new WireError("serverId", "a member does not ask itself");
    const epoch = r.u64("epoch");
    const timestampMs = r.u64("timestampMs");
    const nonce = r.bytes(NONCE_BYTES, "nonce");
    return { ...cluster, requesterId, serverId, epoch, timestampMs, nonce };
  });
}

export function encodeResponse(res: CskResponse, sign: (m: Uint8Array) => Uint8Array): Uint8Array {
  if (res.nonce.length !== NONCE_BYTES) throw new WireError("nonce", `must be ${NONCE_BYTES} bytes`);
  return encodeSigned(MessageType.CskResponse, res, RESPONSE_CONTEXT, sign, (w) =>
    w
      .u64(res.serverId)
      .u64(res.requesterId)
      .u64(res.epoch)
      .bytes(res.nonce)
      .u8(res.status)
      .u16(res.sealed.length)
      .bytes(res.sealed),
  );
}

export function decodeResponse(datagram: Uint8Array): Signed<CskResponse> {
  return decodeSigned(datagram, MessageType.CskResponse, RESPONSE_CONTEXT, (r, cluster) => {
    const serverId = readMemberId(r, "serverId");
    const requesterId = readMemberId(r, "requesterId");
    const epoch = r.u64("epoch");
    const nonce = r.bytes(NONCE_BYTES, "nonce");
    const status = r.u8("status");
    if (
      status !== ResponseStatus.Ok &&
      status !== ResponseStatus.NotHeld &&
      status !== ResponseStatus.NotAttestedYet
    ) {
      throw new WireError("status", `unknown status ${status}`);
    }
    const sealedLength = r.u16("sealedLength");
    const expected = status === ResponseStatus.Ok ? SEALED_CSK_BYTES : 0;
    if (sealedLength !== expected) {
      throw new WireError("sealedLength", `${sealedLength} bytes; status ${status} needs ${expected}`);
    }
    const sealed = r.bytes(sealedLength, "sealed");
    return { ...cluster, serverId, requesterId, epoch, nonce, status, sealed };
  });
}

export function verifySigned<T>(signed: Signed<T>, identityKey: Uint8Array): boolean {
  return verifySignature(signed.signature, signed.signedBytes, identityKey);
}
