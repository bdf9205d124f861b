// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";

/// @title Storage of the boot and join policy (compose hashes, devices, KMS roots)
library PolicyStorage {
    /// @custom:storage-location erc7201:attestmesh.storage.Policy
    struct Layout {
        // The node role's compose hashes: what dstack's role-less `addComposeHash` manages.
        EnumerableSet.Bytes32Set composeHashes;
        EnumerableSet.Bytes32Set deviceIds;
        EnumerableSet.AddressSet kmsRoots;
        mapping(bytes32 deviceId => uint64 revokedAt) deviceRevokedAt;
        bool allowAnyDevice;
        // Appended: packs beside allowAnyDevice, so existing fields keep their slots.
        bool requireTcbUpToDate;
        // Appended: the indexer role's compose hashes, kept apart so a node app cannot boot them.
        EnumerableSet.Bytes32Set indexerComposeHashes;
        // Appended: the app ids with the indexer role; every other app id has the node role.
        EnumerableSet.AddressSet indexerAppIds;
    }

    /// @dev keccak256(abi.encode(uint256(keccak256("attestmesh.storage.Policy")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 internal constant STORAGE_SLOT = 0xd6c335b3202cdc6c285987019be403eb00ca93ecfdf0899a76cabcf3c365db00;

    function load() internal pure returns (Layout storage l) {
        assembly ("memory-safe") {
            l.slot := STORAGE_SLOT
        }
    }
}
