// Sends a sealed message to a member: checks the recipient is active on chain, seals the payload to
// its on-chain identity key (with the header the recipient will check), draws a fresh random envelope
// id, signs EIP-712 `Send` with the member key and submits through the cluster writer (a sponsored
// UserOperation, or the gas key). Sends are serialised, so messages reach the chain in the order the
// application sent them (the writer itself keeps the paying account's nonces from racing).
import { randomBytes } from "node:crypto";
import { clusterAbi } from "@attestmesh/shared/contracts/abi.ts";
import { memberDomain, memberTypes } from "@attestmesh/shared/contracts/typedData.ts";
import {
  BaseError,
  bytesToHex,
  ContractFunctionRevertedError,
  type Hex,
  InsufficientFundsError,
  keccak256,
} from "viem";
import { signTypedData } from "viem/accounts";
import type { ChainContext } from "../chain/client.ts";
import type { ClusterReader } from "../chain/cluster.ts";
import { writerOf } from "../chain/selectWriter.ts";
import type { WriteReceipt } from "../chain/writer.ts";
import { AttestmeshError, fatalError, retryableError } from "../errors.ts";
import type { NodeKeys } from "../keys.ts";
import type { Logger } from "../log.ts";
import type { Member } from "../model/member.ts";
import { maxPayloadBytes, sealMessage } from "./envelope.ts";
import type { MessageMetrics } from "./metrics.ts";

/** The contract's cap (`maxCiphertextBytes`), used until the chain has been asked. */
export const DEFAULT_MAX_CIPHERTEXT_BYTES = 4096;

export interface SentMessage {
  readonly envelopeId: Hex;
  readonly senderId: bigint;
  readonly recipientId: bigint;
  readonly txHash: Hex;
  readonly blockNumber: bigint;
}

export interface MessageSender {
  send(recipientId: bigint, payload: Uint8Array): Promise<SentMessage>;
  /** The largest payload `send` accepts, in bytes. */
  maxPayloadBytes(): number;
}

export interface MessageSenderOptions {
  readonly chain: ChainContext;
  readonly reader: ClusterReader;
  readonly keys: Pick<NodeKeys, "member" | "identity">;
  readonly logger: Logger;
  readonly metrics?: MessageMetrics;
  readonly memberId: () => bigint | undefined;
  readonly knownMember?: (memberId: bigint) => Member | undefined;
  /** A record read outside the known view, if its certificate verified; absent: every record counts. */
  readonly certified?: (record: Member | undefined) => Promise<Member | undefined>;
  readonly receiptTimeoutMs?: number;
  /** Random envelope ids; tests may pin them. */
  readonly envelopeId?: () => Hex;
}

