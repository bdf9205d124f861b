// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Storage of delivered-envelope bits (messages themselves live only in event logs)
library MessagesStorage {
    /// @custom:storage-location erc7201:attestmesh.storage.Messages
    struct Layout {
        mapping(bytes32 senderRecipientAndEnvelope => bool) delivered;
    }

    /// @dev keccak256(abi.encode(uint256(keccak256("attestmesh.storage.Messages")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 internal constant STORAGE_SLOT = 0x082a23f787255f28964e4686528a2d84751c42125c23c3568ada86c171070300;

    function load() internal pure returns (Layout storage l) {
        assembly ("memory-safe") {
            l.slot := STORAGE_SLOT
        }
    }
}
