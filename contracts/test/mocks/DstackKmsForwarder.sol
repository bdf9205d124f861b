// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAppAuth} from "../../src/interfaces/IAppAuth.sol";

/// @title The part of dstack's KMS contract that stands between the KMS and an app contract
/// @notice What dstack's `DstackKms` (kms/auth-eth) does when its KMS asks whether an app may boot:
/// the app must be registered with the KMS contract, the OS image allowed, code present at the app id,
/// and then the app's own `IAppAuth.isAppAllowed` answers, called from inside this view (a static
/// call). Tests put a member app behind it to see exactly what dstack's KMS would see.
interface IDstackKmsForwarder is IAppAuth {
    /// @notice `registerApp` was given the zero address.
    error InvalidAppId();

    /// @notice Only the owner may change the OS image allowlist.
    /// @param caller The account that tried.
    error NotOwner(address caller);

    /// @notice An app was registered (dstack's `AppRegistered`).
    /// @param appId The app id registered.
    event AppRegistered(address appId);

    /// @notice An OS image was allowed (dstack's `OsImageHashAdded`).
    /// @param osImageHash The image hash.
    event OsImageHashAdded(bytes32 osImageHash);

    /// @notice Register an app; anyone may, as with dstack's `DstackKms.registerApp`.
    /// @param appId The app id (its auth contract's address).
    function registerApp(address appId) external;

    /// @notice Allow an OS image. Owner only.
    /// @param osImageHash The image hash.
    function addOsImageHash(bytes32 osImageHash) external;

    /// @notice Whether an app id is registered.
    function registeredApps(address appId) external view returns (bool);

    /// @notice Whether an OS image is allowed.
    function allowedOsImages(bytes32 osImageHash) external view returns (bool);
}

/// @title A KMS-like forwarder for tests; see IDstackKmsForwarder
contract DstackKmsForwarder is IDstackKmsForwarder {
    address private immutable _owner;
    mapping(address appId => bool) public registeredApps;
    mapping(bytes32 osImageHash => bool) public allowedOsImages;

    constructor() {
        _owner = msg.sender;
    }

    /// @inheritdoc IDstackKmsForwarder
    function registerApp(address appId) external {
        if (appId == address(0)) revert InvalidAppId();
        registeredApps[appId] = true;
        emit AppRegistered(appId);
    }

    /// @inheritdoc IDstackKmsForwarder
    function addOsImageHash(bytes32 osImageHash) external {
        if (msg.sender != _owner) revert NotOwner(msg.sender);
        allowedOsImages[osImageHash] = true;
        emit OsImageHashAdded(osImageHash);
    }

    /// @inheritdoc IAppAuth
    /// @dev dstack's checks and reasons, in dstack's order.
    function isAppAllowed(AppBootInfo calldata bootInfo) external view returns (bool isAllowed, string memory reason) {
        if (!registeredApps[bootInfo.appId]) return (false, "App not registered");
        if (!allowedOsImages[bootInfo.osImageHash]) return (false, "OS image is not allowed");
        if (bootInfo.appId.code.length == 0) return (false, "App not deployed or invalid address");
        return IAppAuth(bootInfo.appId).isAppAllowed(bootInfo);
    }
}
