// The liveness datagram (SWIM-style probing with signed, relayable statements), UDP inside the mesh, to
// a member's mesh IP on the mesh port. Every datagram is signed by its sender's on-chain Ed25519
// identity key and fits one packet under the WireGuard MTU (at most MAX_DATAGRAM_BYTES):
//
//   off  size  field
//   0    1     version = 1
//   1    1     type = 4 (liveness)
//   2    8     chainId
//   10   20    cluster (diamond address)
//   30   8     senderId (member id, > 0)
//   38   1     kind: 1 ping, 2 ack, 3 ping-req, 4 sync-req, 5 sync, 6 gossip
//   39   8     origin: the member whose probe this is (ping, ack: the prober; ping-req: the sender); else 0
//   47   8     target: ping: the member pinged; ack: the sender; ping-req: the member to probe;
//              sync-req: the first member id of the range asked for; else 0
//   55   4     seq: the origin's probe number (ping, ack, ping-req); sync-req: how many ids (≤ SYNC_MAX_IDS)
//   59   8     incarnation: the sender's own incarnation number
//   67   8     epoch: the CSK epoch the sender sees as current on chain
//   75   1     flags: bit 0 = the sender holds that epoch's CSK; other bits must be 0
//   76   8     digest: the sender's live-set digest (XOR of the first 8 bytes of sha256(u64 id) over
//              itself and every member it sees live)
//   84   8     timestampMs: the sender's wall clock, ms since the Unix epoch
//   92   1     statement count n (≤ MAX_STATEMENTS)
//   93   89n   statements (below)
//   93+89n 64  Ed25519 signature by the sender over "attestmesh liveness v1" || 0x00 || bytes 0 .. 93+89n
//
// A statement is signed on its own by its reporter, so it counts the same whoever relays it:
//
//   off  size  field
//   0    1     kind: 1 alive, 2 suspect, 3 dead
//   1    8     subject (member id)
//   9    8     incarnation of the subject the statement is about
//   17   8     reporter: alive = the subject itself (only a member says it is alive); suspect, dead = another
//   25   64    Ed25519 signature by the reporter over
//              "attestmesh liveness statement v1" || 0x00 || chainId (8) || cluster (20) || bytes 0 .. 25
import { createHash } from "node:crypto";
import { ED25519_SIGNATURE_BYTES, verifySignature } from "../meshnet/crypto.ts";
import {
  type ClusterId,
  decodeSigned,
  encodeSigned,
  MessageType,
  type Reader,
  readMemberId,
  signingInput,
  WireError,
  Writer,
} from "../meshnet/wire.ts";

export const LIVENESS_CONTEXT = "attestmesh liveness v1";
export const STATEMENT_CONTEXT = "attestmesh liveness statement v1";
/** A statement's signed part (kind, subject, incarnation, reporter); its signature follows. */
export const STATEMENT_BODY_BYTES = 25;
export const STATEMENT_BYTES = STATEMENT_BODY_BYTES + ED25519_SIGNATURE_BYTES;
export const HEADER_BYTES = 93;
/** At most this many statements in one datagram: 93 + 12·89 + 64 = 1,225 bytes. */
export const MAX_STATEMENTS = 12;
/** WireGuard's default MTU (1420) less the IPv4 and UDP headers (or IPv6's, 48, and still under). */
export const MAX_DATAGRAM_BYTES = 1372;
/** Most member ids one sync request may ask about. */
export const SYNC_MAX_IDS = 96;
export const FLAG_HOLDS_CSK = 1;

export const ProbeKind = { Ping: 1, Ack: 2, PingReq: 3, SyncReq: 4, Sync: 5, Gossip: 6 } as const;
export type ProbeKind = (typeof ProbeKind)[keyof typeof ProbeKind];
export const StatementKind = { Alive: 1, Suspect: 2, Dead: 3 } as const;
export type StatementKind = (typeof StatementKind)[keyof typeof StatementKind];

