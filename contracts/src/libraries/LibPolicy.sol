// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {IAppAuth} from "../interfaces/IAppAuth.sol";
import {IMembership} from "../interfaces/IMembership.sol";
import {IPolicy} from "../interfaces/IPolicy.sol";
import {AppsStorage} from "../storage/AppsStorage.sol";
import {PolicyStorage} from "../storage/PolicyStorage.sol";

/// @title Policy logic shared by the facets that admit keys
library LibPolicy {
    using EnumerableSet for EnumerableSet.AddressSet;
    using EnumerableSet for EnumerableSet.Bytes32Set;

    /// @notice Revert unless `appId` may join now; returns its record for the caller to update.
    function enforceJoinable(address appId) internal view returns (AppsStorage.AppRecord storage app) {
        app = AppsStorage.load().apps[appId];
        if (app.revokedAt != 0) revert IPolicy.AppIdRevoked(appId, app.revokedAt);
        if (!app.allowed) revert IMembership.AppIdNotAllowed(appId);
    }

    /// @notice Revert unless `kmsRoot` is an allowed KMS root.
    function enforceKmsRoot(address kmsRoot) internal view {
        if (!PolicyStorage.load().kmsRoots.contains(kmsRoot)) revert IMembership.KmsRootNotAllowed(kmsRoot);
    }

    /// @notice Allow or disallow an app id, keeping the record and the enumeration in step.
    function setAppAllowed(address appId, bool allowed) internal {
        AppsStorage.Layout storage l = AppsStorage.load();
        AppsStorage.AppRecord storage app = l.apps[appId];
        if (allowed) {
            if (app.revokedAt != 0) revert IPolicy.AppIdRevoked(appId, app.revokedAt);
            if (app.allowed) return;
            app.allowed = true;
            l.allowedAppIds.add(appId);
            emit IPolicy.AppIdAdded(appId);
        } else {
            if (!app.allowed) return;
            app.allowed = false;
            l.allowedAppIds.remove(appId);
            emit IPolicy.AppIdRemoved(appId);
        }
    }

    /// @notice The boot gate: the checks dstack's KMS asks for, revocations first.
    function bootCheck(IAppAuth.AppBootInfo calldata bootInfo)
        internal
        view
        returns (bool isAllowed, string memory reason)
    {
        PolicyStorage.Layout storage p = PolicyStorage.load();
        AppsStorage.AppRecord storage app = AppsStorage.load().apps[bootInfo.appId];
        if (app.revokedAt != 0) return (false, "App id revoked");
        if (p.deviceRevokedAt[bootInfo.deviceId] != 0) return (false, "Device revoked");
        if (!app.allowed) return (false, "App id not allowed");
        // dstack's own DstackApp wording, so operators see the message they know from dstack.
        if (p.requireTcbUpToDate && keccak256(bytes(bootInfo.tcbStatus)) != keccak256("UpToDate")) {
            return (false, "TCB status is not up to date");
        }
        if (!p.composeHashes.contains(bootInfo.composeHash)) return (false, "Compose hash not allowed");
        if (!p.allowAnyDevice && !p.deviceIds.contains(bootInfo.deviceId)) return (false, "Device not allowed");
        return (true, "");
    }
}
