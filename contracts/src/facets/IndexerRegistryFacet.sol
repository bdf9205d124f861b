// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IIndexerRegistry} from "../interfaces/IIndexerRegistry.sol";
import {IPolicy} from "../interfaces/IPolicy.sol";
import {DstackKeyChain} from "../libraries/DstackKeyChain.sol";
import {KeyPurposes} from "../libraries/KeyPurposes.sol";
import {LibOwnership} from "../libraries/LibOwnership.sol";
import {LibPolicy} from "../libraries/LibPolicy.sol";
import {IndexerRegistryStorage} from "../storage/IndexerRegistryStorage.sol";

/// @title Indexer registry facet
contract IndexerRegistryFacet is IIndexerRegistry {
    uint256 internal constant MAX_ENDPOINT_BYTES = 256;
    /// @dev Sidecars read the whole list on every reconnect; a handful is plenty for no-gap rotation.
    uint256 internal constant MAX_INDEXER_RECORDS = 8;

    /// @inheritdoc IIndexerRegistry
    function setIndexer(string calldata endpoint, bytes32 codeId, bytes32 signingKey, IndexerProof calldata proof)
        external
    {
        LibOwnership.enforceIsOwner();
        address kmsRoot = _check(endpoint, codeId, signingKey, proof);
        IndexerRegistryStorage.Layout storage l = IndexerRegistryStorage.load();
        _clear(l);
        _append(l, endpoint, codeId, signingKey, proof.appId, kmsRoot);
        emit IndexerSet(signingKey, proof.appId, codeId, kmsRoot, endpoint);
    }

    /// @inheritdoc IIndexerRegistry
    function addIndexer(string calldata endpoint, bytes32 codeId, bytes32 signingKey, IndexerProof calldata proof)
        external
    {
        LibOwnership.enforceIsOwner();
        IndexerRegistryStorage.Layout storage l = IndexerRegistryStorage.load();
        if (l.positionOf[signingKey] != 0) revert IndexerAlreadyRegistered(signingKey);
        if (l.records.length >= MAX_INDEXER_RECORDS) revert TooManyIndexers(MAX_INDEXER_RECORDS);
        address kmsRoot = _check(endpoint, codeId, signingKey, proof);
        _append(l, endpoint, codeId, signingKey, proof.appId, kmsRoot);
        emit IndexerAdded(signingKey, proof.appId, codeId, kmsRoot, endpoint);
    }

    /// @inheritdoc IIndexerRegistry
    function removeIndexer(bytes32 signingKey) external {
        LibOwnership.enforceIsOwner();
        IndexerRegistryStorage.Layout storage l = IndexerRegistryStorage.load();
        if (l.positionOf[signingKey] == 0) revert IndexerNotRegistered(signingKey);
        IndexerRegistryStorage.removeRecord(l, signingKey);
        emit IndexerRemoved(signingKey);
        if (l.records.length == 0) emit IndexerCleared();
    }

    /// @dev The checks every admitted record passes; returns the KMS root of its chain.
    function _check(string calldata endpoint, bytes32 codeId, bytes32 signingKey, IndexerProof calldata proof)
        private
        view
        returns (address kmsRoot)
    {
        uint256 length = bytes(endpoint).length;
        if (length == 0 || length > MAX_ENDPOINT_BYTES) revert InvalidEndpoint(length);
        if (codeId == bytes32(0) || signingKey == bytes32(0)) revert ZeroIndexerField();
        kmsRoot = _verifyChain(signingKey, proof);
        LibPolicy.enforceKmsRoot(kmsRoot);
        LibPolicy.enforceJoinable(proof.appId);
        LibPolicy.enforceRoleCompose(proof.appId, codeId, IPolicy.AppRole.Indexer);
    }

    function _append(
        IndexerRegistryStorage.Layout storage l,
        string calldata endpoint,
        bytes32 codeId,
        bytes32 signingKey,
        address appId,
        address kmsRoot
    ) private {
        IndexerRegistryStorage.Record storage r = l.records.push();
        r.signingKey = signingKey;
        r.codeId = codeId;
        r.appId = appId;
        r.updatedAt = uint40(block.timestamp);
        r.kmsRoot = kmsRoot;
        r.endpoint = endpoint;
        l.positionOf[signingKey] = l.records.length;
    }

    function _clear(IndexerRegistryStorage.Layout storage l) private {
        for (uint256 i = l.records.length; i > 0; i--) {
            delete l.positionOf[l.records[i - 1].signingKey];
            l.records.pop();
        }
    }

    /// @dev The signing key's chain under the guest API it names.
    function _verifyChain(bytes32 signingKey, IndexerProof calldata proof) private view returns (address) {
        return DstackKeyChain.verifyEd25519(
            proof.guestApiVersion,
            proof.appId,
            bytes(KeyPurposes.INDEXER),
            signingKey,
            proof.appPubkey,
            proof.appSignature,
            proof.kmsSignature
        );
    }

    /// @inheritdoc IIndexerRegistry
    function clearIndexer() external {
        LibOwnership.enforceIsOwner();
        _clear(IndexerRegistryStorage.load());
        emit IndexerCleared();
    }

    /// @inheritdoc IIndexerRegistry
    function indexer() external view returns (IndexerView memory v) {
        IndexerRegistryStorage.Layout storage l = IndexerRegistryStorage.load();
        if (l.records.length > 0) v = _view(l.records[0]);
    }

    /// @inheritdoc IIndexerRegistry
    function indexers() external view returns (IndexerView[] memory list) {
        IndexerRegistryStorage.Layout storage l = IndexerRegistryStorage.load();
        list = new IndexerView[](l.records.length);
        for (uint256 i = 0; i < list.length; i++) {
            list[i] = _view(l.records[i]);
        }
    }

    /// @inheritdoc IIndexerRegistry
    function MAX_INDEXERS() external pure returns (uint256) {
        return MAX_INDEXER_RECORDS;
    }

    function _view(IndexerRegistryStorage.Record storage r) private view returns (IndexerView memory v) {
        v.signingKey = r.signingKey;
        v.codeId = r.codeId;
        v.appId = r.appId;
        v.kmsRoot = r.kmsRoot;
        v.updatedAt = r.updatedAt;
        v.endpoint = r.endpoint;
    }
}
