// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title The cluster's indexer records
/// @notice The owner names the indexers that push wake-ups to sidecars: up to `MAX_INDEXERS`, each with
/// its own endpoint and Ed25519 signing key, admitted only with a dstack key chain (purpose
/// `INDEXER_KEY_PURPOSE`) from an allowed, unrevoked app id under an allowed KMS root, so sidecars
/// verify pushes against keys that live in a TEE. Sidecars subscribe to several at once, so adding a new
/// indexer before removing an old one replaces it without a gap in wake-ups.
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

    /// @notice `addIndexer` of a signing key that is already registered.
    /// @param signingKey The key.
    error IndexerAlreadyRegistered(bytes32 signingKey);

    /// @notice `removeIndexer` of a signing key that is not registered.
    /// @param signingKey The key.
    error IndexerNotRegistered(bytes32 signingKey);

    /// @notice `addIndexer` when `max` indexers are registered already.
    /// @param max The most the registry holds.
    error TooManyIndexers(uint256 max);

    /// @notice An indexer was added to the registry.
    /// @param signingKey Its Ed25519 signing key.
    /// @param appId Its dstack app id.
    /// @param codeId The compose hash it runs.
    /// @param kmsRoot The KMS root of its key chain.
    /// @param endpoint Its WebSocket URL.
    event IndexerAdded(
        bytes32 indexed signingKey, address indexed appId, bytes32 codeId, address kmsRoot, string endpoint
    );

    /// @notice An indexer was removed (by the owner, or because its app id was revoked).
    /// @param signingKey Its Ed25519 signing key.
    event IndexerRemoved(bytes32 indexed signingKey);

    /// @notice The registry was replaced by one indexer (`setIndexer`; a rotation when one existed).
    /// @param signingKey The new Ed25519 signing key.
    /// @param appId Its dstack app id.
    /// @param codeId The compose hash it runs.
    /// @param kmsRoot The KMS root of its key chain.
    /// @param endpoint Its WebSocket URL.
    event IndexerSet(bytes32 indexed signingKey, address indexed appId, bytes32 codeId, address kmsRoot, string endpoint);

    /// @notice The last indexer record was removed; sidecars fall back to polling alone.
    event IndexerCleared();

    /// @notice Replace every registered indexer by this one. Owner only. The proof's app id must be allowed with the indexer
    /// role (IPolicy.AppRoleMismatch otherwise) and `codeId` allowed for that role
    /// (IPolicy.ComposeHashNotAllowedFor otherwise), so the record names a compose the boot gate lets
    /// the indexer boot.
    /// @param endpoint Its WebSocket URL (1 to 256 bytes).
    /// @param codeId The compose hash it runs.
    /// @param signingKey Its Ed25519 public key.
    /// @param proof The dstack key chain of `signingKey`.
    function setIndexer(string calldata endpoint, bytes32 codeId, bytes32 signingKey, IndexerProof calldata proof)
        external;

    /// @notice Remove every indexer record. Owner only.
    function clearIndexer() external;

    /// @notice Add an indexer beside those registered. Owner only. The same checks as `setIndexer`;
    /// reverts with `IndexerAlreadyRegistered` for a key already there, `TooManyIndexers` when full.
    /// @param endpoint Its WebSocket URL (1 to 256 bytes).
    /// @param codeId The compose hash it runs.
    /// @param signingKey Its Ed25519 public key.
    /// @param proof The dstack key chain of `signingKey`.
    function addIndexer(string calldata endpoint, bytes32 codeId, bytes32 signingKey, IndexerProof calldata proof)
        external;

    /// @notice Remove one indexer; the others keep their order. Owner only. Reverts with
    /// `IndexerNotRegistered` for an unknown key.
    /// @param signingKey Its Ed25519 signing key.
    function removeIndexer(bytes32 signingKey) external;

    /// @notice The first registered indexer (the oldest), or an empty record when none is.
    function indexer() external view returns (IndexerView memory);

    /// @notice Every registered indexer, oldest first.
    function indexers() external view returns (IndexerView[] memory);

    /// @notice The most indexers the registry holds.
    function MAX_INDEXERS() external view returns (uint256);
}
