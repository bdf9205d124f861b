// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IMembership} from "../interfaces/IMembership.sol";
import {AppsStorage} from "../storage/AppsStorage.sol";
import {MembershipStorage} from "../storage/MembershipStorage.sol";
import {LibCsk} from "./LibCsk.sol";
import {LibPolicy} from "./LibPolicy.sol";
import {MeshAddress} from "./MeshAddress.sol";
import {Secp256k1} from "./Secp256k1.sol";

/// @title Membership logic shared by the facets
library LibMembership {
    /// @notice The eviction reason recorded when an app id's revocation evicts its member.
    uint8 internal constant EVICTED_BY_REVOCATION = 255;

    /// @notice The active member `memberId`, or a revert saying why it is not.
    function activeMember(uint64 memberId) internal view returns (MembershipStorage.Member storage m) {
        m = MembershipStorage.load().members[memberId];
        if (m.status != IMembership.MemberStatus.Active) revert IMembership.MemberNotActive(memberId, m.status);
    }

    /// @notice The active member `memberId`, provided its member key signed `digest`.
    function authorize(uint64 memberId, bytes32 digest, bytes calldata signature)
        internal
        view
        returns (MembershipStorage.Member storage m)
    {
        m = activeMember(memberId);
        address signer = Secp256k1.recover(digest, signature);
        if (signer != memberKeyOf(m)) revert IMembership.MemberSignatureMismatch(memberId, signer);
    }

    /// @notice The member key of `m`: in its WireGuard key's index entry while it is active, in its
    /// record once its membership ended.
    function memberKeyOf(MembershipStorage.Member storage m) internal view returns (address) {
        if (m.status != IMembership.MemberStatus.Active) return m.memberKey;
        return MembershipStorage.load().wireguardKeys[m.wireguardKey].memberKey;
    }

    /// @notice The device word of `m` (MemberClaimsStorage: a device reference, or a flagged
    /// fingerprint), where `memberKeyOf` finds the member key.
    function deviceRefOf(MembershipStorage.Member storage m) internal view returns (uint32) {
        if (m.status != IMembership.MemberStatus.Active) return m.deviceRef;
        return MembershipStorage.load().wireguardKeys[m.wireguardKey].deviceRef;
    }

    /// @notice Index `wireguardKey` and `identityKey` under the new member `memberId` of `appId`, unless
    /// either is bound to another app id. The caller has checked that `appId` has no active member,
    /// so a key bound to `appId` belongs to one of its own ended members and is free for it.
    function bindKeys(
        address appId,
        uint64 memberId,
        address memberKey,
        uint32 deviceRef,
        bytes32 wireguardKey,
        bytes32 identityKey
    ) internal {
        MembershipStorage.Layout storage l = MembershipStorage.load();
        uint64 holder = l.wireguardKeys[wireguardKey].memberId;
        if (holder != 0) {
            address holderApp = l.members[holder].appId;
            if (holderApp != appId) revert IMembership.WireguardKeyInUse(wireguardKey, holderApp, holder);
        }
        holder = l.identityKeys[identityKey].memberId;
        if (holder != 0) {
            address holderApp = l.members[holder].appId;
            if (holderApp != appId) revert IMembership.IdentityKeyInUse(identityKey, holderApp, holder);
        }
        l.wireguardKeys[wireguardKey] = MembershipStorage.KeyHolder(memberId, memberKey, deviceRef);
        l.identityKeys[identityKey] = MembershipStorage.KeyHolder(memberId, memberKey, deviceRef);
    }

    /// @notice End an active membership: free its address, record why, and open a new CSK epoch
    /// (whoever leaves held the current CSK). An evicted member's app id is disallowed too, so its
    /// sidecar cannot simply register again; the owner re-allows it deliberately if ever. A member that
    /// leaves keeps its keys bound to its app id; an evicted one releases them.
    function end(uint64 memberId, MembershipStorage.Member storage m, bool evicted, uint8 reason) internal {
        MembershipStorage.Layout storage l = MembershipStorage.load();
        MembershipStorage.KeyHolder storage holder = l.wireguardKeys[m.wireguardKey];
        m.memberKey = holder.memberKey;
        m.deviceRef = holder.deviceRef;
        m.status = evicted ? IMembership.MemberStatus.Evicted : IMembership.MemberStatus.Left;
        m.endedAt = uint40(block.timestamp);
        m.endReason = reason;
        MeshAddress.release(l, l.mesh.meshBase, m.meshIp);
        l.mesh.activeMembers -= 1;
        address appId = m.appId;
        if (evicted) {
            _releaseKeys(l, appId, m);
            LibPolicy.setAppAllowed(appId, false);
            emit IMembership.MemberEvicted(memberId, appId, reason);
        } else {
            emit IMembership.MemberLeft(memberId, appId);
        }
        LibCsk.openEpoch(memberId);
    }

    /// @notice The owner's eviction of `memberId`, active or already gone. A member that left just
    /// before the eviction landed (to dodge it, perhaps to register again) is evicted all the same: its
    /// record becomes `Evicted`, its app id is disallowed, its keys are released, and the app's latest
    /// record, if it registered again meanwhile (still active or gone again), is evicted with it.
    function evict(uint64 memberId, uint8 reason) internal {
        MembershipStorage.Layout storage l = MembershipStorage.load();
        MembershipStorage.Member storage m = l.members[memberId];
        IMembership.MemberStatus status = m.status;
        if (status == IMembership.MemberStatus.Active) return end(memberId, m, true, reason);
        if (status == IMembership.MemberStatus.None) revert IMembership.MemberUnknown(memberId);
        if (status == IMembership.MemberStatus.Evicted) revert IMembership.MemberAlreadyEvicted(memberId, m.endedAt);
        // Left: its mesh IP was freed and a new CSK epoch opened when it left. The app's latest
        // record goes too, if the app registered again since (active, or left once more).
        address appId = m.appId;
        uint64 latest = AppsStorage.load().apps[appId].memberId;
        if (latest != memberId) {
            MembershipStorage.Member storage newer = l.members[latest];
            IMembership.MemberStatus newerStatus = newer.status;
            if (newerStatus == IMembership.MemberStatus.Active) end(latest, newer, true, reason);
            else if (newerStatus == IMembership.MemberStatus.Left) _evictLeft(l, latest, newer, reason);
        }
        _evictLeft(l, memberId, m, reason);
    }

    /// @notice Turn the record of a member that left into an eviction.
    function _evictLeft(
        MembershipStorage.Layout storage l,
        uint64 memberId,
        MembershipStorage.Member storage m,
        uint8 reason
    ) private {
        m.status = IMembership.MemberStatus.Evicted;
        m.endReason = reason;
        address appId = m.appId;
        _releaseKeys(l, appId, m);
        LibPolicy.setAppAllowed(appId, false);
        emit IMembership.MemberEvicted(memberId, appId, reason);
    }

    /// @notice Delete the index entries of the member's keys, if they are still bound to its app id.
    function _releaseKeys(MembershipStorage.Layout storage l, address appId, MembershipStorage.Member storage m)
        private
    {
        bytes32 wireguardKey = m.wireguardKey;
        bytes32 identityKey = m.identityKey;
        if (l.members[l.wireguardKeys[wireguardKey].memberId].appId == appId) delete l.wireguardKeys[wireguardKey];
        if (l.members[l.identityKeys[identityKey].memberId].appId == appId) delete l.identityKeys[identityKey];
    }
}
