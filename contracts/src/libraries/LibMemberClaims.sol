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
    /// checked apart, by `build.admitted`); returns the member's device word: the device's reference if
    /// an owner call recorded it, else its fingerprint (flagged `FINGERPRINTED`). No slot is written
    /// either way, and the common paths read one slot besides `build` (which registration reads
    /// anyway), so the first member on an unlisted device pays no more than the next.
    function enforceJoinable(IMemberStanding.RuntimeClaims calldata claims, MemberClaimsStorage.BuildEntry memory build)
        internal
        view
        returns (uint32 deviceWord)
    {
        bytes32 deviceId = claims.deviceId;
        MemberClaimsStorage.Device memory device = MemberClaimsStorage.load().devices[deviceId];
        // One read decides an allowed device: the record mirrors the allowlist and the revocations.
        if (device.listed) return device.ref;
        if (device.revoked) {
            revert IPolicy.DeviceIdRevoked(deviceId, PolicyStorage.load().deviceRevokedAt[deviceId]);
        }
        // An admitted pair's entry mirrors allow-any-device; otherwise registration fails on the compose
        // hash anyway, and the policy's flag is read to name the device's refusal first.
        bool anyDevice = build.admitted ? build.anyDevice : PolicyStorage.load().allowAnyDevice;
        if (deviceId == bytes32(0) || !anyDevice) revert IMemberStanding.DeviceNotAllowed(deviceId);
        // Allowed by allow-any-device: a device the owner once listed keeps its reference. Any other is
        // held by fingerprint, which registration does not check against revoked fingerprints (one read
        // more): a device whose fingerprint is a revoked device's (an accidental collision) joins, is
        // judged revoked at once, and `evictStale` evicts it.
        if (device.ref != 0) return device.ref;
        return MemberClaimsStorage.FINGERPRINTED | fingerprintOf(deviceId);
    }

    /// @notice The 31-bit fingerprint of `deviceId`: the top 31 bits of keccak256(deviceId).
    /// @dev Collision bound: a member held by fingerprint is judged against every device with its
    /// fingerprint, so with R revoked (or L listed) device ids and M such members on other devices,
    /// the chance that any one is misjudged is at most M * R / 2^31 (M * L / 2^31). A member cannot aim
    /// for a collision: its device id is the hardware's, reported by its guest agent to owner-approved
    /// code. The owner can (2^31 hashes), but gains nothing it lacks: it may `evict` any member, and list
    /// any device. Registration itself checks the exact device id.
    function fingerprintOf(bytes32 deviceId) internal pure returns (uint32 fingerprint) {
        assembly ("memory-safe") {
            mstore(0x00, deviceId)
            fingerprint := shr(225, keccak256(0x00, 0x20))
        }
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

    /// @notice Policy hook: the owner added `deviceId` to the allowlist (`listed`) or took it off.
    /// Allowing records the device, so its members register without writing a slot for it. Either way
    /// the device's fingerprint counts it, for members held by fingerprint.
    function setDeviceListed(bytes32 deviceId, bool listed) internal {
        MemberClaimsStorage.Layout storage l = MemberClaimsStorage.load();
        if (listed) recordDevice(deviceId);
        l.devices[deviceId].listed = listed;
        MemberClaimsStorage.Fingerprint storage f = l.fingerprints[fingerprintOf(deviceId)];
        if (listed) f.listed += 1;
        else f.listed -= 1;
    }

    /// @notice Policy hook: the owner revoked `deviceId` (and took it off the allowlist if it was on);
    /// every member on it, by reference or by fingerprint, stops standing.
    function setDeviceRevoked(bytes32 deviceId) internal {
        MemberClaimsStorage.Layout storage l = MemberClaimsStorage.load();
        l.devices[deviceId].revoked = true;
        l.fingerprints[fingerprintOf(deviceId)].revoked = true;
    }

    /// @notice The entry of the pair (`composeHash`, `kmsRoot`): the reference a member keeps beside its
    /// status, whether the policy admits the pair, and allow-any-device. The policy hooks below keep
    /// `admitted` exactly while both are allowed, and `anyDevice` equal to the policy's flag while
    /// `admitted`, so this one read decides the compose hash, the KMS root and allow-any-device.
    function buildEntry(bytes32 composeHash, address kmsRoot)
        internal
        view
        returns (MemberClaimsStorage.BuildEntry memory)
    {
        return MemberClaimsStorage.load().buildEntries[_buildKey(composeHash, kmsRoot)];
    }

    /// @notice Policy hook: allow-any-device was set to `anyDevice`; mirrored into every admitted pair's
    /// entry (the owner pays one write per allowed node compose hash and KMS root).
    function setAnyDevice(bool anyDevice) internal {
        PolicyStorage.Layout storage p = PolicyStorage.load();
        MemberClaimsStorage.Layout storage l = MemberClaimsStorage.load();
        uint256 hashes = p.composeHashes.length();
        uint256 roots = p.kmsRoots.length();
        for (uint256 i = 0; i < hashes; ++i) {
            bytes32 composeHash = p.composeHashes.at(i);
            for (uint256 j = 0; j < roots; ++j) {
                l.buildEntries[_buildKey(composeHash, p.kmsRoots.at(j))].anyDevice = anyDevice;
            }
        }
    }

    /// @notice Policy hook: a node compose hash was allowed (`allowed`) or removed. Allowing records its
    /// pair with every allowed KMS root (and allow-any-device), so the owner pays for it once and
    /// registration only reads it;
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
        if (allowed) entry.anyDevice = PolicyStorage.load().allowAnyDevice;
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
        uint32 deviceWord;
        if (ref != 0) {
            MemberClaimsStorage.Layout storage l = MemberClaimsStorage.load();
            MemberClaimsStorage.Build storage b = l.builds[ref - 1];
            v.composeHash = b.composeHash;
            v.kmsRoot = b.kmsRoot;
            deviceWord = LibMembership.deviceRefOf(m);
            if (deviceWord & MemberClaimsStorage.FINGERPRINTED != 0) {
                v.deviceFingerprint = deviceWord & ~MemberClaimsStorage.FINGERPRINTED;
            } else {
                v.deviceId = l.deviceIdOf[deviceWord];
                v.deviceFingerprint = fingerprintOf(v.deviceId);
            }
        }
        v.standing = _standing(m, v, deviceWord);
    }

    /// @notice A member's standing now.
    function standing(MembershipStorage.Member storage m) internal view returns (IMemberStanding.Standing) {
        return view_(m).standing;
    }

    function _standing(MembershipStorage.Member storage m, IMemberStanding.MemberClaimsView memory v, uint32 deviceWord)
        private
        view
        returns (IMemberStanding.Standing)
    {
        if (m.status != IMembership.MemberStatus.Active) return IMemberStanding.Standing.NotActive;
        if (m.buildRef == 0) return IMemberStanding.Standing.Unrecorded;
        PolicyStorage.Layout storage p = PolicyStorage.load();
        if (deviceWord & MemberClaimsStorage.FINGERPRINTED != 0) {
            // Only the fingerprint is known: judged against every device id that has it.
            MemberClaimsStorage.Fingerprint memory f = MemberClaimsStorage.load().fingerprints[v.deviceFingerprint];
            if (f.revoked) return IMemberStanding.Standing.DeviceRevoked;
            if (!p.allowAnyDevice && f.listed == 0) return IMemberStanding.Standing.DeviceNotAllowed;
        } else {
            if (p.deviceRevokedAt[v.deviceId] != 0) return IMemberStanding.Standing.DeviceRevoked;
            if (!p.allowAnyDevice && !p.deviceIds.contains(v.deviceId)) {
                return IMemberStanding.Standing.DeviceNotAllowed;
            }
        }
        if (!p.composeHashes.contains(v.composeHash)) return IMemberStanding.Standing.ComposeHashNotAllowed;
        if (!p.kmsRoots.contains(v.kmsRoot)) return IMemberStanding.Standing.KmsRootNotAllowed;
        return IMemberStanding.Standing.Good;
    }
}