export function createMessageSender(options: MessageSenderOptions): MessageSender {
  const { chain, reader, logger } = options;
  let maxCiphertext = DEFAULT_MAX_CIPHERTEXT_BYTES;
  let capRead = false;
  let queue: Promise<unknown> = Promise.resolve();

  async function readCap(): Promise<void> {
    if (capRead) return;
    const cap = await chain.publicClient.readContract({
      address: chain.cluster,
      abi: clusterAbi,
      functionName: "maxCiphertextBytes",
    });
    maxCiphertext = Number(cap);
    capRead = true;
  }

  async function recipientRecord(recipientId: bigint): Promise<Member> {
    const known = options.knownMember?.(recipientId);
    const record = known?.status === "active" ? known : await reader.member(recipientId);
    if (record !== known && options.certified !== undefined && record?.status === "active") {
      // Nothing is sealed to a key no certificate proves is a TEE's.
      if ((await options.certified(record)) === undefined) {
        throw retryableError(
          "RecipientNotVerified",
          `member ${recipientId}'s certificate did not verify (yet); nothing is sealed to it`,
          { details: { recipientId: recipientId.toString() } },
        );
      }
    }
    if (record === undefined || record.status !== "active") {
      throw fatalError("RecipientNotFound", `member ${recipientId} is not an active member of this cluster`, {
        details: { recipientId: recipientId.toString(), status: record?.status ?? "none" },
      });
    }
    return record;
  }

  async function sendOnce(recipientId: bigint, payload: Uint8Array): Promise<SentMessage> {
    const senderId = options.memberId();
    if (senderId === undefined) {
      throw retryableError(
        "NotRegistered",
        "this node is not an active member yet; send again once it is",
        {},
      );
    }
    const writer = writerOf(chain, logger);
    if (writer === undefined) {
      throw fatalError(
        "GasKeyMissing",
        "sending a message needs gas; set ATTESTMESH_BUNDLER_URL (sponsored) or ATTESTMESH_GAS_KEY to a funded account's key",
        {},
      );
    }
    await readCap();
    const max = maxPayloadBytes(maxCiphertext);
    if (payload.length > max) {
      throw fatalError(
        "PayloadTooLarge",
        `the payload is ${payload.length} bytes; at most ${max} fit one message`,
        {
          details: { length: payload.length, max },
        },
      );
    }
    const recipient = await recipientRecord(recipientId);
    const envelopeId = options.envelopeId?.() ?? bytesToHex(randomBytes(32));
    const ciphertext = sealMessage(
      {
        header: { chainId: BigInt(chain.chainId), cluster: chain.cluster, senderId, recipientId, envelopeId },
        payload,
      },
      recipient.identityKey,
      options.keys.identity.secret.reveal(),
    );
    const ciphertextHex = bytesToHex(ciphertext);
    const signature = await signTypedData({
      privateKey: options.keys.member.secret.reveal(),
      domain: memberDomain(chain.chainId, chain.cluster),
      types: memberTypes,
      primaryType: "Send",
      message: { senderId, recipientId, envelopeId, ciphertextHash: keccak256(ciphertextHex) },
    });
    let receipt: WriteReceipt;
    try {
      receipt = await writer.submit(
        {
          functionName: "send",
          args: [senderId, recipientId, envelopeId, ciphertextHex, signature],
        },
        { timeoutMs: options.receiptTimeoutMs ?? 120_000 },
      );
    } catch (error) {
      throw classifySendError(error);
    }
    const hash = receipt.txHash;
    if (receipt.status !== "success") {
      throw retryableError("SendReverted", `message transaction ${hash} reverted on chain; send again`, {
        details: { txHash: hash },
      });
    }
    logger.info(
      {
        txHash: hash,
        recipientId: recipientId.toString(),
        envelopeId,
        bytes: payload.length,
        block: receipt.blockNumber,
      },
      "message sent",
    );
    return { envelopeId, senderId, recipientId, txHash: hash, blockNumber: receipt.blockNumber };
  }

  return {
    send(recipientId, payload) {
      const result = queue.then(() => sendOnce(recipientId, payload));
      queue = result.catch(() => {});
      return result.then(
        (sent) => {
          options.metrics?.sent.inc({ outcome: "sent" });
          return sent;
        },
        (error: unknown) => {
          // Reads and the receipt wait fail with viem's errors: give the caller one kind.
          const failure = classifySendError(error);
          options.metrics?.sent.inc({ outcome: failure.code });
          throw failure;
        },
      );
    },
    maxPayloadBytes: () => maxPayloadBytes(maxCiphertext),
  };
}

/** A failed simulation or submission, in terms the application can act on. */
function classifySendError(error: unknown): AttestmeshError {
  if (error instanceof AttestmeshError) return error;
  if (error instanceof BaseError) {
    const reverted = error.walk((e) => e instanceof ContractFunctionRevertedError);
    if (reverted instanceof ContractFunctionRevertedError) {
      const name = reverted.data?.errorName ?? "UnknownRevert";
      // The contract's own error name is the code, whatever it is (passed through, not one of ours).
      return new AttestmeshError(`the cluster refused the message: ${name}`, {
        code: name,
        retryable: false,
        cause: error,
        details: { args: (reverted.data?.args ?? []).map(String) },
      });
    }
  }
  if (
    error instanceof BaseError &&
    error.walk((e) => e instanceof InsufficientFundsError) instanceof InsufficientFundsError
  ) {
    return retryableError(
      "GasKeyUnfunded",
      "the gas account (ATTESTMESH_GAS_KEY) cannot pay for the message; fund it",
      {
        cause: error,
      },
    );
  }
  const first = error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
  return retryableError("RpcError", `the chain could not take the message (${first}); send again`, {
    cause: error,
  });
}
