// The plaintext inside a sealed message, and sealing/opening it. A sealed box is anonymous, so the
// plaintext repeats what the chain binds the ciphertext to — chain id, cluster, sender, recipient and
// envelope id — and the recipient checks them against the MessageSent event. A member that re-sends
// someone else's ciphertext under its own name (or to another cluster) is caught here. The sender signs
// header and payload with its certified Ed25519 identity key, inside the box, so who sent a message
// never rests on the log an RPC returned: a forged MessageSent "from" a member that never sent it does
// not verify against that member's key.
//
// Wire format (all integers big-endian), then sealed with crypto_box_seal:
//   offset  size  field
//        0     4  magic "AMSG"
//        4     1  version, 2
//        5     8  chain id (uint64)
//       13    20  cluster diamond address
//       33     8  sender member id (uint64, non-zero)
//       41     8  recipient member id (uint64, non-zero)
//       49    32  envelope id
//       81     …  payload (the application's bytes, possibly empty)
//   end−64    64  Ed25519 signature by the sender's identity key over
//                 "attestmesh-message-v2" || bytes [0, end−64)
import { ed25519Sign, ed25519Verify } from "@attestmesh/shared/keys/ed25519.ts";
import { type Address, bytesToHex, getAddress, type Hex, hexToBytes, stringToBytes } from "viem";
import { type AttestmeshError, fatalError } from "../errors.ts";
import { open, SEAL_OVERHEAD, seal, type X25519KeyPair, x25519FromEd25519PublicKey } from "./sealedBox.ts";

export const ENVELOPE_MAGIC = new Uint8Array([0x41, 0x4d, 0x53, 0x47]); // "AMSG"
export const ENVELOPE_VERSION = 2;
export const ENVELOPE_HEADER_BYTES = 81;
export const ENVELOPE_SIGNATURE_BYTES = 64;
/** Domain of the sender's signature (no other signed message of the mesh starts with it). */
export const ENVELOPE_SIGNATURE_CONTEXT = stringToBytes("attestmesh-message-v2");
const UINT64_MAX = (1n << 64n) - 1n;

/** What the chain binds a ciphertext to; repeated inside the plaintext. */
export interface EnvelopeHeader {
  readonly chainId: bigint;
  readonly cluster: Address;
  readonly senderId: bigint;
  readonly recipientId: bigint;
  /** 32 bytes, lowercase hex. */
  readonly envelopeId: Hex;
}

export interface Envelope {
  readonly header: EnvelopeHeader;
  readonly payload: Uint8Array;
}

/** An envelope as decoded: its fields, the signature and the bytes it signs. */
export interface SignedEnvelope extends Envelope {
  readonly signature: Uint8Array;
  readonly signed: Uint8Array;
}

function signedMessage(body: Uint8Array): Uint8Array {
  const message = new Uint8Array(ENVELOPE_SIGNATURE_CONTEXT.length + body.length);
  message.set(ENVELOPE_SIGNATURE_CONTEXT, 0);
  message.set(body, ENVELOPE_SIGNATURE_CONTEXT.length);
  return message;
}

/** The largest payload that fits a ciphertext cap (the contract's `maxCiphertextBytes`). */
export function maxPayloadBytes(maxCiphertextBytes: number): number {
  return Math.max(0, maxCiphertextBytes - SEAL_OVERHEAD - ENVELOPE_HEADER_BYTES - ENVELOPE_SIGNATURE_BYTES);
}

function malformed(field: string, problem: string): AttestmeshError {
  return fatalError("MalformedEnvelope", `message envelope field ${field}: ${problem}`, {
    details: { field },
  });
}

function uint64(value: bigint, field: string, min: bigint): bigint {
  if (value < min || value > UINT64_MAX) throw malformed(field, `${value} is outside ${min}..2^64-1`);
  return value;
}

function envelopeIdBytes(envelopeId: Hex): Uint8Array {
  if (!/^0x[0-9a-fA-F]{64}$/.test(envelopeId)) throw malformed("envelopeId", "is not 32 bytes of hex");
  return hexToBytes(envelopeId);
}

