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

    /// @inheritdoc IIndexerRegistry
    function setIndexer(string calldata endpoint, bytes32 codeId, bytes32 signingKey, IndexerProof calldata proof)
        external
    {
        LibOwnership.enforceIsOwner();
        uint256 length = bytes(endpoint).length;
        if (length == 0 || length > MAX_ENDPOINT_BYTES) revert InvalidEndpoint(length);
        if (codeId == bytes32(0) || signingKey == bytes32(0)) revert ZeroIndexerField();
        address kmsRoot = _verifyChain(signingKey, proof);
        LibPolicy.enforceKmsRoot(kmsRoot);
        LibPolicy.enforceJoinable(proof.appId);
        LibPolicy.enforceRoleCompose(proof.appId, codeId, IPolicy.AppRole.Indexer);

        IndexerRegistryStorage.Record storage r = IndexerRegistryStorage.load().record;
        r.signingKey = signingKey;
        r.codeId = codeId;
        r.appId = proof.appId;
        r.updatedAt = uint40(block.timestamp);
        r.kmsRoot = kmsRoot;
        r.endpoint = endpoint;
        emit IndexerSet(signingKey, proof.appId, codeId, kmsRoot, endpoint);
    }

    /// @dev The signing key's chain under the guest API it names.
    function _verifyChain(bytes32 signingKey, IndexerProof calldata proof) private view returns (address) {
        uint8 version = proof.guestApiVersion;
        if (version == DstackKeyChain.GUEST_API_V0) {
            return DstackKeyChain.verifyEd25519(
                proof.appId,
                bytes(KeyPurposes.INDEXER),
                signingKey,
                proof.appPubkey,
                proof.appSignature,
                proof.kmsSignature
            );
        }
        DstackKeyChain.requireKnownGuestApi(version);
        return DstackKeyChain.verifyV1Ed25519(
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
        delete IndexerRegistryStorage.load().record;
        emit IndexerCleared();
    }

    /// @inheritdoc IIndexerRegistry
    function indexer() external view returns (IndexerView memory v) {
        IndexerRegistryStorage.Record storage r = IndexerRegistryStorage.load().record;
        v.signingKey = r.signingKey;
        v.codeId = r.codeId;
        v.appId = r.appId;
        v.kmsRoot = r.kmsRoot;
        v.updatedAt = r.updatedAt;
        v.endpoint = r.endpoint;
    }
}
