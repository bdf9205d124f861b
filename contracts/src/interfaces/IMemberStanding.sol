// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title What a member stated at registration, and whether the policy still admits it
/// @notice At registration a member states the compose hash it runs and the device it runs on (read
/// from its own guest agent, signed by its member key); the cluster records them with the KMS root
/// that admitted it. Revoking that device, removing that compose hash or that KMS root leaves the
/// member non-standing: peers drop it, it cannot register again with the same claims, and the owner's
/// `evictStale` evicts it.
interface IMemberStanding {
    /// @notice Whether a member would be admitted again now.
    /// @dev `NotActive`: left, evicted or unknown. `Good`: it would be admitted. `Unrecorded`: it
    /// registered before claims were recorded, so nothing can be judged. The rest are stale, and name
    /// the first reason found (device first, then compose hash, then KMS root).
    enum Standing {
        NotActive,
        Good,
        Unrecorded,
        DeviceRevoked,
        DeviceNotAllowed,
        ComposeHashNotAllowed,
        KmsRootNotAllowed
    }

    /// @notice What a member states about itself at registration, signed inside `Register`.
    /// @param composeHash The compose hash its guest agent reports (`Info.compose_hash`).
    /// @param deviceId The device id its guest agent reports (`Info.device_id`).
    struct RuntimeClaims {
        bytes32 composeHash;
        bytes32 deviceId;
    }

    /// @notice One member's recorded claims and standing.
    /// @param composeHash The compose hash it stated (0 when unrecorded).
    /// @param deviceId The device id it stated, if an owner call recorded that device (allowed it) before
    /// the member registered; 0 when unrecorded, and when only its fingerprint was kept (a device no
    /// owner call had named, under allow-any-device: keeping the id would cost registration a slot).
    /// @param kmsRoot The KMS root its key chain recovered to (0 when unrecorded).
    /// @param standing Its standing now.
    /// @param deviceFingerprint The 31-bit fingerprint of the stated device id, the top 31 bits of
    /// keccak256(deviceId) (0 when unrecorded). A member held by fingerprint is judged against every
    /// device with that fingerprint.
    struct MemberClaimsView {
        bytes32 composeHash;
        bytes32 deviceId;
        address kmsRoot;
        Standing standing;
        uint32 deviceFingerprint;
    }

    /// @notice A member was admitted on a device no owner call had named (under allow-any-device). The
    /// cluster keeps only the device's fingerprint for it (`MemberClaimsView.deviceFingerprint`; keeping
    /// the id would cost registration a slot), so the stated device id is kept in this log.
    /// @param memberId The member.
    /// @param deviceId The device id it stated (its fingerprint is the member's `deviceFingerprint`).
    event MemberDeviceStated(uint64 indexed memberId, bytes32 deviceId);

    /// @notice The stated compose hash is not allowed (never added, or withdrawn).
    /// @param composeHash The compose hash.
    error ComposeHashNotAllowed(bytes32 composeHash);

    /// @notice The stated device id is zero, or not on the device allowlist while devices are restricted.
    /// @param deviceId The device id.
    error DeviceNotAllowed(bytes32 deviceId);

    /// @notice An active member re-submitted its registration, but the policy no longer admits it.
    /// @param memberId The member.
    /// @param standing Why it is not standing.
    error MemberNotStanding(uint64 memberId, Standing standing);

    /// @notice A member's recorded claims and its standing now.
    function memberClaims(uint64 memberId) external view returns (MemberClaimsView memory);

    /// @notice Whether a member would be admitted again now (see `Standing`).
    function memberStanding(uint64 memberId) external view returns (Standing);

    /// @notice The standing of members with ids from `startId`, at most `limit` of them, in the pages
    /// `IMembership.members` returns (a sidecar reads both at one block).
    /// @return page The standings, in id order.
    /// @return nextId The id to continue from; 0 when there are no more, or when `limit` is 0.
    function memberStandings(uint64 startId, uint256 limit)
        external
        view
        returns (Standing[] memory page, uint64 nextId);

    /// @notice Evict every active non-standing member with an id in `[startId, startId + limit)`,
    /// reason 254 (`LibMemberClaims.EVICTED_STALE`). Owner only. Members registered before claims were recorded are left.
    /// @return evicted How many members this call evicted.
    /// @return nextId The id to continue from; 0 when the page reached the last member.
    function evictStale(uint64 startId, uint256 limit) external returns (uint256 evicted, uint64 nextId);
}
