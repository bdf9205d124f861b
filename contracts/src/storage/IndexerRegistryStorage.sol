// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Storage of the cluster's indexer record
library IndexerRegistryStorage {
    /// @notice One indexer the sidecars may subscribe to.
    /// @param signingKey The indexer's Ed25519 public key; zero when no indexer is set.
    /// @param codeId The compose hash the indexer runs.
    /// @param appId The dstack app id its key chain was issued for.
    /// @param kmsRoot The KMS root that signed its key chain.
    /// @param updatedAt When the record was set.
    /// @param endpoint Where sidecars connect (a WebSocket URL).
    struct Record {
        bytes32 signingKey;
        bytes32 codeId;
        address appId;
        uint40 updatedAt;
        address kmsRoot;
        string endpoint;
    }

    /// @custom:storage-location erc7201:attestmesh.storage.IndexerRegistry
    /// @param records The registered indexers, in the order they were added (at most MAX_INDEXERS).
    /// @param positionOf 1-based position in `records` by signing key; 0 when not registered.
    struct Layout {
        Record[] records;
        mapping(bytes32 signingKey => uint256) positionOf;
    }

    /// @dev keccak256(abi.encode(uint256(keccak256("attestmesh.storage.IndexerRegistry")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 internal constant STORAGE_SLOT = 0xdb7896e4d13a2d4c48e1c4a5d5943cf873a6960995e789bf899fe03391aecf00;

    function load() internal pure returns (Layout storage l) {
        assembly ("memory-safe") {
            l.slot := STORAGE_SLOT
        }
    }

    /// @notice Removes the record of `signingKey` (which must be registered), keeping the others' order.
    function removeRecord(Layout storage l, bytes32 signingKey) internal {
        uint256 last = l.records.length;
        for (uint256 i = l.positionOf[signingKey]; i < last; i++) {
            l.records[i - 1] = l.records[i];
            l.positionOf[l.records[i - 1].signingKey] = i;
        }
        l.records.pop();
        delete l.positionOf[signingKey];
    }
}
