// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IMembership} from "../interfaces/IMembership.sol";
import {IMemberStanding} from "../interfaces/IMemberStanding.sol";
import {IPolicy} from "../interfaces/IPolicy.sol";
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

    /// @notice Revert unless a member stating `claims` may join now (the KMS root is checked apart).
    function enforceJoinable(IMemberStanding.RuntimeClaims calldata claims) internal view {
        PolicyStorage.Layout storage p = PolicyStorage.load();
        bytes32 deviceId = claims.deviceId;
        if (deviceId == bytes32(0)) revert IMemberStanding.DeviceNotAllowed(deviceId);
        // Revoking a device takes it off the allowlist and `addDevice` refuses it afterwards, so a listed
        // device is never revoked: the revocation is read only where the list does not decide (any
        // device allowed), or to name it in the refusal. Two cold reads on either path.
        if (p.allowAnyDevice) {
            uint64 revokedAt = p.deviceRevokedAt[deviceId];
            if (revokedAt != 0) revert IPolicy.DeviceIdRevoked(deviceId, revokedAt);
        } else if (!p.deviceIds.contains(deviceId)) {
            uint64 revokedAt = p.deviceRevokedAt[deviceId];
            if (revokedAt != 0) revert IPolicy.DeviceIdRevoked(deviceId, revokedAt);
            revert IMemberStanding.DeviceNotAllowed(deviceId);
        }
        if (!p.composeHashes.contains(claims.composeHash)) {
            revert IMemberStanding.ComposeHashNotAllowed(claims.composeHash);
        }
    }

    /// @notice Record a new member's claims and admitting KMS root.
    function record(
        uint64 memberId,
        MembershipStorage.Member storage m,
        IMemberStanding.RuntimeClaims calldata claims,
        address kmsRoot
    ) internal {
        MemberClaimsStorage.load().deviceIds[memberId] = claims.deviceId;
        m.buildRef = recordBuild(claims.composeHash, kmsRoot);
    }

    /// @notice The reference of the (compose hash, KMS root) pair, recorded now if it is new.
    function recordBuild(bytes32 composeHash, address kmsRoot) internal returns (uint16 ref) {
        MemberClaimsStorage.Layout storage l = MemberClaimsStorage.load();
        bytes32 key = _buildKey(composeHash, kmsRoot);
        ref = l.buildRefs[key];
        if (ref == 0) {
            l.builds.push(MemberClaimsStorage.Build(composeHash, kmsRoot));
            ref = SafeCast.toUint16(l.builds.length);
            l.buildRefs[key] = ref;
        }
    }

    /// @notice Policy hook: allowing a compose hash records its pair with every allowed KMS root, so
    /// the owner pays for it once and the release's first member registers at the usual cost.
    function recordBuildsOfComposeHash(bytes32 composeHash) internal {
        EnumerableSet.AddressSet storage roots = PolicyStorage.load().kmsRoots;
        uint256 n = roots.length();
        for (uint256 i = 0; i < n; ++i) {
            recordBuild(composeHash, roots.at(i));
        }
    }

    /// @notice Policy hook: allowing a KMS root records its pair with every allowed compose hash.
    function recordBuildsOfKmsRoot(address kmsRoot) internal {
        EnumerableSet.Bytes32Set storage hashes = PolicyStorage.load().composeHashes;
        uint256 n = hashes.length();
        for (uint256 i = 0; i < n; ++i) {
            recordBuild(hashes.at(i), kmsRoot);
        }
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
    function view_(uint64 memberId, MembershipStorage.Member storage m)
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
            v.deviceId = l.deviceIds[memberId];
        }
        v.standing = _standing(m, v);
    }

    /// @notice A member's standing now.
    function standing(uint64 memberId, MembershipStorage.Member storage m)
        internal
        view
        returns (IMemberStanding.Standing)
    {
        return view_(memberId, m).standing;
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