export interface Statement {
  readonly kind: StatementKind;
  readonly subject: bigint;
  readonly incarnation: bigint;
  readonly reporter: bigint;
  /** The 89 encoded bytes, signature included (relayed as they are). */
  readonly bytes: Uint8Array;
}

export interface LivenessMessage extends ClusterId {
  readonly senderId: bigint;
  readonly kind: ProbeKind;
  readonly origin: bigint;
  readonly target: bigint;
  readonly seq: number;
  readonly incarnation: bigint;
  readonly epoch: bigint;
  readonly holdsCsk: boolean;
  readonly digest: bigint;
  readonly timestampMs: bigint;
  readonly statements: readonly Statement[];
}

export interface SignedLivenessMessage extends LivenessMessage {
  readonly signature: Uint8Array;
  readonly signedBytes: Uint8Array;
}

const U32_MAX = 0xffff_ffff;

function statementBody(s: Omit<Statement, "bytes">): Uint8Array {
  return new Writer().u8(s.kind).u64(s.subject).u64(s.incarnation).u64(s.reporter).finish().slice();
}

function statementSigningInput(cluster: ClusterId, body: Uint8Array): Uint8Array {
  const prefix = new Writer().u64(BigInt(cluster.chainId)).address(cluster.cluster).finish();
  const joined = new Uint8Array(prefix.length + body.length);
  joined.set(prefix, 0);
  joined.set(body, prefix.length);
  return signingInput(STATEMENT_CONTEXT, joined);
}

function checkStatementShape(s: Omit<Statement, "bytes">): void {
  if (s.subject === 0n || s.reporter === 0n) throw new WireError("statement", "member id 0 does not exist");
  if (s.kind === StatementKind.Alive && s.reporter !== s.subject)
    throw new WireError("statement", "only a member itself may say it is alive");
  if (s.kind !== StatementKind.Alive && s.reporter === s.subject)
    throw new WireError("statement", "a member cannot suspect or bury itself");
}

/** Encodes and signs one statement (the reporter's key signs). */
export function signStatement(
  cluster: ClusterId,
  s: Omit<Statement, "bytes">,
  sign: (message: Uint8Array) => Uint8Array,
): Statement {
  checkStatementShape(s);
  const body = statementBody(s);
  const signature = sign(statementSigningInput(cluster, body));
  const bytes = new Uint8Array(STATEMENT_BYTES);
  bytes.set(body, 0);
  bytes.set(signature, body.length);
  return { ...s, bytes };
}

/** Whether a statement's signature verifies against its reporter's key. */
export function verifyStatement(cluster: ClusterId, s: Statement, reporterKey: Uint8Array): boolean {
  return verifySignature(
    s.bytes.subarray(STATEMENT_BODY_BYTES, STATEMENT_BYTES),
    statementSigningInput(cluster, s.bytes.subarray(0, STATEMENT_BODY_BYTES)),
    reporterKey,
  );
}

function readStatement(r: Reader): Statement {
  const start = r.offset;
  const kind = r.u8("statement.kind");
  if (kind < 1 || kind > 3) throw new WireError("statement.kind", `unknown statement kind ${kind}`);
  const subject = r.u64("statement.subject");
  const incarnation = r.u64("statement.incarnation");
  const reporter = r.u64("statement.reporter");
  r.bytes(ED25519_SIGNATURE_BYTES, "statement.signature");
  const s = { kind: kind as StatementKind, subject, incarnation, reporter };
  checkStatementShape(s);
  return { ...s, bytes: r.consumed().slice(start, start + STATEMENT_BYTES) };
}

