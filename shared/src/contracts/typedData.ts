// EIP-712 typed data that a member key signs (MemberTypedData.sol). The domain binds each signature
// to one chain and one cluster diamond.
import type { Address, Hex } from "viem";

export const MEMBER_DOMAIN_NAME = "attestmesh";
export const MEMBER_DOMAIN_VERSION = "1";

export function memberDomain(chainId: number, cluster: Address) {
  return {
    name: MEMBER_DOMAIN_NAME,
    version: MEMBER_DOMAIN_VERSION,
    chainId,
    verifyingContract: cluster,
  } as const;
}

export const memberTypes = {
  Register: [
    { name: "appId", type: "address" },
    { name: "wireguardKey", type: "bytes32" },
    { name: "identityKey", type: "bytes32" },
    { name: "composeHash", type: "bytes32" },
    { name: "deviceId", type: "bytes32" },
    { name: "nonce", type: "uint64" },
  ],
  Leave: [{ name: "memberId", type: "uint64" }],
  CommitCsk: [
    { name: "memberId", type: "uint64" },
    { name: "epoch", type: "uint64" },
    { name: "commitment", type: "bytes32" },
  ],
  ConfirmCsk: [
    { name: "memberId", type: "uint64" },
    { name: "epoch", type: "uint64" },
    { name: "commitment", type: "bytes32" },
  ],
  ReopenCsk: [
    { name: "memberId", type: "uint64" },
    { name: "epoch", type: "uint64" },
  ],
  Send: [
    { name: "senderId", type: "uint64" },
    { name: "recipientId", type: "uint64" },
    { name: "envelopeId", type: "bytes32" },
    { name: "ciphertextHash", type: "bytes32" },
  ],
} as const;

export interface RegisterMessage {
  readonly appId: Address;
  readonly wireguardKey: Hex;
  readonly identityKey: Hex;
  /** The compose hash the member's guest agent reports (`Info.compose_hash`). */
  readonly composeHash: Hex;
  /** The device id the member's guest agent reports (`Info.device_id`). */
  readonly deviceId: Hex;
  readonly nonce: bigint;
}
