// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Storage of the member-app factory
library MemberAppsStorage {
    /// @custom:storage-location erc7201:attestmesh.storage.MemberApps
    struct Layout {
        address implementation;
        mapping(address app => bool) created;
    }

    /// @dev keccak256(abi.encode(uint256(keccak256("attestmesh.storage.MemberApps")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 internal constant STORAGE_SLOT = 0x974ea93d8f4952e198cfa198d8d3f6a0a99e97c9e37fc6c6ec05bf67d6e64200;

    function load() internal pure returns (Layout storage l) {
        assembly ("memory-safe") {
            l.slot := STORAGE_SLOT
        }
    }
}