/** Encodes and signs a liveness datagram. */
export function encodeLiveness(m: LivenessMessage, sign: (message: Uint8Array) => Uint8Array): Uint8Array {
  if (m.statements.length > MAX_STATEMENTS)
    throw new WireError("statements", `more than ${MAX_STATEMENTS} statements`);
  if (!Number.isInteger(m.seq) || m.seq < 0 || m.seq > U32_MAX) throw new WireError("seq", "not a u32");
  const seq = new Uint8Array(4);
  new DataView(seq.buffer).setUint32(0, m.seq);
  return encodeSigned(MessageType.Liveness, m, LIVENESS_CONTEXT, sign, (w) => {
    w.u64(m.senderId)
      .u8(m.kind)
      .u64(m.origin)
      .u64(m.target)
      .bytes(seq)
      .u64(m.incarnation)
      .u64(m.epoch)
      .u8(m.holdsCsk ? FLAG_HOLDS_CSK : 0)
      .u64(m.digest)
      .u64(m.timestampMs)
      .u8(m.statements.length);
    for (const s of m.statements) w.bytes(s.bytes);
    return w;
  });
}

/** Parses a liveness datagram; throws `WireError` naming the first malformed field. No signature check. */
export function decodeLiveness(datagram: Uint8Array): SignedLivenessMessage {
  if (datagram.length > MAX_DATAGRAM_BYTES)
    throw new WireError("length", `${datagram.length} bytes exceed ${MAX_DATAGRAM_BYTES}`);
  const { message, signature, signedBytes } = decodeSigned(
    datagram,
    MessageType.Liveness,
    LIVENESS_CONTEXT,
    readLivenessFields,
  );
  return { ...message, signature, signedBytes };
}

function readLivenessFields(r: Reader, cluster: ClusterId): LivenessMessage {
  const senderId = readMemberId(r, "senderId");
  const kind = r.u8("kind");
  if (kind < ProbeKind.Ping || kind > ProbeKind.Gossip) throw new WireError("kind", `unknown kind ${kind}`);
  const origin = r.u64("origin");
  const target = r.u64("target");
  const seqBytes = r.bytes(4, "seq");
  const seq = new DataView(seqBytes.buffer, seqBytes.byteOffset, 4).getUint32(0);
  const incarnation = r.u64("incarnation");
  const epoch = r.u64("epoch");
  const flags = r.u8("flags");
  if ((flags & ~FLAG_HOLDS_CSK) !== 0) throw new WireError("flags", `unknown flag bits ${flags}`);
  const digest = r.u64("digest");
  const timestampMs = r.u64("timestampMs");
  const count = r.u8("statementCount");
  if (count > MAX_STATEMENTS) throw new WireError("statementCount", `${count} exceeds ${MAX_STATEMENTS}`);
  const probe = kind === ProbeKind.Ping || kind === ProbeKind.Ack || kind === ProbeKind.PingReq;
  if (probe && (origin === 0n || target === 0n))
    throw new WireError("target", "a probe names its origin and target");
  if (kind === ProbeKind.Ack && target !== senderId) throw new WireError("target", "an ack names its sender");
  if (kind === ProbeKind.PingReq && (origin !== senderId || target === senderId))
    throw new WireError("target", "a ping-req comes from its origin and names another member");
  if (kind === ProbeKind.SyncReq && (seq === 0 || seq > SYNC_MAX_IDS))
    throw new WireError("seq", `a sync request asks about 1..${SYNC_MAX_IDS} ids`);
  const statements: Statement[] = [];
  for (let i = 0; i < count; i++) statements.push(readStatement(r));
  return {
    ...cluster,
    senderId,
    kind: kind as ProbeKind,
    origin,
    target,
    seq,
    incarnation,
    epoch,
    holdsCsk: (flags & FLAG_HOLDS_CSK) !== 0,
    digest,
    timestampMs,
    statements,
  };
}

/** Whether the datagram's signature verifies against `identityKey` (32-byte Ed25519). */
export function verifyLiveness(m: SignedLivenessMessage, identityKey: Uint8Array): boolean {
  return verifySignature(m.signature, m.signedBytes, identityKey);
}

/** The 64-bit share of one member id in a live-set digest (the digest is the XOR of the shares). */
export function digestShare(memberId: bigint): bigint {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, memberId);
  const h = createHash("sha256").update(b).digest();
  return h.readBigUInt64BE(0);
}
