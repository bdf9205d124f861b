// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {IAppAuth} from "../interfaces/IAppAuth.sol";
import {IAppAuthBasicManagement} from "../interfaces/IAppAuthBasicManagement.sol";
import {IIndexerRegistry} from "../interfaces/IIndexerRegistry.sol";
import {IMembership} from "../interfaces/IMembership.sol";
import {IPolicy} from "../interfaces/IPolicy.sol";
import {LibCsk} from "../libraries/LibCsk.sol";
import {LibMemberClaims} from "../libraries/LibMemberClaims.sol";
import {LibMembership} from "../libraries/LibMembership.sol";
import {LibOwnership} from "../libraries/LibOwnership.sol";
import {LibPolicy} from "../libraries/LibPolicy.sol";
import {AppsStorage} from "../storage/AppsStorage.sol";
import {IndexerRegistryStorage} from "../storage/IndexerRegistryStorage.sol";
import {MembershipStorage} from "../storage/MembershipStorage.sol";
import {PolicyStorage} from "../storage/PolicyStorage.sol";

/// @title Policy facet: allowlists, revocations and dstack's boot gate
contract PolicyFacet is IPolicy {
    using EnumerableSet for EnumerableSet.Bytes32Set;
    using EnumerableSet for EnumerableSet.AddressSet;

    /// @inheritdoc IAppAuthBasicManagement
    /// @dev For the node role (see IPolicy).
    function addComposeHash(bytes32 composeHash) external {
        LibOwnership.enforceIsOwner();
        LibPolicy.setComposeHashAllowed(composeHash, AppRole.Node, true);
    }

    /// @inheritdoc IAppAuthBasicManagement
    /// @dev For the node role (see IPolicy).
    function removeComposeHash(bytes32 composeHash) external {
        LibOwnership.enforceIsOwner();
        LibPolicy.setComposeHashAllowed(composeHash, AppRole.Node, false);
    }

    /// @inheritdoc IPolicy
    function addComposeHashFor(bytes32 composeHash, AppRole role) external {
        LibOwnership.enforceIsOwner();
        LibPolicy.setComposeHashAllowed(composeHash, role, true);
    }

    /// @inheritdoc IPolicy
    function removeComposeHashFor(bytes32 composeHash, AppRole role) external {
        LibOwnership.enforceIsOwner();
        LibPolicy.setComposeHashAllowed(composeHash, role, false);
    }

    /// @inheritdoc IAppAuthBasicManagement
    function addDevice(bytes32 deviceId) external {
        PolicyStorage.Layout storage l = _ownerLoadUnrevokedDevice(deviceId);
        if (l.deviceIds.add(deviceId)) {
            emit DeviceAdded(deviceId);
            LibMemberClaims.setDeviceListed(deviceId, true);
        }
    }

    /// @inheritdoc IAppAuthBasicManagement
    function removeDevice(bytes32 deviceId) external {
        LibOwnership.enforceIsOwner();
        PolicyStorage.Layout storage l = PolicyStorage.load();
        if (l.deviceIds.remove(deviceId)) {
            emit DeviceRemoved(deviceId);
            LibMemberClaims.setDeviceListed(deviceId, false);
            // Restricted devices: members on it stop standing, so the next key is made without them.
            if (!l.allowAnyDevice) LibCsk.ownerReopen();
        }
    }

    /// @inheritdoc IPolicy
    function setAllowAnyDevice(bool allowAny) external {
        LibOwnership.enforceIsOwner();
        PolicyStorage.Layout storage l = PolicyStorage.load();
        if (l.allowAnyDevice == allowAny) return;
        l.allowAnyDevice = allowAny;
        LibMemberClaims.setAnyDevice(allowAny);
        emit AllowAnyDeviceSet(allowAny);
        // Members on unlisted devices stop standing: the next key is made without them.
        if (!allowAny) LibCsk.ownerReopen();
    }

    /// @inheritdoc IPolicy
    function setRequireTcbUpToDate(bool required) external {
        LibOwnership.enforceIsOwner();
        PolicyStorage.Layout storage l = PolicyStorage.load();
        if (l.requireTcbUpToDate == required) return;
        l.requireTcbUpToDate = required;
        emit RequireTcbUpToDateSet(required);
    }

    /// @inheritdoc IPolicy
    function addAppId(address appId) external {
        LibOwnership.enforceIsOwner();
        if (appId == address(0)) revert ZeroIdentifier();
        LibPolicy.setAppAllowed(appId, true);
        LibPolicy.setAppRole(appId, AppRole.Node);
    }

    /// @inheritdoc IPolicy
    function addAppIdFor(address appId, AppRole role) external {
        LibOwnership.enforceIsOwner();
        if (appId == address(0)) revert ZeroIdentifier();
        LibPolicy.setAppAllowed(appId, true);
        LibPolicy.setAppRole(appId, role);
    }

    /// @inheritdoc IPolicy
    function removeAppId(address appId) external {
        LibOwnership.enforceIsOwner();
        LibPolicy.setAppAllowed(appId, false);
    }

    /// @inheritdoc IPolicy
    function revokeAppId(address appId, bytes32 reason) external {
        LibOwnership.enforceIsOwner();
        if (appId == address(0)) revert ZeroIdentifier();
        AppsStorage.AppRecord storage app = AppsStorage.load().apps[appId];
        if (app.revokedAt != 0) revert AppIdRevoked(appId, app.revokedAt);
        LibPolicy.setAppAllowed(appId, false);
        app.revokedAt = uint40(block.timestamp);
        emit AppIdRevokedAt(appId, uint64(block.timestamp), reason);
        // A revoked app id must not keep vouching for an indexer's key either.
        IndexerRegistryStorage.Layout storage indexers = IndexerRegistryStorage.load();
        uint256 before = indexers.records.length;
        for (uint256 i = before; i > 0; i--) {
            bytes32 key = indexers.records[i - 1].signingKey;
            if (indexers.records[i - 1].appId != appId) continue;
            IndexerRegistryStorage.removeRecord(indexers, key);
            emit IIndexerRegistry.IndexerRemoved(key);
        }
        if (before != 0 && indexers.records.length == 0) emit IIndexerRegistry.IndexerCleared();
        // Its latest member is evicted whether it is still active or left just before (to dodge this).
        uint64 memberId = app.memberId;
        if (memberId != 0 && MembershipStorage.load().members[memberId].status != IMembership.MemberStatus.Evicted) {
            LibMembership.evict(memberId, LibMembership.EVICTED_BY_REVOCATION);
        }
    }

    /// @inheritdoc IPolicy
    function revokeDevice(bytes32 deviceId, bytes32 reason) external {
        PolicyStorage.Layout storage l = _ownerLoadUnrevokedDevice(deviceId);
        if (l.deviceIds.remove(deviceId)) {
            emit DeviceRemoved(deviceId);
            LibMemberClaims.setDeviceListed(deviceId, false);
        }
        l.deviceRevokedAt[deviceId] = uint64(block.timestamp);
        LibMemberClaims.setDeviceRevoked(deviceId);
        emit DeviceRevokedAt(deviceId, uint64(block.timestamp), reason);
        // Members on it stop standing: the next key is made without them, before any eviction.
        LibCsk.ownerReopen();
    }

    /// @inheritdoc IPolicy
    function addKmsRoot(address kmsRoot) external {
        LibOwnership.enforceIsOwner();
        if (kmsRoot == address(0)) revert ZeroIdentifier();
        if (PolicyStorage.load().kmsRoots.add(kmsRoot)) {
            emit KmsRootAdded(kmsRoot);
            LibMemberClaims.setKmsRootAdmitted(kmsRoot, true);
        }
    }

    /// @inheritdoc IPolicy
    function removeKmsRoot(address kmsRoot) external {
        LibOwnership.enforceIsOwner();
        if (PolicyStorage.load().kmsRoots.remove(kmsRoot)) {
            emit KmsRootRemoved(kmsRoot);
            LibMemberClaims.setKmsRootAdmitted(kmsRoot, false);
            // Members it admitted stop standing: the next key is made without them.
            LibCsk.ownerReopen();
        }
    }

    /// @inheritdoc IAppAuth
    function isAppAllowed(AppBootInfo calldata bootInfo) external view returns (bool isAllowed, string memory reason) {
        return LibPolicy.bootCheck(bootInfo);
    }

    /// @inheritdoc IPolicy
    function isComposeHashAllowed(bytes32 composeHash) external view returns (bool) {
        return PolicyStorage.load().composeHashes.contains(composeHash);
    }

    /// @inheritdoc IPolicy
    function isComposeHashAllowedFor(bytes32 composeHash, AppRole role) external view returns (bool) {
        return LibPolicy.composeHashes(PolicyStorage.load(), role).contains(composeHash);
    }

    /// @inheritdoc IPolicy
    function appRole(address appId) external view returns (AppRole) {
        return LibPolicy.roleOf(PolicyStorage.load(), appId);
    }

    /// @inheritdoc IPolicy
    function isDeviceAllowed(bytes32 deviceId) external view returns (bool) {
        return PolicyStorage.load().deviceIds.contains(deviceId);
    }

    /// @inheritdoc IPolicy
    function allowAnyDevice() external view returns (bool) {
        return PolicyStorage.load().allowAnyDevice;
    }

    /// @inheritdoc IPolicy
    function requireTcbUpToDate() external view returns (bool) {
        return PolicyStorage.load().requireTcbUpToDate;
    }

    /// @inheritdoc IPolicy
    function isAppIdAllowed(address appId) external view returns (bool) {
        AppsStorage.AppRecord storage app = AppsStorage.load().apps[appId];
        return app.allowed && app.revokedAt == 0;
    }

    /// @inheritdoc IPolicy
    function isKmsRootAllowed(address kmsRoot) external view returns (bool) {
        return PolicyStorage.load().kmsRoots.contains(kmsRoot);
    }

    /// @inheritdoc IPolicy
    function appIdRevokedAt(address appId) external view returns (uint64) {
        return AppsStorage.load().apps[appId].revokedAt;
    }

    /// @inheritdoc IPolicy
    function deviceRevokedAt(bytes32 deviceId) external view returns (uint64) {
        return PolicyStorage.load().deviceRevokedAt[deviceId];
    }

    /// @inheritdoc IPolicy
    function policySnapshot() external view returns (PolicySnapshot memory snapshot) {
        PolicyStorage.Layout storage l = PolicyStorage.load();
        snapshot.allowAnyDevice = l.allowAnyDevice;
        snapshot.composeHashes = l.composeHashes.values();
        snapshot.deviceIds = l.deviceIds.values();
        snapshot.appIds = AppsStorage.load().allowedAppIds.values();
        snapshot.kmsRoots = l.kmsRoots.values();
        snapshot.requireTcbUpToDate = l.requireTcbUpToDate;
        snapshot.indexerComposeHashes = l.indexerComposeHashes.values();
        snapshot.indexerAppIds = l.indexerAppIds.values();
    }

    /// @dev The policy storage, once the caller is known to be the owner and `deviceId` to be one the
    /// owner may still list or revoke: neither zero nor revoked already (a revocation is final).
    function _ownerLoadUnrevokedDevice(bytes32 deviceId) private view returns (PolicyStorage.Layout storage l) {
        LibOwnership.enforceIsOwner();
        if (deviceId == bytes32(0)) revert ZeroIdentifier();
        l = PolicyStorage.load();
        uint64 revokedAt = l.deviceRevokedAt[deviceId];
        if (revokedAt != 0) revert DeviceIdRevoked(deviceId, revokedAt);
    }
}
