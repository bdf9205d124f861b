// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IMembership} from "../interfaces/IMembership.sol";
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
        if (signer != m.memberKey) revert IMembership.MemberSignatureMismatch(memberId, signer);
    }

    /// @notice End an active membership: free its address, record why, and open a new CSK epoch
    /// (whoever leaves held the current CSK). An evicted member's app id is disallowed too, so its
    /// sidecar cannot simply register again; the owner re-allows it deliberately if ever.
    function end(uint64 memberId, MembershipStorage.Member storage m, bool evicted, uint8 reason) internal {
        MembershipStorage.Layout storage l = MembershipStorage.load();
        m.status = evicted ? IMembership.MemberStatus.Evicted : IMembership.MemberStatus.Left;
        m.endedAt = uint40(block.timestamp);
        m.endReason = reason;
        MeshAddress.release(l, l.mesh.meshBase, m.meshIp);
        l.mesh.activeMembers -= 1;
        address appId = m.appId;
        if (evicted) {
            LibPolicy.setAppAllowed(appId, false);
            emit IMembership.MemberEvicted(memberId, appId, reason);
        } else {
            emit IMembership.MemberLeft(memberId, appId);
        }
        LibCsk.openEpoch(memberId);
    }
}
