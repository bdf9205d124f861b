// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IMemberStanding} from "./IMemberStanding.sol";

/// @title Cluster membership and mesh addressing
/// @notice A member is a CVM admitted by a dstack key chain for its secp256k1 member key, bound by
/// that key's EIP-712 signature to its WireGuard key and Ed25519 identity key. Each member gets a mesh
/// IP inside the cluster CIDR, unique among active members. One app id holds at most one membership.
///
/// Each WireGuard key and each identity key is bound to the app id that first registered it, so no two
/// active members ever share a key (a sidecar would have to drop one of them) and no member can take
/// another's key, not even while that one is away: a member that leaves keeps its keys reserved for
/// its own app id, which derives the same keys again when it returns. The binding ends only when the
/// owner evicts the app's member or revokes the app id.
interface IMembership is IMemberStanding {
    /// @notice Lifecycle of a member record; a record never becomes `Active` again.
    enum MemberStatus {
        None,
        Active,
        Left,
        Evicted
    }

    /// @notice The dstack key chain of a member key: purpose (guest API v0) or domain (v1)
    /// `attestmesh-member-v1`, algorithm secp256k1.
    /// @param appId The dstack app id the chain was issued for.
    /// @param memberPubkey The 33-byte compressed secp256k1 member key.
    /// @param appPubkey The 33-byte compressed secp256k1 app key.
    /// @param appSignature The app key's signature over the member key (65 bytes).
    /// @param kmsSignature The KMS root's signature over the app key (65 bytes).
    /// @param guestApiVersion The dstack guest API the key came from: 0 (`GetKey`, link 0 signs
    /// `purpose:hex(key)`) or 1 (`/v1/GetKey`, link 0 signs the length-prefixed claim); see
    /// IDstackAttestor. Anything else reverts `UnsupportedGuestApiVersion`.
    struct DstackProof {
        address appId;
        bytes memberPubkey;
        bytes appPubkey;
        bytes appSignature;
        bytes kmsSignature;
        uint8 guestApiVersion;
    }

    /// @notice One member, as tools and sidecars read it.
    /// @param memberId The member id (from 1, never reused).
    /// @param appId The member's dstack app id.
    /// @param memberKey The address of the member's secp256k1 key; it signs every member action.
    /// @param wireguardKey The member's WireGuard (Curve25519) public key.
    /// @param identityKey The member's Ed25519 identity key (heartbeats; its X25519 form seals the CSK).
    /// @param meshIp The member's mesh IPv4 address (host order); unique among active members.
    /// @param status The member's lifecycle state.
    /// @param registeredAt When it was admitted.
    /// @param endedAt When it left or was evicted, 0 while active.
    /// @param endReason The eviction reason code (0 when it left by itself).
    struct MemberView {
        uint64 memberId;
        address appId;
        address memberKey;
        bytes32 wireguardKey;
        bytes32 identityKey;
        uint32 meshIp;
        MemberStatus status;
        uint40 registeredAt;
        uint40 endedAt;
        uint8 endReason;
    }

    /// @notice The key chain's KMS signer is not an allowed KMS root.
    /// @param kmsRoot The recovered KMS signer.
    error KmsRootNotAllowed(address kmsRoot);

    /// @notice The app id is not on the allowlist.
    /// @param appId The app id.
    error AppIdNotAllowed(address appId);

    /// @notice The app id already has an active member with other keys.
    /// @param appId The app id.
    /// @param memberId Its active member.
    error AppIdHasMember(address appId, uint64 memberId);

    /// @notice The registration was not signed by the member key of the chain (or for another
    /// cluster, chain, nonce or key set).
    /// @param memberKey The member key's address.
    /// @param signer The address that signed.
    error RegistrationSignatureMismatch(address memberKey, address signer);

    /// @notice A WireGuard or identity key is zero.
    error ZeroKey();

    /// @notice The WireGuard key is bound to another app id (its member registered it first).
    /// @param wireguardKey The key.
    /// @param holderAppId The app id it is bound to.
    /// @param holderMemberId The member that registered it under that app id (active or not).
    error WireguardKeyInUse(bytes32 wireguardKey, address holderAppId, uint64 holderMemberId);

    /// @notice The identity key is bound to another app id (its member registered it first).
    /// @param identityKey The key.
    /// @param holderAppId The app id it is bound to.
    /// @param holderMemberId The member that registered it under that app id (active or not).
    error IdentityKeyInUse(bytes32 identityKey, address holderAppId, uint64 holderMemberId);

    /// @notice No member has this id.
    /// @param memberId The member id.
    error MemberUnknown(uint64 memberId);

    /// @notice The member was already evicted.
    /// @param memberId The member id.
    /// @param endedAt When its membership ended.
    error MemberAlreadyEvicted(uint64 memberId, uint40 endedAt);

    /// @notice The member is not active (unknown, left or evicted).
    /// @param memberId The member id.
    /// @param status Its status.
    error MemberNotActive(uint64 memberId, MemberStatus status);

    /// @notice A member action was not signed by that member's key.
    /// @param memberId The member the action claims to come from.
    /// @param signer The address that signed.
    error MemberSignatureMismatch(uint64 memberId, address signer);

    /// @notice Every host address of the mesh CIDR is in use.
    error MeshFull();

