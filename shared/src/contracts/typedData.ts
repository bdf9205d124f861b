// EIP-712 typed data that a member key signs (MemberTypedData.sol). The domain binds each signature
// to one chain and one cluster diamond.
import { type Address, type Hex, parseAbiParameters } from "viem";

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

// Each struct's fields in the order of its EIP-712 type string (MemberTypedData.sol's type hashes).
export const memberTypes = {
  Register: parseAbiParameters(
    "address appId, bytes32 wireguardKey, bytes32 identityKey, bytes32 composeHash, bytes32 deviceId, uint64 nonce",
  ),
  Leave: parseAbiParameters("uint64 memberId"),
  CommitCsk: parseAbiParameters("uint64 memberId, uint64 epoch, bytes32 commitment"),
  ConfirmCsk: parseAbiParameters("uint64 memberId, uint64 epoch, bytes32 commitment"),
  ReopenCsk: parseAbiParameters("uint64 memberId, uint64 epoch"),
  Send: parseAbiParameters("uint64 senderId, uint64 recipientId, bytes32 envelopeId, bytes32 ciphertextHash"),
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
