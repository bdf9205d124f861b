// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Storage of Cluster Shared Key commitments
library CskStorage {
    /// @notice The commitment of one epoch.
    /// @param commitment keccak256 of the epoch's 32-byte CSK; zero while uncommitted.
    /// @param committer The member that committed it.
    /// @param openedAt When the epoch opened.
    /// @param committedAt When it was committed.
    /// @param confirmer The first member other than the committer that confirmed holding the key, 0 if none.
    struct Epoch {
        bytes32 commitment;
        uint64 committer;
        uint40 openedAt;
        uint40 committedAt;
        uint64 confirmer;
    }

    /// @custom:storage-location erc7201:attestmesh.storage.Csk
    struct Layout {
        uint64 currentEpoch;
        // The committer of the epoch members re-opened last, barred from committing the current epoch
        // (0 unless the current epoch was opened by members re-opening the one before). Packs with
        // `currentEpoch`, so opening an epoch writes one slot.
        uint64 barredCommitter;
        mapping(uint64 epoch => Epoch) epochs;
    }

    /// @dev keccak256(abi.encode(uint256(keccak256("attestmesh.storage.Csk")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 internal constant STORAGE_SLOT = 0xd12c65ce8d50a302be2a7e43687ab3bf39668161da1207fed3eeb5335babfa00;

    function load() internal pure returns (Layout storage l) {
        assembly ("memory-safe") {
            l.slot := STORAGE_SLOT
        }
    }
}