    /// @notice A member was admitted.
    /// @param memberId The new member id.
    /// @param appId Its dstack app id.
    /// @param memberKey The address of its member key.
    /// @param wireguardKey Its WireGuard public key.
    /// @param identityKey Its Ed25519 identity key.
    /// @param meshIp Its mesh IPv4 address (host order).
    /// @param kmsRoot The KMS root that signed its key chain.
    event MemberRegistered(
        uint64 indexed memberId,
        address indexed appId,
        address indexed memberKey,
        bytes32 wireguardKey,
        bytes32 identityKey,
        uint32 meshIp,
        address kmsRoot
    );

    /// @notice A member was evicted by the owner (or by its app id's revocation); its mesh IP is free.
    /// Also emitted for a member that had already left when the eviction landed: its record turns
    /// from `Left` to `Evicted` (its `endedAt` stays the time it left).
    /// @param memberId The member id.
    /// @param appId Its app id, which is no longer allowed.
    /// @param reason The owner's reason code (`EVICTED_BY_REVOCATION` for a revocation).
    event MemberEvicted(uint64 indexed memberId, address indexed appId, uint8 reason);

    /// @notice A member left by itself; its mesh IP is free and its app id may register again.
    /// @param memberId The member id.
    /// @param appId Its app id.
    event MemberLeft(uint64 indexed memberId, address indexed appId);

    /// @notice Admit a member. Anyone may submit (a relayer pays the gas); the member key signs.
    /// @dev Requires: a valid key chain (of the guest API `proof.guestApiVersion` names) for
    /// `proof.memberPubkey` with purpose or domain `MEMBER_KEY_PURPOSE`, an allowed KMS root, an allowed
    /// and unrevoked app id, claims the policy admits (device not revoked and allowed, compose hash
    /// allowed; see IMemberStanding), and the member key's EIP-712 signature over
    /// `Register(appId, wireguardKey, identityKey, composeHash, deviceId, nonce)` with the app id's
    /// current nonce. The cluster records the claims and the recovered KMS root. Submitting the same
    /// keys again while the member is active is a no-op that returns its id; it still passes the
    /// KMS-root and app-id checks and reverts `MemberNotStanding` once the member is stale, so a
    /// restarted sidecar reads `memberOfApp` before registering. Refuses a WireGuard or identity key
    /// bound to another app id (`WireguardKeyInUse`, `IdentityKeyInUse`); binds both keys to
    /// `proof.appId`.
    /// @param proof The member key's dstack chain.
    /// @param wireguardKey The WireGuard public key.
    /// @param identityKey The Ed25519 identity key.
    /// @param claims The compose hash and device id the member's guest agent reports.
    /// @param signature The member key's EIP-712 signature (65 bytes).
    /// @return memberId The member id (new, or the existing one for a no-op).
    function register(
        DstackProof calldata proof,
        bytes32 wireguardKey,
        bytes32 identityKey,
        RuntimeClaims calldata claims,
        bytes calldata signature
    ) external returns (uint64 memberId);

    /// @notice Leave the cluster; the member key signs `Leave(memberId)`.
    /// @param memberId The member leaving.
    /// @param signature The member key's EIP-712 signature.
    function leaveCluster(uint64 memberId, bytes calldata signature) external;

    /// @notice Evict a member and disallow its app id. Owner only.
    /// @dev Works on a member that already left, so leaving cannot dodge an eviction: its record becomes
    /// `Evicted`, its app id is disallowed, and if the app id registered again meanwhile, that newer
    /// active member is evicted too, in the same call. Releases the evicted members' key bindings.
    /// Reverts `MemberUnknown` for an id never issued and `MemberAlreadyEvicted` for an evicted one.
    /// @param memberId The member to evict (active or left).
    /// @param reason A reason code for the audit trail.
    function evict(uint64 memberId, uint8 reason) external;

    /// @notice One member record.
    function member(uint64 memberId) external view returns (MemberView memory);

    /// @notice Member records with ids from `startId`, at most `limit` of them, every status included.
    /// @return page The records.
    /// @return nextId The id to continue from; 0 when there are no more, or when `limit` is 0.
    function members(uint64 startId, uint256 limit) external view returns (MemberView[] memory page, uint64 nextId);

    /// @notice The latest member of an app id and whether it is active.
    function memberOfApp(address appId) external view returns (uint64 memberId, bool active);

    /// @notice Whether the app id has an active member (the cheap "is this machine a member?").
    function isMember(address appId) external view returns (bool);

    /// @notice Who holds a WireGuard key.
    /// @return appId The app id the key is bound to (zero if unbound).
    /// @return memberId The latest member that registered it under that app id.
    /// @return active Whether that member is active.
    function wireguardKeyHolder(bytes32 wireguardKey)
        external
        view
        returns (address appId, uint64 memberId, bool active);

    /// @notice Who holds an identity key.
    /// @return appId The app id the key is bound to (zero if unbound).
    /// @return memberId The latest member that registered it under that app id.
    /// @return active Whether that member is active.
    function identityKeyHolder(bytes32 identityKey) external view returns (address appId, uint64 memberId, bool active);

    /// @notice The nonce the app id's next registration must sign.
    function registrationNonce(address appId) external view returns (uint64);

    /// @notice Mesh parameters and counters.
    /// @return meshBase The network address of the mesh CIDR (host order).
    /// @return prefixLength The CIDR prefix length.
    /// @return lastMemberId The highest member id issued.
    /// @return activeMembers How many members are active.
    function meshConfig()
        external
        view
        returns (uint32 meshBase, uint8 prefixLength, uint64 lastMemberId, uint64 activeMembers);

    /// @notice The EIP-712 domain separator member keys sign under.
    function memberDomainSeparator() external view returns (bytes32);
}
