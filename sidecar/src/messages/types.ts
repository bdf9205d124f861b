// Plain data of the messages modules.
import type { Address, Hex } from "viem";

/** A message this member received, opened and checked; the sender is as the chain resolved it. */
export interface ReceivedMessage {
  readonly envelopeId: Hex;
  readonly senderId: bigint;
  /** The sender's app id from its member record; undefined if the record could not be read. */
  readonly senderAppId: Address | undefined;
  readonly recipientId: bigint;
  readonly payload: Uint8Array;
  readonly blockNumber: bigint;
  readonly txHash: Hex;
  readonly logIndex: number;
}

/** Why a MessageSent log addressed to this member was not delivered. */
export type DropReason =
  | "duplicate"
  | "Undecryptable"
  | "MalformedEnvelope"
  | "EnvelopeMismatch"
  | "SenderSignatureInvalid"
  | "SenderNotVerified"
  | "SenderRefused"
  | "SenderNotStanding";
