// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title dstack's basic app-auth management interface (ERC-165 id 0x8fd37527)
/// @notice The calls dstack tooling uses to manage an app's boot policy. Event layouts (no indexed
/// fields) match dstack's, so dstack's tooling can read them. In the cluster, compose hashes are scoped
/// by role (see IPolicy) and these calls act on the node role: the role dstack's tooling manages.
interface IAppAuthBasicManagement {
    /// @notice A compose hash may now boot (in the cluster: node app ids).
    /// @param composeHash The allowed compose hash.
    event ComposeHashAdded(bytes32 composeHash);

    /// @notice A compose hash may no longer boot (in the cluster: node app ids).
    /// @param composeHash The removed compose hash.
    event ComposeHashRemoved(bytes32 composeHash);

    /// @notice A device may now host members.
    /// @param deviceId The allowed TDX device id.
    event DeviceAdded(bytes32 deviceId);

    /// @notice A device is no longer on the allowlist.
    /// @param deviceId The removed TDX device id.
    event DeviceRemoved(bytes32 deviceId);

    /// @notice Allow a compose hash to boot. Owner only. In the cluster: for the node role.
    /// @param composeHash sha256 of an `app-compose.json`.
    function addComposeHash(bytes32 composeHash) external;

    /// @notice Stop allowing a compose hash. Owner only. In the cluster: for the node role.
    /// @param composeHash The compose hash to remove.
    function removeComposeHash(bytes32 composeHash) external;

    /// @notice Allow a device. Owner only.
    /// @param deviceId The TDX device id.
    function addDevice(bytes32 deviceId) external;

    /// @notice Remove a device from the allowlist. Owner only.
    /// @param deviceId The TDX device id.
    function removeDevice(bytes32 deviceId) external;
}
