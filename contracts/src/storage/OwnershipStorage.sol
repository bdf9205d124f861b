// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title OwnershipStorage
/// @notice ERC-7201 namespaced storage for the diamond's owner and a pending two-step transfer.
library OwnershipStorage {
    /// @custom:storage-location erc7201:attestmesh.storage.Ownership
    struct Layout {
        address owner;
        address pendingOwner;
    }

    /// @dev keccak256(abi.encode(uint256(keccak256("attestmesh.storage.Ownership")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 internal constant STORAGE_SLOT = 0x5ea8e53650e51b155e7a4ae6a959d255267912f385e08934948a03cb55846f00;

    function load() internal pure returns (Layout storage l) {
        assembly ("memory-safe") {
            l.slot := STORAGE_SLOT
        }
    }
}
