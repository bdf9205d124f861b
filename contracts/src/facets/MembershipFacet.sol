// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IDstackAttestor} from "../interfaces/IDstackAttestor.sol";
import {IMemberStanding} from "../interfaces/IMemberStanding.sol";
import {IMembership} from "../interfaces/IMembership.sol";
import {DstackKeyChain} from "../libraries/DstackKeyChain.sol";
import {KeyPurposes} from "../libraries/KeyPurposes.sol";
import {LibMemberClaims} from "../libraries/LibMemberClaims.sol";
import {LibMembership} from "../libraries/LibMembership.sol";
import {LibOwnership} from "../libraries/LibOwnership.sol";
import {LibPolicy} from "../libraries/LibPolicy.sol";
import {MemberTypedData} from "../libraries/MemberTypedData.sol";
import {MeshAddress} from "../libraries/MeshAddress.sol";
import {Secp256k1} from "../libraries/Secp256k1.sol";
import {AppsStorage} from "../storage/AppsStorage.sol";
import {MemberClaimsStorage} from "../storage/MemberClaimsStorage.sol";
import {MembershipStorage} from "../storage/MembershipStorage.sol";

/// @title Membership facet: admission, departure and the member directory
contract MembershipFacet is IMembership {
    /// @inheritdoc IMembership
    function register(
        DstackProof calldata proof,
        bytes32 wireguardKey,
        bytes32 identityKey,
        RuntimeClaims calldata claims,
        bytes calldata signature
    ) external returns (uint64 memberId) {
        if (proof.memberPubkey.length != 33) {
            revert IDstackAttestor.InvalidPublicKeyLength(proof.memberPubkey.length);
        }
        address kmsRoot = _verifyChain(proof);
        // One read decides the compose hash, the KMS root and allow-any-device: an admitted pair's root
        // is allowed. Otherwise the root is checked here and the compose hash after the device and the
        // signature, the order registration's errors keep.
        MemberClaimsStorage.BuildEntry memory build = LibMemberClaims.buildEntry(claims.composeHash, kmsRoot);
        if (!build.admitted) LibPolicy.enforceKmsRoot(kmsRoot);
        AppsStorage.AppRecord storage app = LibPolicy.enforceJoinable(proof.appId);
        address memberKey = Secp256k1.compressedToAddress(proof.memberPubkey);

        memberId = app.memberId;
        if (memberId != 0) {
            MembershipStorage.Member storage current = MembershipStorage.load().members[memberId];
            if (current.status == MemberStatus.Active) {
                // A restarted sidecar re-derives the same keys; the chain just proved they are this
                // app's, so answering with the existing id is safe and needs no fresh signature.
                if (
                    LibMembership.memberKeyOf(current) == memberKey && current.wireguardKey == wireguardKey
                        && current.identityKey == identityKey
                ) {
                    // A stale member is not told it is fine: it must not stay by re-registering.
                    Standing standing = LibMemberClaims.standing(current);
                    if (standing > Standing.Unrecorded) revert MemberNotStanding(memberId, standing);
                    return memberId;
                }
                revert AppIdHasMember(proof.appId, memberId);
            }
        }
        if (wireguardKey == bytes32(0) || identityKey == bytes32(0)) revert ZeroKey();
        // The device word (reference or flagged fingerprint), and below the pair's reference, in one word.
        uint48 claimRefs = uint48(LibMemberClaims.enforceJoinable(claims, build)) << 16;

        _consumeSignature(app, proof.appId, wireguardKey, identityKey, claims, memberKey, signature);

        if (!build.admitted) revert ComposeHashNotAllowed(claims.composeHash);
        claimRefs |= build.ref;
        memberId = _admit(proof.appId, memberKey, claimRefs, wireguardKey, identityKey, kmsRoot);
        app.memberId = memberId;
        if (uint32(claimRefs >> 16) & MemberClaimsStorage.FINGERPRINTED != 0) {
            emit MemberDeviceStated(memberId, claims.deviceId);
        }
    }

    /// @dev Check the member key signed this registration at the app's nonce, and use the nonce up.
    function _consumeSignature(
        AppsStorage.AppRecord storage app,
        address appId,
        bytes32 wireguardKey,
        bytes32 identityKey,
        RuntimeClaims calldata claims,
        address memberKey,
        bytes calldata signature
    ) private {
        uint64 nonce = app.nonce;
        address signer = Secp256k1.recover(
            MemberTypedData.registerDigest(appId, wireguardKey, identityKey, claims.composeHash, claims.deviceId, nonce),
            signature
        );
        if (signer != memberKey) revert RegistrationSignatureMismatch(memberKey, signer);
        app.nonce = nonce + 1;
    }

    /// @dev The member key's chain under the guest API it names.
    function _verifyChain(DstackProof calldata proof) private view returns (address) {
        return DstackKeyChain.verify(
            proof.guestApiVersion,
            proof.appId,
            bytes(KeyPurposes.MEMBER),
            proof.memberPubkey,
            proof.appPubkey,
            proof.appSignature,
            proof.kmsSignature
        );
    }

    /// @inheritdoc IMembership
    function leaveCluster(uint64 memberId, bytes calldata signature) external {
        MembershipStorage.Member storage m =
            LibMembership.authorize(memberId, MemberTypedData.leaveDigest(memberId), signature);
        LibMembership.end(memberId, m, false, 0);
    }

    /// @inheritdoc IMembership
    function evict(uint64 memberId, uint8 reason) external {
        LibOwnership.enforceIsOwner();
        LibMembership.evict(memberId, reason);
    }

    /// @inheritdoc IMembership
    function member(uint64 memberId) external view returns (MemberView memory) {
        return _view(memberId, MembershipStorage.load().members[memberId]);
    }

    /// @inheritdoc IMembership
    function members(uint64 startId, uint256 limit) external view returns (MemberView[] memory page, uint64 nextId) {
        MembershipStorage.Layout storage l = MembershipStorage.load();
        uint256 count;
        (startId, count, nextId) = _page(l.mesh.lastMemberId, startId, limit);
        page = new MemberView[](count);
        for (uint256 i = 0; i < count; ++i) {
            uint64 id = startId + uint64(i);
            page[i] = _view(id, l.members[id]);
        }
    }

    /// @inheritdoc IMembership
    function memberOfApp(address appId) external view returns (uint64 memberId, bool active) {
        memberId = AppsStorage.load().apps[appId].memberId;
        active = memberId != 0 && MembershipStorage.load().members[memberId].status == MemberStatus.Active;
    }

    /// @inheritdoc IMembership
    function isMember(address appId) external view returns (bool) {
        uint64 memberId = AppsStorage.load().apps[appId].memberId;
        return memberId != 0 && MembershipStorage.load().members[memberId].status == MemberStatus.Active;
    }

    /// @inheritdoc IMembership
    function wireguardKeyHolder(bytes32 wireguardKey)
        external
        view
        returns (address appId, uint64 memberId, bool active)
    {
        return _holder(MembershipStorage.load().wireguardKeys[wireguardKey]);
    }

    /// @inheritdoc IMembership
    function identityKeyHolder(bytes32 identityKey) external view returns (address appId, uint64 memberId, bool active) {
        return _holder(MembershipStorage.load().identityKeys[identityKey]);
    }

    /// @inheritdoc IMembership
    function registrationNonce(address appId) external view returns (uint64) {
        return AppsStorage.load().apps[appId].nonce;
    }

    /// @inheritdoc IMembership
    function meshConfig()
        external
        view
        returns (uint32 meshBase, uint8 prefixLength, uint64 lastMemberId, uint64 activeMembers)
    {
        MembershipStorage.Mesh memory mesh = MembershipStorage.load().mesh;
        return (mesh.meshBase, mesh.prefixLength, mesh.lastMemberId, mesh.activeMembers);
    }

    /// @inheritdoc IMembership
    function memberDomainSeparator() external view returns (bytes32) {
        return MemberTypedData.domainSeparator();
    }

    // ------------------------------------------------------------------ claims and standing

    /// @inheritdoc IMemberStanding
    function memberClaims(uint64 memberId) external view returns (MemberClaimsView memory) {
        return LibMemberClaims.view_(MembershipStorage.load().members[memberId]);
    }

    /// @inheritdoc IMemberStanding
    function memberStanding(uint64 memberId) external view returns (Standing) {
        return LibMemberClaims.standing(MembershipStorage.load().members[memberId]);
    }

    /// @inheritdoc IMemberStanding
    function memberStandings(uint64 startId, uint256 limit)
        external
        view
        returns (Standing[] memory page, uint64 nextId)
    {
        MembershipStorage.Layout storage l = MembershipStorage.load();
        uint256 count;
        (startId, count, nextId) = _page(l.mesh.lastMemberId, startId, limit);
        page = new Standing[](count);
        for (uint256 i = 0; i < count; ++i) {
            uint64 id = startId + uint64(i);
            page[i] = LibMemberClaims.standing(l.members[id]);
        }
    }

    /// @inheritdoc IMemberStanding
    function evictStale(uint64 startId, uint256 limit) external returns (uint256 evicted, uint64 nextId) {
        LibOwnership.enforceIsOwner();
        MembershipStorage.Layout storage l = MembershipStorage.load();
        uint256 count;
        (startId, count, nextId) = _page(l.mesh.lastMemberId, startId, limit);
        for (uint256 i = 0; i < count; ++i) {
            uint64 id = startId + uint64(i);
            MembershipStorage.Member storage m = l.members[id];
            if (LibMemberClaims.standing(m) > Standing.Unrecorded) {
                LibMembership.end(id, m, true, LibMemberClaims.EVICTED_STALE);
                ++evicted;
            }
        }
    }

    function _admit(
        address appId,
        address memberKey,
        uint48 claimRefs,
        bytes32 wireguardKey,
        bytes32 identityKey,
        address kmsRoot
    ) private returns (uint64 memberId) {
        MembershipStorage.Layout storage l = MembershipStorage.load();
        MembershipStorage.Mesh memory mesh = l.mesh;
        memberId = mesh.lastMemberId + 1;
        LibMembership.bindKeys(appId, memberId, memberKey, uint32(claimRefs >> 16), wireguardKey, identityKey);
        uint32 meshIp = MeshAddress.allocate(l, mesh.meshBase, mesh.prefixLength, memberId);
        // One write for both counters.
        mesh.lastMemberId = memberId;
        mesh.activeMembers += 1;
        l.mesh = mesh;

        MembershipStorage.Member storage m = l.members[memberId];
        m.appId = appId;
        m.meshIp = meshIp;
        m.status = MemberStatus.Active;
        m.registeredAt = uint40(block.timestamp);
        m.buildRef = uint16(claimRefs);
        m.wireguardKey = wireguardKey;
        m.identityKey = identityKey;

        emit MemberRegistered(memberId, appId, memberKey, wireguardKey, identityKey, meshIp, kmsRoot);
    }

    function _holder(MembershipStorage.KeyHolder storage h)
        private
        view
        returns (address appId, uint64 memberId, bool active)
    {
        memberId = h.memberId;
        if (memberId == 0) return (address(0), 0, false);
        MembershipStorage.Member storage m = MembershipStorage.load().members[memberId];
        appId = m.appId;
        active = m.status == MemberStatus.Active;
    }

    /// @dev A page of member ids: from `startId` (0 reads as 1), at most `limit` of them, up to `last`;
    /// `nextId` is where the next page starts, 0 after the last. An empty page past the end.
    function _page(uint64 last, uint64 startId, uint256 limit)
        private
        pure
        returns (uint64 first, uint256 count, uint64 nextId)
    {
        first = startId == 0 ? 1 : startId;
        if (first > last || limit == 0) return (first, 0, 0);
        count = uint256(last - first) + 1;
        if (count > limit) count = limit;
        uint64 after_ = first + uint64(count);
        nextId = after_ > last ? 0 : after_;
    }

    function _view(uint64 memberId, MembershipStorage.Member storage m) private view returns (MemberView memory v) {
        if (m.status == MemberStatus.None) return v;
        v.memberId = memberId;
        v.appId = m.appId;
        v.memberKey = LibMembership.memberKeyOf(m);
        v.wireguardKey = m.wireguardKey;
        v.identityKey = m.identityKey;
        v.meshIp = m.meshIp;
        v.status = m.status;
        v.registeredAt = m.registeredAt;
        v.endedAt = m.endedAt;
        v.endReason = m.endReason;
    }
}
