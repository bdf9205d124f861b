// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Member-to-member sealed messages carried by event logs
/// @notice Ciphertexts only: the project rule is that no plaintext member-to-member payload ever
/// goes on chain. The chain resolves the sender from its member key's signature and delivers each
/// `(sender, recipient, envelopeId)` once; nothing is stored but that delivery bit. The sender is part
/// of the key so that only a sender's own sends can collide: no member can burn an envelope id that
/// another member is about to send.
interface IMessages {
    /// @notice The ciphertext is empty.
    error MessageEmpty();

    /// @notice The ciphertext is larger than `MAX_CIPHERTEXT_BYTES`.
    /// @param length Its length.
    /// @param max The cap.
    error MessageTooLarge(uint256 length, uint256 max);

    /// @notice This sender already delivered this envelope id to this recipient.
    /// @param senderId The sender.
    /// @param recipientId The recipient.
    /// @param envelopeId The envelope id.
    error EnvelopeAlreadyDelivered(uint64 senderId, uint64 recipientId, bytes32 envelopeId);

    /// @notice A sealed message for a member.
    /// @param recipientId The recipient member id.
    /// @param senderId The sender member id, resolved on chain from its signature.
    /// @param envelopeId The sender-chosen id; unique per (sender, recipient).
    /// @param ciphertext A sealed box to the recipient's X25519 key.
    event MessageSent(uint64 indexed recipientId, uint64 indexed senderId, bytes32 indexed envelopeId, bytes ciphertext);

    /// @notice Send a sealed message; the sender's member key signs
    /// `Send(senderId, recipientId, envelopeId, keccak256(ciphertext))`.
    /// @param senderId The sending member (must be active).
    /// @param recipientId The recipient member (must be active).
    /// @param envelopeId A fresh id for this (sender, recipient) pair.
    /// @param ciphertext The sealed box, 1 to `MAX_CIPHERTEXT_BYTES` bytes.
    /// @param signature The sender's EIP-712 signature.
    function send(
        uint64 senderId,
        uint64 recipientId,
        bytes32 envelopeId,
        bytes calldata ciphertext,
        bytes calldata signature
    ) external;

    /// @notice Whether a sender delivered an envelope id to a recipient.
    function isDelivered(uint64 senderId, uint64 recipientId, bytes32 envelopeId) external view returns (bool);

    /// @notice The largest ciphertext accepted, in bytes.
    function maxCiphertextBytes() external pure returns (uint256);
}
