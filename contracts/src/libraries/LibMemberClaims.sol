// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IMembership} from "../interfaces/IMembership.sol";
import {IMemberStanding} from "../interfaces/IMemberStanding.sol";
import {IPolicy} from "../interfaces/IPolicy.sol";
import {LibMembership} from "./LibMembership.sol";
import {MemberClaimsStorage} from "../storage/MemberClaimsStorage.sol";
import {MembershipStorage} from "../storage/MembershipStorage.sol";
import {PolicyStorage} from "../storage/PolicyStorage.sol";

/// @title A member's stated compose hash and device, its admitting KMS root, and its standing
/// @notice Revocation beats allowlisting for running members too: a member whose device was revoked,
/// or whose compose hash or KMS root was removed, is no longer standing.
library LibMemberClaims {
    using EnumerableSet for EnumerableSet.AddressSet;
    using EnumerableSet for EnumerableSet.Bytes32Set;

    /// @notice The eviction reason `evictStale` records.
    uint8 internal constant EVICTED_STALE = 254;

    /// @notice Revert unless a member stating `claims` may run on its device now (the compose hash is
    /// checked by `admittedBuild`, the KMS root apart); returns the reference of its device, recording
    /// the device if no member stated it before.
    function enforceJoinable(IMemberStanding.RuntimeClaims calldata claims) internal returns (uint32 deviceRef) {
        bytes32 deviceId = claims.deviceId;
        MemberClaimsStorage.Device memory device = MemberClaimsStorage.load().devices[deviceId];
        // One read decides an allowed device: the record mirrors the allowlist and the revocations.
        if (!device.listed) {
            PolicyStorage.Layout storage p = PolicyStorage.load();
            if (device.revoked) revert IPolicy.DeviceIdRevoked(deviceId, p.deviceRevokedAt[deviceId]);
            if (deviceId == bytes32(0) || !p.allowAnyDevice) revert IMemberStanding.DeviceNotAllowed(deviceId);
        }
        deviceRef = device.ref;
        // Only an unlisted device under allow-any-device can be new here; the owner records listed ones.
        if (deviceRef == 0) deviceRef = recordDevice(deviceId);
    }

    /// @notice The reference of `deviceId`, recorded now if it is new.
    function recordDevice(bytes32 deviceId) internal returns (uint32 ref) {
        MemberClaimsStorage.Layout storage l = MemberClaimsStorage.load();
        ref = l.devices[deviceId].ref;
        if (ref != 0) return ref;
        ref = l.deviceCount + 1;
        l.deviceCount = ref;
        l.deviceIdOf[ref] = deviceId;
        l.devices[deviceId].ref = ref;
    }

    /// @notice Policy hook: the owner allowed, removed or revoked `deviceId`. Allowing records the
    /// device, so its members register without writing a slot for it.
    function setDeviceListed(bytes32 deviceId, bool listed, bool revoked) internal {
        if (listed) recordDevice(deviceId);
        MemberClaimsStorage.Device storage device = MemberClaimsStorage.load().devices[deviceId];
        device.listed = listed;
        if (revoked) device.revoked = true;
    }

    /// @notice The reference of the pair (`composeHash`, `kmsRoot`), which a member keeps beside its
    /// status; reverts `ComposeHashNotAllowed` unless the policy admits the pair. The policy hooks below
    /// keep the entry's `admitted` exactly while both are allowed, so this one read decides the compose
    /// hash.
    function admittedBuild(bytes32 composeHash, address kmsRoot) internal view returns (uint16) {
        MemberClaimsStorage.BuildEntry memory entry =
            MemberClaimsStorage.load().buildEntries[_buildKey(composeHash, kmsRoot)];
        if (!entry.admitted) revert IMemberStanding.ComposeHashNotAllowed(composeHash);
        return entry.ref;
    }

    /// @notice Policy hook: a node compose hash was allowed (`allowed`) or removed. Allowing records its
    /// pair with every allowed KMS root, so the owner pays for it once and registration only reads it;
    /// removing marks the pairs not admitted (the records stay: members refer to them, and allowing the
    /// pair again reuses its record).
    function setComposeHashAdmitted(bytes32 composeHash, bool allowed) internal {
        EnumerableSet.AddressSet storage roots = PolicyStorage.load().kmsRoots;
        uint256 n = roots.length();
        for (uint256 i = 0; i < n; ++i) {
            _setBuildAdmitted(composeHash, roots.at(i), allowed);
        }
    }

    /// @notice Policy hook: a KMS root was allowed or removed; its pairs with every allowed node compose
    /// hash, as `setComposeHashAdmitted`.
    function setKmsRootAdmitted(address kmsRoot, bool allowed) internal {
        EnumerableSet.Bytes32Set storage hashes = PolicyStorage.load().composeHashes;
        uint256 n = hashes.length();
        for (uint256 i = 0; i < n; ++i) {
            _setBuildAdmitted(hashes.at(i), kmsRoot, allowed);
        }
    }

    function _setBuildAdmitted(bytes32 composeHash, address kmsRoot, bool allowed) private {
        MemberClaimsStorage.Layout storage l = MemberClaimsStorage.load();
        MemberClaimsStorage.BuildEntry storage entry = l.buildEntries[_buildKey(composeHash, kmsRoot)];
        uint16 ref = entry.ref;
        if (ref == 0) {
            if (!allowed) return;
            l.builds.push(MemberClaimsStorage.Build(composeHash, kmsRoot));
            ref = SafeCast.toUint16(l.builds.length);
        }
        entry.ref = ref;
        entry.admitted = allowed;
    }

    /// @dev keccak256(abi.encode(composeHash, kmsRoot)), hashed in scratch space.
    function _buildKey(bytes32 composeHash, address kmsRoot) private pure returns (bytes32 key) {
        assembly ("memory-safe") {
            mstore(0x00, composeHash)
            mstore(0x20, kmsRoot)
            key := keccak256(0x00, 0x40)
        }
    }

    /// @notice A member's recorded claims and standing.
    function view_(MembershipStorage.Member storage m)
        internal
        view
        returns (IMemberStanding.MemberClaimsView memory v)
    {
        uint16 ref = m.buildRef;
        if (ref != 0) {
            MemberClaimsStorage.Layout storage l = MemberClaimsStorage.load();
            MemberClaimsStorage.Build storage b = l.builds[ref - 1];
            v.composeHash = b.composeHash;
            v.kmsRoot = b.kmsRoot;
            v.deviceId = l.deviceIdOf[LibMembership.deviceRefOf(m)];
        }
        v.standing = _standing(m, v);
    }

    /// @notice A member's standing now.
    function standing(MembershipStorage.Member storage m) internal view returns (IMemberStanding.Standing) {
        return view_(m).standing;
    }

    function _standing(MembershipStorage.Member storage m, IMemberStanding.MemberClaimsView memory v)
        private
        view
        returns (IMemberStanding.Standing)
    {
        if (m.status != IMembership.MemberStatus.Active) return IMemberStanding.Standing.NotActive;
        if (m.buildRef == 0) return IMemberStanding.Standing.Unrecorded;
        PolicyStorage.Layout storage p = PolicyStorage.load();
        if (p.deviceRevokedAt[v.deviceId] != 0) return IMemberStanding.Standing.DeviceRevoked;
        if (!p.allowAnyDevice && !p.deviceIds.contains(v.deviceId)) return IMemberStanding.Standing.DeviceNotAllowed;
        if (!p.composeHashes.contains(v.composeHash)) return IMemberStanding.Standing.ComposeHashNotAllowed;
        if (!p.kmsRoots.contains(v.kmsRoot)) return IMemberStanding.Standing.KmsRootNotAllowed;
        return IMemberStanding.Standing.Good;
    }
}
