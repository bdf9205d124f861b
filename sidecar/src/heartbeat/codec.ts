// The heartbeat datagram (UDP, inside the mesh, to every peer's mesh IP on the mesh port):
//
//   off  size  field
//   0    1     version = 1
//   1    1     type = 1 (heartbeat)
//   2    8     chainId
//   10   20    cluster (diamond address)
//   30   8     senderId (member id, > 0)
//   38   8     epoch: the CSK epoch the sender sees as current on chain
//   46   1     flags: bit 0 = the sender holds that epoch's CSK; other bits must be 0
//   47   8     counter: strictly increasing per sender (it starts at the boot time in µs)
//   55   8     timestampMs: the sender's wall clock, ms since the Unix epoch
//   63   2     heardCount n (at most MAX_HEARD)
//   65   8n    heard: member ids the sender hears (live), strictly ascending, none 0 or the sender
//   65+8n 64   Ed25519 signature by the sender's on-chain identity key over
//              "attestmesh heartbeat v1" || 0x00 || bytes 0 .. 65+8n
import { verifySignature } from "../meshnet/crypto.ts";
import {
  type ClusterId,
  MESH_PROTOCOL_VERSION,
  MessageType,
  Reader,
  signingInput,
  WireError,
  Writer,
} from "../meshnet/wire.ts";

export const HEARTBEAT_CONTEXT = "attestmesh heartbeat v1";
export const MAX_HEARD = 1024;
export const FLAG_HOLDS_CSK = 1;

export interface Heartbeat extends ClusterId {
  readonly senderId: bigint;
  readonly epoch: bigint;
  readonly holdsCsk: boolean;
  readonly counter: bigint;
  readonly timestampMs: bigint;
  /** Strictly ascending member ids. */
  readonly heard: readonly bigint[];
}

export interface SignedHeartbeat extends Heartbeat {
  readonly signature: Uint8Array;
  /** The bytes the signature covers (with the context prefix). */
  readonly signedBytes: Uint8Array;
}

function body(hb: Heartbeat): Uint8Array {
  if (hb.heard.length > MAX_HEARD) throw new WireError("heard", `more than ${MAX_HEARD} ids`);
  const w = new Writer()
    .u8(MESH_PROTOCOL_VERSION)
    .u8(MessageType.Heartbeat)
    .u64(BigInt(hb.chainId))
    .address(hb.cluster)
    .u64(hb.senderId)
    .u64(hb.epoch)
    .u8(hb.holdsCsk ? FLAG_HOLDS_CSK : 0)
    .u64(hb.counter)
    .u64(hb.timestampMs)
    .u16(hb.heard.length);
  for (const id of hb.heard) w.u64(id);
  return w.finish();
}

/** Encodes and signs a heartbeat. */
export function encodeHeartbeat(hb: Heartbeat, sign: (message: Uint8Array) => Uint8Array): Uint8Array {
  const b = body(hb);
  const signature = sign(signingInput(HEARTBEAT_CONTEXT, b));
  const out = new Uint8Array(b.length + signature.length);
  out.set(b, 0);
  out.set(signature, b.length);
  return out;
}

/** Parses a heartbeat datagram; throws `WireError` naming the first malformed field. No signature check. */
export function decodeHeartbeat(datagram: Uint8Array): SignedHeartbeat {
  const r = new Reader(datagram);
  const version = r.u8("version");
  if (version !== MESH_PROTOCOL_VERSION) throw new WireError("version", `unsupported version ${version}`);
  const type = r.u8("type");
  if (type !== MessageType.Heartbeat) throw new WireError("type", `type ${type} is not a heartbeat`);
  const chainId = r.u64("chainId");
  if (chainId === 0n || chainId > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new WireError("chainId", `chain id ${chainId} is out of range`);
  }
  const cluster = r.address("cluster");
  const senderId = r.u64("senderId");
  if (senderId === 0n) throw new WireError("senderId", "member id 0 does not exist");
  const epoch = r.u64("epoch");
  const flags = r.u8("flags");
  if ((flags & ~FLAG_HOLDS_CSK) !== 0) throw new WireError("flags", `unknown flag bits ${flags}`);
  const counter = r.u64("counter");
  const timestampMs = r.u64("timestampMs");
  const count = r.u16("heardCount");
  if (count > MAX_HEARD) throw new WireError("heardCount", `${count} exceeds ${MAX_HEARD}`);
  const heard: bigint[] = [];
  for (let i = 0; i < count; i++) {
    const id = r.u64("heard");
    if (id === 0n || id === senderId) throw new WireError("heard", `id ${id} cannot be heard`);
    if (heard.length > 0 && id <= heard[heard.length - 1]!) {
      throw new WireError("heard", "ids are not strictly ascending");
    }
    heard.push(id);
  }
  const signed = r.consumed().slice();
  const signature = r.bytes(64, "signature");
  r.end();
  return {
    chainId: Number(chainId),
    cluster,
    senderId,
    epoch,
    holdsCsk: (flags & FLAG_HOLDS_CSK) !== 0,
    counter,
    timestampMs,
    heard,
    signature,
    signedBytes: signingInput(HEARTBEAT_CONTEXT, signed),
  };
}

/** Whether the heartbeat's signature verifies against `identityKey` (32-byte Ed25519). */
export function verifyHeartbeat(hb: SignedHeartbeat, identityKey: Uint8Array): boolean {
  return verifySignature(hb.signature, hb.signedBytes, identityKey);
}
