// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title The cluster's indexer record
/// @notice The owner names the indexer that pushes wake-ups to sidecars. Its Ed25519 signing key is
/// admitted only with a dstack key chain (purpose `INDEXER_KEY_PURPOSE`) from an allowed, unrevoked
/// app id under an allowed KMS root, so sidecars verify pushes against a key that lives in a TEE.
interface IIndexerRegistry {
    /// @notice The dstack key chain of the indexer's Ed25519 key.
    /// @param appId The indexer's dstack app id.
    /// @param appPubkey The 33-byte compressed app key.
    /// @param appSignature The app key's signature over the Ed25519 key.
    /// @param kmsSignature The KMS root's signature over the app key.
    /// @param guestApiVersion The dstack guest API the key came from: 0 (purpose `INDEXER_KEY_PURPOSE`)
    /// or 1 (domain `INDEXER_KEY_PURPOSE`, algorithm ed25519); see IDstackAttestor.
    struct IndexerProof {
        address appId;
        bytes appPubkey;
        bytes appSignature;
        bytes kmsSignature;
        uint8 guestApiVersion;
    }

    /// @notice The indexer record as read by sidecars and tools.
    /// @param signingKey The Ed25519 public key envelopes are signed with; zero when none is set.
    /// @param codeId The compose hash the indexer runs.
    /// @param appId Its dstack app id.
    /// @param kmsRoot The KMS root of its key chain.
    /// @param updatedAt When the record was set.
    /// @param endpoint Its WebSocket URL.
    struct IndexerView {
        bytes32 signingKey;
        bytes32 codeId;
        address appId;
        address kmsRoot;
        uint40 updatedAt;
        string endpoint;
    }

    /// @notice The endpoint is empty or longer than 256 bytes.
    /// @param length Its length.
    error InvalidEndpoint(uint256 length);

    /// @notice The code id or the signing key is zero.
    error ZeroIndexerField();

    /// @notice The indexer record was set (a rotation when one existed).
    /// @param signingKey The new Ed25519 signing key.
    /// @param appId Its dstack app id.
    /// @param codeId The compose hash it runs.
    /// @param kmsRoot The KMS root of its key chain.
    /// @param endpoint Its WebSocket URL.
    event IndexerSet(bytes32 indexed signingKey, address indexed appId, bytes32 codeId, address kmsRoot, string endpoint);

    /// @notice The indexer record was removed; sidecars fall back to polling alone.
    event IndexerCleared();

    /// @notice Set or rotate the indexer. Owner only. The proof's app id must be allowed with the indexer
    /// role (IPolicy.AppRoleMismatch otherwise) and `codeId` allowed for that role
    /// (IPolicy.ComposeHashNotAllowedFor otherwise), so the record names a compose the boot gate lets
    /// the indexer boot.
    /// @param endpoint Its WebSocket URL (1 to 256 bytes).
    /// @param codeId The compose hash it runs.
    /// @param signingKey Its Ed25519 public key.
    /// @param proof The dstack key chain of `signingKey`.
    function setIndexer(string calldata endpoint, bytes32 codeId, bytes32 signingKey, IndexerProof calldata proof)
        external;

    /// @notice Remove the indexer record. Owner only.
    function clearIndexer() external;

    /// @notice The current indexer record.
    function indexer() external view returns (IndexerView memory);
}
