// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Factory of per-node dstack app contracts
/// @notice dstack gives each app id its own app key, so each node is its own dstack app. The factory
/// clones a member-app contract per node; its address is the node's app id and its `isAppAllowed`
/// defers to the cluster policy, so one owner governs every node's boot policy in one place.
interface IMemberApps {
    /// @notice A member app was created and its app id allowed.
    /// @param app The new app contract, i.e. the node's dstack app id.
    /// @param salt The owner's salt.
    event MemberAppCreated(address indexed app, bytes32 indexed salt);

    /// @notice Create a member app (a minimal clone) at a deterministic address and allow its app id.
    /// Owner only.
    /// @param salt Any value; the same salt always yields the same address for this cluster.
    /// @return app The app id to put in the node's dstack deployment.
    function createMemberApp(bytes32 salt) external returns (address app);

    /// @notice Where `createMemberApp(salt)` deploys.
    function predictMemberApp(bytes32 salt) external view returns (address);

    /// @notice Whether `app` was created by this cluster's factory.
    function isMemberApp(address app) external view returns (bool);

    /// @notice The implementation every member app clones.
    function memberAppImplementation() external view returns (address);
}
