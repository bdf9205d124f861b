// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IMessages} from "../interfaces/IMessages.sol";
import {LibMembership} from "../libraries/LibMembership.sol";
import {MemberTypedData} from "../libraries/MemberTypedData.sol";
import {MessagesStorage} from "../storage/MessagesStorage.sol";

/// @title Messages facet: sealed member-to-member envelopes in event logs
contract MessagesFacet is IMessages {
    // Room for a few KiB of payload after the sealed box's 48 bytes of overhead; larger data belongs
    // on the mesh, not in calldata.
    uint256 internal constant MAX_CIPHERTEXT_BYTES = 4096;

    /// @inheritdoc IMessages
    function send(
        uint64 senderId,
        uint64 recipientId,
        bytes32 envelopeId,
        bytes calldata ciphertext,
        bytes calldata signature
    ) external {
        uint256 length = ciphertext.length;
        if (length == 0) revert MessageEmpty();
        if (length > MAX_CIPHERTEXT_BYTES) revert MessageTooLarge(length, MAX_CIPHERTEXT_BYTES);
        LibMembership.activeMember(recipientId);
        bytes32 key = _deliveryKey(senderId, recipientId, envelopeId);
        MessagesStorage.Layout storage l = MessagesStorage.load();
        if (l.delivered[key]) revert EnvelopeAlreadyDelivered(senderId, recipientId, envelopeId);
        LibMembership.authorize(
            senderId, MemberTypedData.sendDigest(senderId, recipientId, envelopeId, keccak256(ciphertext)), signature
        );
        l.delivered[key] = true;
        emit MessageSent(recipientId, senderId, envelopeId, ciphertext);
    }

    /// @inheritdoc IMessages
    function isDelivered(uint64 senderId, uint64 recipientId, bytes32 envelopeId) external view returns (bool) {
        return MessagesStorage.load().delivered[_deliveryKey(senderId, recipientId, envelopeId)];
    }

    /// @inheritdoc IMessages
    function maxCiphertextBytes() external pure returns (uint256) {
        return MAX_CIPHERTEXT_BYTES;
    }

    // The sender is part of the key: only a sender's own sends can collide, so no member can burn an
    // envelope id another member is about to use.
    function _deliveryKey(uint64 senderId, uint64 recipientId, bytes32 envelopeId) private pure returns (bytes32) {
        return keccak256(abi.encode(senderId, recipientId, envelopeId));
    }
}
