// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Storage of what each member stated about itself at registration
/// @notice A member states its compose hash and device id (from its guest agent's `Info`, signed by
/// its member key); the cluster adds the KMS root the attestor recovered from its key chain. The
/// compose hash and the KMS root are shared by every member of one release, so they are kept once per
/// (compose hash, KMS root) pair and a member holds a 16-bit reference beside its status. The device id
/// is per machine and shared by the CVMs on it. A member holds a 32-bit device word in its WireGuard
/// key's index entry while active (in its record once it ended): the reference of a device the owner
/// recorded (by allowing it), or, for a device no owner call named (allow-any-device), the flag bit
/// `FINGERPRINTED` over a 31-bit fingerprint of the device id. Either way no registration writes a
/// slot for its claims: that keeps every registration path within its gas budget. The owner's
/// `revokeDevice`, `addDevice` and `removeDevice` mark fingerprints too (the owner's call pays), so a
/// fingerprinted member's standing follows the policy, up to fingerprint collisions (see
/// `LibMemberClaims.fingerprintOf`).
library MemberClaimsStorage {
    /// @notice A (compose hash, KMS root) pair the policy admitted at some time; members refer to it.
    struct Build {
        bytes32 composeHash;
        address kmsRoot;
    }

    /// @notice A device some member stated, or the owner allowed, in one slot. `listed` and `revoked`
    /// mirror the policy's device allowlist and revocations (kept by PolicyFacet), so a registration
    /// decides its device with this one read.
    struct Device {
        uint32 ref;
        bool listed;
        bool revoked;
    }

    /// @notice What the policy says about every device id with one fingerprint, in one slot: how many
    /// of them are on the allowlist, and whether one was revoked (revocations are final).
    struct Fingerprint {
        uint32 listed;
        bool revoked;
    }

    /// @notice The entry of a (compose hash, KMS root) pair, in one slot: its record's reference,
    /// whether the policy admits the pair now (both allowed; kept by the policy's calls), and, while it
    /// does, the policy's allow-any-device (so registration reads no policy slot for a device).
    struct BuildEntry {
        uint16 ref;
        bool admitted;
        bool anyDevice;
    }

    /// @custom:storage-location erc7201:attestmesh.storage.MemberClaims
    struct Layout {
        mapping(bytes32 deviceId => Device) devices;
        mapping(bytes32 buildKey => BuildEntry) buildEntries;
        // Reference r (from 1) is builds[r - 1]; 0 means "registered before claims were recorded".
        Build[] builds;
        // Device reference r (from 1) names deviceIdOf[r]; 0 means "registered before claims were recorded".
        mapping(uint32 ref => bytes32 deviceId) deviceIdOf;
        uint32 deviceCount;
        // Appended: the policy's devices by fingerprint, for members that hold only a fingerprint.
        mapping(uint32 fingerprint => Fingerprint) fingerprints;
    }

    /// @notice The flag bit of a member's device word that marks a fingerprint (below it: 31 bits of
    /// keccak256(deviceId)); without it the word is a device reference. References count the owner's
    /// calls that recorded a device and cannot reach 2^31.
    uint32 internal constant FINGERPRINTED = 1 << 31;

    /// @dev keccak256(abi.encode(uint256(keccak256("attestmesh.storage.MemberClaims")) - 1)) & ~bytes32(uint256(0xff))
    bytes32 internal constant STORAGE_SLOT = 0x05b3244f0a5f4065e299f5647ed2a1e0349fdbde28e5c6511f7afed8d5ee1500;

    function load() internal pure returns (Layout storage l) {
        assembly ("memory-safe") {
            l.slot := STORAGE_SLOT
        }
    }
}
