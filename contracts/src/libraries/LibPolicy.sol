// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {IAppAuth} from "../interfaces/IAppAuth.sol";
import {IAppAuthBasicManagement} from "../interfaces/IAppAuthBasicManagement.sol";
import {IMembership} from "../interfaces/IMembership.sol";
import {IPolicy} from "../interfaces/IPolicy.sol";
import {LibMemberClaims} from "./LibMemberClaims.sol";
import {AppsStorage} from "../storage/AppsStorage.sol";
import {MembershipStorage} from "../storage/MembershipStorage.sol";
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

    /// @notice The compose hashes allowed for `role`.
    function composeHashes(PolicyStorage.Layout storage p, IPolicy.AppRole role)
        internal
        view
        returns (EnumerableSet.Bytes32Set storage)
    {
        return role == IPolicy.AppRole.Indexer ? p.indexerComposeHashes : p.composeHashes;
    }

    /// @notice An app id's role: node unless the owner named it an indexer app id.
    function roleOf(PolicyStorage.Layout storage p, address appId) internal view returns (IPolicy.AppRole) {
        return p.indexerAppIds.contains(appId) ? IPolicy.AppRole.Indexer : IPolicy.AppRole.Node;
    }

    /// @notice Allow or deny a compose hash for one role, emitting the role's event (and dstack's for the
    /// node role) only when something changed.
    function setComposeHashAllowed(bytes32 composeHash, IPolicy.AppRole role, bool allowed) internal {
        EnumerableSet.Bytes32Set storage set = composeHashes(PolicyStorage.load(), role);
        bool node = role == IPolicy.AppRole.Node;
        if (allowed) {
            if (composeHash == bytes32(0)) revert IPolicy.ZeroIdentifier();
            if (!set.add(composeHash)) return;
            if (node) {
                emit IAppAuthBasicManagement.ComposeHashAdded(composeHash);
                // Members run node composes: the owner records the release's (compose, root) pairs once,
                // so registration only reads them.
                LibMemberClaims.setComposeHashAdmitted(composeHash, true);
            }
            emit IPolicy.ComposeHashAllowedFor(composeHash, role);
        } else {
            if (!set.remove(composeHash)) return;
            if (node) {
                emit IAppAuthBasicManagement.ComposeHashRemoved(composeHash);
                LibMemberClaims.setComposeHashAdmitted(composeHash, false);
            }
            emit IPolicy.ComposeHashDeniedFor(composeHash, role);
        }
    }

    /// @notice Give an app id a role. An app id whose member is active runs a node: its role stays.
    function setAppRole(address appId, IPolicy.AppRole role) internal {
        EnumerableSet.AddressSet storage indexers = PolicyStorage.load().indexerAppIds;
        if (indexers.contains(appId) == (role == IPolicy.AppRole.Indexer)) return;
        uint64 memberId = AppsStorage.load().apps[appId].memberId;
        if (memberId != 0 && MembershipStorage.load().members[memberId].status == IMembership.MemberStatus.Active) {
            revert IPolicy.AppIdHasActiveMember(appId, memberId);
        }
        if (role == IPolicy.AppRole.Indexer) indexers.add(appId);
        else indexers.remove(appId);
        emit IPolicy.AppRoleSet(appId, role);
    }

    /// @notice Revert unless `appId` has `role` and `composeHash` is allowed for it: the registry's check
    /// that the indexer runs under an indexer app id the compose hash it claims may boot.
    function enforceRoleCompose(address appId, bytes32 composeHash, IPolicy.AppRole role) internal view {
        PolicyStorage.Layout storage p = PolicyStorage.load();
        IPolicy.AppRole actual = roleOf(p, appId);
        if (actual != role) revert IPolicy.AppRoleMismatch(appId, actual, role);
        if (!composeHashes(p, role).contains(composeHash)) revert IPolicy.ComposeHashNotAllowedFor(composeHash, role);
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
        // Scoped by the app id's role, as dstack scopes compose hashes per app contract.
        if (p.indexerAppIds.contains(bootInfo.appId)) {
            if (!p.indexerComposeHashes.contains(bootInfo.composeHash)) {
                return (false, "Compose hash not allowed for the indexer role");
            }
        } else if (!p.composeHashes.contains(bootInfo.composeHash)) {
            return (false, "Compose hash not allowed for the node role");
        }
        if (!p.allowAnyDevice && !p.deviceIds.contains(bootInfo.deviceId)) return (false, "Device not allowed");
        return (true, "");
    }
}
