// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

/// @title Storage of per-app-id records
/// @notice One slot per app id holds both its policy state and its membership pointer: registration
/// reads and writes that one warm, non-zero slot instead of three, which keeps it under its gas budget.
library AppsStorage {
    /// @notice Everything the cluster knows about one app id, packed into one slot.
    /// @param allowed Whether the owner allows this app id (the hot-path truth; `allowedAppIds` mirrors it).
    /// @param revokedAt When the app id was revoked, 0 if never; beats `allowed`.
    /// @param memberId The latest member admitted under this app id, 0 if none.
    /// @param nonce How many registrations this app id has had; the next one must sign this value.
    struct AppRecord {
        bool allowed;
        uint40 revokedAt;
        uint64 memberId;
        uint64 nonce;
    }

    /// @custom:storage-location erc7201:attestmesh.storage.Apps
    struct Layout {
        mapping(address appId => AppRecord) apps;
        // Enumeration for `policySnapshot`; only the owner's calls write it.
        EnumerableSet.AddressSet allowedAppIds;
    }

    /// @dev keccak256(abi.encode(uint256(keccak256("attestmesh.storage.Apps")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 internal constant STORAGE_SLOT = 0xade8396c0ddd9c55c5534170246dec8d029cb738d95dbfa9b984af6192640e00;

    function load() internal pure returns (Layout storage l) {
        assembly ("memory-safe") {
            l.slot := STORAGE_SLOT
        }
    }
}