/** Encodes and signs an envelope with the sender's 32-byte Ed25519 identity seed. */
export function encodeEnvelope(envelope: Envelope, senderSeed: Uint8Array): Uint8Array {
  const { header, payload } = envelope;
  if (!/^0x[0-9a-fA-F]{40}$/.test(header.cluster)) throw malformed("cluster", "is not a 20-byte address");
  const bodyLength = ENVELOPE_HEADER_BYTES + payload.length;
  const out = new Uint8Array(bodyLength + ENVELOPE_SIGNATURE_BYTES);
  const view = new DataView(out.buffer);
  out.set(ENVELOPE_MAGIC, 0);
  out[4] = ENVELOPE_VERSION;
  view.setBigUint64(5, uint64(header.chainId, "chainId", 1n));
  out.set(hexToBytes(header.cluster), 13);
  view.setBigUint64(33, uint64(header.senderId, "senderId", 1n));
  view.setBigUint64(41, uint64(header.recipientId, "recipientId", 1n));
  out.set(envelopeIdBytes(header.envelopeId), 49);
  out.set(payload, ENVELOPE_HEADER_BYTES);
  out.set(ed25519Sign(signedMessage(out.subarray(0, bodyLength)), senderSeed), bodyLength);
  return out;
}

/** Parses an opened plaintext; throws `MalformedEnvelope` naming the first bad field. */
export function decodeEnvelope(bytes: Uint8Array): SignedEnvelope {
  if (bytes.length < ENVELOPE_HEADER_BYTES + ENVELOPE_SIGNATURE_BYTES) {
    throw malformed(
      "length",
      `${bytes.length} bytes is shorter than the ${ENVELOPE_HEADER_BYTES}-byte header and its ${ENVELOPE_SIGNATURE_BYTES}-byte signature`,
    );
  }
  for (let i = 0; i < ENVELOPE_MAGIC.length; i++) {
    if (bytes[i] !== ENVELOPE_MAGIC[i]) throw malformed("magic", 'is not "AMSG"');
  }
  if (bytes[4] !== ENVELOPE_VERSION) throw malformed("version", `${bytes[4]} is not ${ENVELOPE_VERSION}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const header: EnvelopeHeader = {
    chainId: uint64(view.getBigUint64(5), "chainId", 1n),
    cluster: getAddress(bytesToHex(bytes.subarray(13, 33))),
    senderId: uint64(view.getBigUint64(33), "senderId", 1n),
    recipientId: uint64(view.getBigUint64(41), "recipientId", 1n),
    envelopeId: bytesToHex(bytes.subarray(49, 81)),
  };
  const bodyLength = bytes.length - ENVELOPE_SIGNATURE_BYTES;
  return {
    header,
    payload: bytes.slice(ENVELOPE_HEADER_BYTES, bodyLength),
    signature: bytes.slice(bodyLength),
    signed: bytes.slice(0, bodyLength),
  };
}

/**
 * Signs `envelope` with the sender's identity seed and seals it for the member whose on-chain Ed25519
 * identity key is `recipientIdentityKey`.
 */
export function sealMessage(
  envelope: Envelope,
  recipientIdentityKey: Hex,
  senderSeed: Uint8Array,
): Uint8Array {
  const recipient = x25519FromEd25519PublicKey(hexToBytes(recipientIdentityKey));
  return seal(encodeEnvelope(envelope, senderSeed), recipient);
}

/**
 * Opens a ciphertext taken from a MessageSent event, checks its header against what the chain says
 * (`expected`) and its signature against the sender's certified identity key. Throws `Undecryptable`
 * (not a box for this key, or altered), `MalformedEnvelope` or `EnvelopeMismatch` (naming the field),
 * or `SenderSignatureInvalid`; returns the payload otherwise.
 */
export function openMessage(
  ciphertext: Uint8Array,
  keyPair: X25519KeyPair,
  expected: EnvelopeHeader,
  senderIdentityKey: Hex,
): Uint8Array {
  const plaintext = open(ciphertext, keyPair);
  if (plaintext === undefined) {
    throw fatalError(
      "Undecryptable",
      `a ${ciphertext.length}-byte ciphertext is not a sealed box for this member's key (or was altered)`,
      { details: { length: ciphertext.length } },
    );
  }
  const { header, payload, signature, signed } = decodeEnvelope(plaintext);
  const fields = ["chainId", "cluster", "senderId", "recipientId", "envelopeId"] as const;
  for (const field of fields) {
    const got = String(header[field]).toLowerCase();
    const want = String(expected[field]).toLowerCase();
    if (got !== want) {
      throw fatalError(
        "EnvelopeMismatch",
        `the sealed ${field} (${got}) differs from the chain's (${want}): a ciphertext re-sent under another name`,
        { details: { field, sealed: got, chain: want } },
      );
    }
  }
  let valid = false;
  try {
    valid = ed25519Verify(signature, signedMessage(signed), hexToBytes(senderIdentityKey));
  } catch {
    valid = false;
  }
  if (!valid) {
    throw fatalError(
      "SenderSignatureInvalid",
      `the message is not signed by member ${header.senderId}'s certified identity key: not sent by it`,
      { details: { senderId: header.senderId.toString() } },
    );
  }
  return payload;
}
